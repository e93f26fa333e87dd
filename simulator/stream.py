"""WebSocket frame server (docs/protocol.md §4): a shared frame clock and one sender per connection.

Flow control, as the rig does it: after each message a connection waits (up to ``ack_timeout_s``) for
the client's text ``received``. Of the frames that fall due while it waits, each camera's newest is
sent next and its older ones are skipped for that connection (a one-deep buffer per camera, as a
camera's frame buffer is), so a reader that keeps up on average sees every frame_index even when
one large message takes longer than a tick period, a slow one sees gaps, and a slow camera is never
crowded out by a fast one. The only buffering is those pending frames, split into messages of at
most ``frames_per_message``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
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
    """A frame that went out on a connection (``valid`` False for a deliberately malformed one)."""

    camera_id: str
    frame_index: int
    timestamp_ns: int
    sent_at_epoch: float
    pose: dict[str, object]
    valid: bool = True
    connection_id: int = 0


@dataclass(frozen=True)
class TickEvent:
    """Frames captured at one tick of the frame clock."""

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


class FrameProducer:
    """The shared frame clock: tick k of a camera is due at t0 + k/fps and carries frame_index k."""

    def __init__(
        self,
        cfg: SimConfig,
        physics: RigPhysics,
        renderers: dict[str, FrameRenderer],
        executor: Executor,
        t0: float,
    ) -> None:
        self._fps = {cid: cam.fps for cid, cam in cfg.cameras.items()}
        self._physics = physics
        self._renderers = renderers
        self._executor = executor
        self._t0 = t0
        self._next_index = dict.fromkeys(self._fps, 0)
        self._next_event: asyncio.Future[TickEvent] | None = None
        self.subscribers = 0
        self.latest: TickEvent | None = None
        # Each camera's newest frame and the seq of the tick that captured it.
        self.newest: dict[str, tuple[int, CapturedFrame]] = {}
        self._seq = 0
        self._frames_total = 0

    def _future(self) -> asyncio.Future[TickEvent]:
        if self._next_event is None:
            self._next_event = asyncio.get_running_loop().create_future()
        return self._next_event

    async def next_event(self, wait_s: float) -> TickEvent | None:
        """The next tick's frames, or None if none came within ``wait_s``."""
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
        pose = self._physics.true_pose(now)
        timestamp_ns = time.time_ns()
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
        frames = []
        for (cid, idx), px in zip(due, pixels, strict=True):
            cam = self._renderers[cid].cam
            frames.append(
                CapturedFrame(cid, idx, timestamp_ns, cam.pixel_format, cam.width, cam.height, px, pose_dict)
            )
        self._seq += 1
        self._frames_total += len(frames)
        event = TickEvent(self._seq, tuple(frames), self._frames_total)
        self.latest = event
        for frame in frames:
            self.newest[frame.camera_id] = (self._seq, frame)
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

    async def run(self) -> None:
        """Serve until the client goes, the drop fault fires or the server closes."""
        self._producer.subscribers += 1
        tasks = [
            asyncio.create_task(self._ack_loop(), name=f"ws{self._id}_ack_loop"),
            asyncio.create_task(self._send_loop(), name=f"ws{self._id}_send_loop"),
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

    async def _ack_loop(self) -> None:
        try:
            async for message in self._conn:
                if isinstance(message, str) and message.strip() == "received":
                    self._stats.acks += 1
                    self._ack.set()
        except ConnectionClosed:
            pass

    async def _send_loop(self) -> None:
        faults = self._cfg.faults
        per_message = self._cfg.frames_per_message
        message_no = 0
        event: TickEvent | None = None
        try:
            while True:
                if event is None:
                    event = await self._producer.next_event(EVENT_WAIT_S)
                    if event is None:
                        continue
                for start in range(0, len(event.frames), per_message):
                    chunk = event.frames[start : start + per_message]
                    if faults.stream_delay_s > 0:
                        await asyncio.sleep(faults.stream_delay_s)
                    message_no += 1
                    kind = malformed_kind(message_no, faults.malformed_every)
                    payload, carried = build_message(chunk, message_no, kind)
                    self._ack.clear()
                    await self._conn.send(payload)
                    self._record(carried, kind.value if kind else None)
                    try:
                        async with asyncio.timeout(self._cfg.ack_timeout_s):
                            await self._ack.wait()
                    except TimeoutError:
                        self._stats.ack_timeouts += 1
                # Of what fell due while we sent and waited, each camera's newest frame goes next;
                # older ones are skipped, not queued.
                event = self._catch_up(event)
        except ConnectionClosed:
            pass

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
            self._stats.malformed_sent[malformed] = self._stats.malformed_sent.get(malformed, 0) + 1
        self._on_sent(
            [
                SentFrame(f.camera_id, f.frame_index, f.timestamp_ns, sent_at, f.pose, valid, self._id)
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
            max_size=MAX_MESSAGE_BYTES,
            compression=None,  # frames are JPEG or raw pixels: deflate costs CPU and gains little
            close_timeout=CLOSE_TIMEOUT_S,
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

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
