"""WebSocket frame server (docs/protocol.md §4): a shared frame clock and one sender per connection.

The frame clock captures each camera's frame at its tick: rendered at the true pose at that moment t
and stamped by the camera's own clock (t + ``clock_offset_s`` + ``clock_drift_ppm`` x time since the
rig started; no stamp at all with ``send_timestamps`` False). A camera's pipeline delay (CameraSim or
SimConfig ``pipeline_delay_s``, 0 by default) then holds the frame back until t + delay, as a camera
SDK, GigE driver or RTSP pipeline does, before any connection may send it: the frame is released by
``loop.call_later``, so neither the clock nor the rendering waits. ``SentFrame`` records, for every
frame sent, the stamp on the wire next to the truth (capture time, pose, release and send times).

Flow control, as the rig does it: after each message a connection waits (up to ``ack_timeout_s``) for
the client's text ``received``. What goes next depends on ``SimConfig.send_queue``:

- Off (the default): of the frames released while it waits, each camera's newest is sent next and
  its older ones are skipped for that connection (a one-deep buffer per camera, as a camera's frame
  buffer is), so a reader that keeps up on average sees every frame_index even when one large message
  takes longer than a tick period, a slow one sees gaps, and a slow camera is never crowded out by a
  fast one. The only buffering is those pending frames, split into messages of at most
  ``frames_per_message``.
- On (a send queue, as a rig's send queue or a streaming pipeline has): every released frame joins
  the connection's FIFO queue of its camera, and the oldest queued frames by capture time, across
  cameras, go next, at most ``frames_per_message`` to a message. A slow reader sees no gaps, but
  frames that arrive later and later behind capture. Overflow policy: a camera's queue holds at most
  ``send_queue_max_frames`` frames; when it is full the OLDEST frame is dropped (counted in
  ``frames_skipped`` and ``queue_overflow_drops``), so the delay stops growing at about the bound.
  ``StreamStats.queue_depth`` / ``queue_depth_max`` show the backlog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .config import SimConfig
from .frames import CapturedFrame, FrameRenderer, build_message, malformed_kind
from .physics import RigPhysics

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 2**20  # docs/protocol.md §4: 20 MiB is the floor; only acks come in anyway
GROUP_WINDOW_S = 0.002  # cameras whose ticks fall this close together share a message
EVENT_WAIT_S = 1.0  # a sender re-checks its connection at least this often when no frames come
DROP_POLL_S = 0.05  # how often the drop_stream_after_s fault is looked up (it can change at runtime)
CLOSE_TIMEOUT_S = 2.0  # closing handshake bound


@dataclass(frozen=True)
class SentFrame:
    """A frame that went out on a connection (``valid`` False for a deliberately malformed one).

    With the ground truth to check a saved frame against: ``timestamp_ns`` is the stamp SENT on the
    wire (the camera's clock, offset and drift included; None when the camera sends no stamps),
    ``captured_ns`` the TRUE capture time (epoch ns, before offset and drift), ``pose`` the true pose
    at capture, ``available_at_epoch`` when the camera's pipeline delay released it and
    ``sent_at_epoch`` when it went out on this connection.
    """

    camera_id: str
    frame_index: int
    timestamp_ns: int | None
    sent_at_epoch: float
    pose: dict[str, object]
    valid: bool = True
    connection_id: int = 0
    captured_ns: int = 0
    available_at_epoch: float = 0.0


@dataclass(frozen=True)
class TickEvent:
    """Frames captured at one tick of the frame clock and released together (same pipeline delay)."""

    seq: int
    frames: tuple[CapturedFrame, ...]
    frames_total: int  # frames published up to and including this event


@dataclass
class StreamStats:
    """Counters of the frame server; only the loop thread writes them."""

    connections_opened: int = 0
    connections_closed: int = 0
    drops: int = 0
    messages_sent: int = 0
    frames_sent: int = 0
    frames_skipped: int = 0
    acks: int = 0
    ack_timeouts: int = 0
    malformed_sent: dict[str, int] = field(default_factory=dict)
    # Send queue (SimConfig.send_queue) only: frames dropped from a full queue (also in frames_skipped),
    # the frames queued now per camera by connection id (open connections only), and the deepest any
    # camera's queue has been on any connection. Every dict here is replaced, not resized, when a key
    # comes or goes, so SimRig.stats() can copy them from another thread.
    queue_overflow_drops: int = 0
    queue_depth: dict[int, dict[str, int]] = field(default_factory=dict)
    queue_depth_max: dict[str, int] = field(default_factory=dict)


class SendQueue:
    """One connection's send queue: a FIFO per camera of every frame released since it opened.

    Overflow policy: a camera's queue holds at most ``max_frames``; a frame pushed onto a full one
    drops that camera's OLDEST frame, counted in frames_skipped and queue_overflow_drops.
    """

    def __init__(
        self, connection_id: int, camera_ids: Iterable[str], max_frames: int, stats: StreamStats
    ) -> None:
        self._id = connection_id
        self._max = max_frames
        self._stats = stats
        # (captured_ns, push number, frame): ordered by capture time, ties in the order released.
        self._queues: dict[str, deque[tuple[int, int, CapturedFrame]]] = {cid: deque() for cid in camera_ids}
        self._pushed = 0
        self._size = 0
        self._depth = dict.fromkeys(self._queues, 0)
        self.ready = asyncio.Event()  # set while the queue holds frames
        stats.queue_depth = {**stats.queue_depth, connection_id: self._depth}

    def __len__(self) -> int:
        return self._size

    def push(self, frames: Iterable[CapturedFrame]) -> None:
        """Queue released frames, dropping the oldest of a camera whose queue is full."""
        for frame in frames:
            queue = self._queues.setdefault(frame.camera_id, deque())
            if len(queue) >= self._max:
                queue.popleft()
                self._size -= 1
                self._stats.frames_skipped += 1
                self._stats.queue_overflow_drops += 1
            self._pushed += 1
            queue.append((frame.captured_ns, self._pushed, frame))
            self._size += 1
            self._note_depth(frame.camera_id, len(queue))
        if self._size:
            self.ready.set()

    def take(self, limit: int) -> list[CapturedFrame]:
        """Remove and return up to ``limit`` frames, the oldest captured first."""
        out: list[CapturedFrame] = []
        while len(out) < limit and self._size:
            head = min((q[0], cid) for cid, q in self._queues.items() if q)
            cid = head[1]
            out.append(self._queues[cid].popleft()[2])
            self._size -= 1
            self._note_depth(cid, len(self._queues[cid]))
        if not self._size:
            self.ready.clear()
        return out

    def close(self) -> None:
        """Forget this connection's depths in the stats (the maximum stays)."""
        self._stats.queue_depth = {k: v for k, v in self._stats.queue_depth.items() if k != self._id}

    def _note_depth(self, camera_id: str, depth: int) -> None:
        if camera_id in self._depth:
            self._depth[camera_id] = depth
        else:
            self._depth = {**self._depth, camera_id: depth}
            self._stats.queue_depth = {**self._stats.queue_depth, self._id: self._depth}
        deepest = self._stats.queue_depth_max
        if camera_id not in deepest:
            self._stats.queue_depth_max = {**deepest, camera_id: depth}
        elif depth > deepest[camera_id]:
            deepest[camera_id] = depth


class FrameProducer:
    """The shared frame clock: tick k of a camera is due at t0 + k/fps and carries frame_index k.

    A tick's frames are released to the connections at capture + the camera's pipeline delay: at
    once without one, else by ``loop.call_later``, so the clock keeps ticking meanwhile.
    """

    def __init__(
        self,
        cfg: SimConfig,
        physics: RigPhysics,
        renderers: dict[str, FrameRenderer],
        executor: Executor,
        t0: float,
    ) -> None:
        self._fps = {cid: cam.fps for cid, cam in cfg.cameras.items()}
        self._cams = dict(cfg.cameras)
        self._delay = {cid: cfg.pipeline_delay_of(cid) for cid in cfg.cameras}
        self._held: list[asyncio.TimerHandle] = []  # releases scheduled for delayed frames
        self._queues: set[SendQueue] = set()
        self._physics = physics
        self._renderers = renderers
        self._executor = executor
        self._t0 = t0
        self._next_index = dict.fromkeys(self._fps, 0)
        self._next_event: asyncio.Future[TickEvent] | None = None
        self.subscribers = 0
        self.latest: TickEvent | None = None
        # Each camera's newest released frame and the seq of the event that released it.
        self.newest: dict[str, tuple[int, CapturedFrame]] = {}
        self._seq = 0
        self._frames_total = 0

    def _future(self) -> asyncio.Future[TickEvent]:
        if self._next_event is None:
            self._next_event = asyncio.get_running_loop().create_future()
        return self._next_event

    def add_queue(self, queue: SendQueue) -> None:
        """Push every frame released from now on onto ``queue`` too."""
        self._queues.add(queue)

    def remove_queue(self, queue: SendQueue) -> None:
        self._queues.discard(queue)

    async def next_event(self, wait_s: float) -> TickEvent | None:
        """The next released frames, or None if none came within ``wait_s``."""
        fut = self._future()
        # asyncio.wait, not wait_for: the future is shared by every connection and must not be
        # cancelled when one of them times out.
        done, _ = await asyncio.wait({fut}, timeout=wait_s)
        return fut.result() if done else None

    async def warm_up(self) -> None:
        """Render every camera's view of the current pose into its cache before serving.

        The first render of a process is slow (OpenCV and libjpeg initialise lazily, executor threads
        start); done here, it cannot delay the first ticks and skip frames for the first client.
        """
        pose = self._physics.true_pose(time.monotonic())
        loop = asyncio.get_running_loop()
        jobs = []
        for cid, renderer in self._renderers.items():
            key = renderer.key_for(pose.pan_deg, pose.tilt_deg, self._physics.zoom_factor(cid, pose))
            if renderer.cached(key) is None:
                jobs.append(loop.run_in_executor(self._executor, renderer.render, key))
        await asyncio.gather(*jobs)

    async def run_loop(self) -> None:
        """Tick forever; frames are rendered only while some connection listens."""
        if not self._fps:
            return  # no cameras: nothing ever falls due
        try:
            await self._tick_forever()
        finally:
            for handle in self._held:
                handle.cancel()

    async def _tick_forever(self) -> None:
        while True:
            t_next = min(self._t0 + self._next_index[c] / fps for c, fps in self._fps.items())
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            horizon = now + GROUP_WINDOW_S
            due: list[tuple[str, int]] = []
            for cid, fps in self._fps.items():
                if self._t0 + self._next_index[cid] / fps <= horizon:
                    # The latest tick that is due: ticks missed while rendering was slow are lost
                    # upstream, and show as frame_index gaps on every connection.
                    idx = max(math.floor((horizon - self._t0) * fps + 1e-9), self._next_index[cid])
                    self._next_index[cid] = idx + 1
                    due.append((cid, idx))
            if due and self.subscribers > 0:
                try:
                    await self._capture(due, now)
                except Exception:
                    log.exception("rendering frames failed; tick dropped")

    async def _capture(self, due: list[tuple[str, int]], now: float) -> None:
        # The true capture moment: the pose, the stamps and the pipeline delay all count from here,
        # not from when rendering ends or a connection sends the frame.
        pose = self._physics.true_pose(now)
        captured_ns = time.time_ns()
        pose_dict = self._physics.describe(pose)
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[bytes]] = []
        for cid, _ in due:
            renderer = self._renderers[cid]
            key = renderer.key_for(pose.pan_deg, pose.tilt_deg, self._physics.zoom_factor(cid, pose))
            hit = renderer.cached(key)
            if hit is not None:
                fut: asyncio.Future[bytes] = loop.create_future()
                fut.set_result(hit)
            else:
                fut = loop.run_in_executor(self._executor, renderer.render, key)
            pending.append(fut)
        pixels = await asyncio.gather(*pending)
        by_delay: dict[float, list[CapturedFrame]] = {}
        for (cid, idx), px in zip(due, pixels, strict=True):
            cam = self._renderers[cid].cam
            stamp = self._stamp(cid, captured_ns, now)
            frame = CapturedFrame(
                cid, idx, stamp, cam.pixel_format, cam.width, cam.height, px, pose_dict, captured_ns
            )
            by_delay.setdefault(self._delay[cid], []).append(frame)
        for delay, frames in sorted(by_delay.items()):
            self._release_at(now + delay, frames)

    def _stamp(self, camera_id: str, captured_ns: int, now: float) -> int | None:
        """The stamp ``camera_id``'s clock puts on a frame captured at ``captured_ns`` (monotonic ``now``)."""
        cam = self._cams[camera_id]
        if not cam.send_timestamps:
            return None
        skew_s = cam.clock_offset_s + cam.clock_drift_ppm * 1e-6 * (now - self._t0)
        return captured_ns + round(skew_s * 1e9)

    def _release_at(self, when: float, frames: list[CapturedFrame]) -> None:
        """Release ``frames`` at monotonic ``when``: now if that has passed, else by a timer."""
        wait = when - time.monotonic()
        if wait <= 0:
            self._release(frames)
            return
        loop = asyncio.get_running_loop()
        self._held = [h for h in self._held if h.when() > loop.time()]  # drop the ones that have fired
        self._held.append(loop.call_later(wait, self._release, frames))

    def _release(self, frames: list[CapturedFrame]) -> None:
        """Make ``frames`` available to every connection: an event, the newest per camera, the queues."""
        released_at = time.time()
        frames = [dataclasses.replace(f, available_at_epoch=released_at) for f in frames]
        self._seq += 1
        self._frames_total += len(frames)
        event = TickEvent(self._seq, tuple(frames), self._frames_total)
        self.latest = event
        for frame in frames:
            self.newest[frame.camera_id] = (self._seq, frame)
        for queue in self._queues:
            queue.push(frames)
        fut_now, self._next_event = self._future(), None
        fut_now.set_result(event)


class StreamSession:
    """One client connection: an ack reader, a sender and the drop-fault watchdog."""

    def __init__(
        self,
        conn: ServerConnection,
        connection_id: int,
        cfg: SimConfig,
        producer: FrameProducer,
        stats: StreamStats,
        on_sent: Callable[[list[SentFrame]], None],
    ) -> None:
        self._conn = conn
        self._id = connection_id
        self._cfg = cfg
        self._producer = producer
        self._stats = stats
        self._on_sent = on_sent
        self._ack = asyncio.Event()
        self._message_no = 0

    async def run(self) -> None:
        """Serve until the client goes, the drop fault fires or the server closes."""
        cfg = self._cfg
        queue = (
            SendQueue(self._id, cfg.cameras, cfg.send_queue_max_frames, self._stats)
            if cfg.send_queue
            else None
        )
        self._producer.subscribers += 1
        if queue is not None:
            self._producer.add_queue(queue)
        send_loop = self._send_loop() if queue is None else self._queue_send_loop(queue)
        tasks = [
            asyncio.create_task(self._ack_loop(), name=f"ws{self._id}_ack_loop"),
            asyncio.create_task(send_loop, name=f"ws{self._id}_send_loop"),
            asyncio.create_task(self._drop_loop(), name=f"ws{self._id}_drop_loop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, ConnectionClosed):
                    log.error("stream connection %d: %s failed", self._id, task.get_name(), exc_info=exc)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._producer.subscribers -= 1
            if queue is not None:
                self._producer.remove_queue(queue)
                queue.close()

    async def _ack_loop(self) -> None:
        try:
            async for message in self._conn:
                if isinstance(message, str) and message.strip() == "received":
                    self._stats.acks += 1
                    self._ack.set()
        except ConnectionClosed:
            pass

    async def _send_loop(self) -> None:
        """Without a send queue: each event's frames, then each camera's newest since (one-deep)."""
        per_message = self._cfg.frames_per_message
        event: TickEvent | None = None
        try:
            while True:
                if event is None:
                    event = await self._producer.next_event(EVENT_WAIT_S)
                    if event is None:
                        continue
                for start in range(0, len(event.frames), per_message):
                    await self._send_message(event.frames[start : start + per_message])
                # Of what was released while we sent and waited, each camera's newest frame goes
                # next; older ones are skipped, not queued.
                event = self._catch_up(event)
        except ConnectionClosed:
            pass

    async def _queue_send_loop(self, queue: SendQueue) -> None:
        """With a send queue: the oldest queued frames, frames_per_message at a time, until none."""
        per_message = self._cfg.frames_per_message
        try:
            while True:
                if not queue:
                    try:
                        async with asyncio.timeout(EVENT_WAIT_S):
                            await queue.ready.wait()
                    except TimeoutError:
                        pass
                    continue
                await self._send_message(queue.take(per_message))
        except ConnectionClosed:
            pass

    async def _send_message(self, chunk: Sequence[CapturedFrame]) -> None:
        """Send one message (faults applied), then wait up to ack_timeout_s for the client's ack."""
        faults = self._cfg.faults
        if faults.stream_delay_s > 0:
            await asyncio.sleep(faults.stream_delay_s)
        self._message_no += 1
        kind = malformed_kind(self._message_no, faults.malformed_every)
        payload, carried = build_message(chunk, self._message_no, kind)
        self._ack.clear()
        await self._conn.send(payload)
        self._record(carried, kind.value if kind else None)
        try:
            async with asyncio.timeout(self._cfg.ack_timeout_s):
                await self._ack.wait()
        except TimeoutError:
            self._stats.ack_timeouts += 1

    def _catch_up(self, sent: TickEvent) -> TickEvent | None:
        """What to send after ``sent``: each camera's newest frame captured since, or None."""
        latest = self._producer.latest
        if latest is None or latest.seq <= sent.seq:
            return None
        frames = tuple(frame for seq, frame in self._producer.newest.values() if seq > sent.seq)
        self._stats.frames_skipped += latest.frames_total - sent.frames_total - len(frames)
        return TickEvent(latest.seq, frames, latest.frames_total)

    def _record(self, carried: list[tuple[CapturedFrame, bool]], malformed: str | None) -> None:
        sent_at = time.time()
        self._stats.messages_sent += 1
        self._stats.frames_sent += len(carried)
        if malformed is not None:
            counts = self._stats.malformed_sent  # replaced, not resized: see StreamStats
            self._stats.malformed_sent = {**counts, malformed: counts.get(malformed, 0) + 1}
        self._on_sent(
            [
                SentFrame(
                    f.camera_id,
                    f.frame_index,
                    f.timestamp_ns,
                    sent_at,
                    f.pose,
                    valid,
                    self._id,
                    f.captured_ns,
                    f.available_at_epoch,
                )
                for f, valid in carried
            ]
        )

    async def _drop_loop(self) -> None:
        opened = time.monotonic()
        while True:
            after = self._cfg.faults.drop_stream_after_s
            if after is not None and time.monotonic() - opened >= after:
                self._stats.drops += 1
                log.info("stream connection %d: simulated drop after %.1f s", self._id, after)
                await self._conn.close(code=1011, reason="simulated stream drop")
                return
            await asyncio.sleep(DROP_POLL_S)


class FrameServer:
    """The websockets server; one StreamSession per connection."""

    def __init__(
        self,
        cfg: SimConfig,
        producer: FrameProducer,
        stats: StreamStats,
        on_sent: Callable[[list[SentFrame]], None],
    ) -> None:
        self._cfg = cfg
        self._producer = producer
        self._stats = stats
        self._on_sent = on_sent
        self._server: Server | None = None
        self._next_id = 0

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await serve(
            self._handle,
            self._cfg.ws_host,
            self._cfg.ws_port,
            ssl=self._tls_context(),
            max_size=MAX_MESSAGE_BYTES,
            compression=None,  # frames are JPEG or raw pixels: deflate costs CPU and gains little
            close_timeout=CLOSE_TIMEOUT_S,
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _tls_context(self) -> ssl.SSLContext | None:
        """wss:// when the rig has a certificate (--tls-cert / --tls-key)."""
        if self._cfg.ws_tls_cert is None or self._cfg.ws_tls_key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cfg.ws_tls_cert, self._cfg.ws_tls_key)
        return context

    async def close(self, within_s: float) -> None:
        """Close every connection (1001 going away) and stop listening, within ``within_s``."""
        if self._server is None:
            return
        self._server.close()
        try:
            async with asyncio.timeout(within_s):
                await self._server.wait_closed()
        except TimeoutError:
            log.warning("frame server did not close within %.1f s", within_s)

    async def _handle(self, conn: ServerConnection) -> None:
        self._next_id += 1
        conn_id = self._next_id
        self._stats.connections_opened += 1
        log.info("stream connection %d from %s", conn_id, conn.remote_address)
        try:
            await StreamSession(conn, conn_id, self._cfg, self._producer, self._stats, self._on_sent).run()
        finally:
            self._stats.connections_closed += 1
            log.info("stream connection %d closed", conn_id)
