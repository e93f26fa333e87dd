"""The live Foxglove server of one service: Foxglove's SDK serving the rig while it runs.

Started by the capture service after its loop-side parts (service.capture), restarted alone when
``PUT /config`` changes the ``foxglove`` section (:meth:`LiveServer.configure`), stopped before the
loop. Each start makes its own SDK :class:`foxglove.Context` — the binding of channels to servers —
so that several services in one process (the tests) never share the SDK's global context, and a
restart leaves no channel of the last one behind.

Channels (the MCAP export's topics and schemas, sessions.mcap_export): ``/<camera_id>/image`` for
each configured camera (service.live.images), ``/rig/state`` and ``/tf`` (service.live.rig), and
``/rig/jobs`` (service.live.jobs), the live view's own. What feeds them runs on the event loop
(the hub listener, the job events, one image task per camera), the image encoding on one thread of
its own at the writers' low priority.

Slow clients: the SDK's server keeps a queue of at most ``BACKLOG`` messages per client and drops
the oldest when it is full, so a client that reads slowly misses messages and holds a bounded
amount of memory; the capture never waits on it (``Channel.log`` only queues).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import foxglove
from foxglove import Channel, Context, Schema
from foxglove.websocket import ChannelView, Client, ServerListener, WebSocketServer
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from google.protobuf.message import Message

from camera.pool import lower_thread_priority
from camera.router import FrameRouter
from mqtt_control.hub import StateHub
from rigcore.config import Config, DisplayConfig
from rigcore.config_foxglove import FoxgloveConfig, exposure_problem, exposure_warning
from rigcore.rig import RigLayout
from rigcore.runtime import LoopRuntime
from service.live.images import image_message, image_schema
from service.live.jobs import EVENT_SCHEMA, JOBS_TOPIC, JobEvents, JobLike
from service.live.pump import ImagePump
from service.live.rig import STATE_TOPIC, TF_TOPIC, RigFeed
from sessions.mcap_export import file_descriptor_set, image_topic
from sessions.mcap_rig import RIG_STATE_SCHEMA

log = logging.getLogger(__name__)

SERVER_NAME = "rigcapture"
# Messages queued per client before the oldest is dropped (SDK message_backlog_size). /rig/state
# alone sends tens a second, so this is well under a second of a slow client's backlog, and in raw
# mode at most this many full frames of memory per client.
BACKLOG = 32
# The encoder thread's nice value: the writers' (service.capture WRITER_NICE); the live view is
# never worth a frame of a recording.
ENCODER_NICE = 19


class _Clients(ServerListener):
    """The SDK's server listener: which client subscribes to which channel (SDK threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[int, set[int]] = {}

    def on_subscribe(self, client: Client, channel: ChannelView) -> None:
        with self._lock:
            self._subscriptions.setdefault(client.id, set()).add(channel.id)

    def on_unsubscribe(self, client: Client, channel: ChannelView) -> None:
        # Also called for each channel when a client disconnects.
        with self._lock:
            channels = self._subscriptions.get(client.id, set())
            channels.discard(channel.id)
            if not channels:
                self._subscriptions.pop(client.id, None)

    def count(self) -> int:
        with self._lock:
            return len(self._subscriptions)


class _Running:
    """One start of the server: its context, channels, SDK server and loop-side feeds."""

    def __init__(self, cfg: FoxgloveConfig, config: Config) -> None:
        self.cfg = cfg
        self.context = Context()
        self.clients = _Clients()
        mode = cfg.image
        self.images = {
            cam: _protobuf_channel(
                self.context, image_topic(cam), image_schema(c.pixel_format, mode), {"camera_id": cam}
            )
            for cam, c in config.cameras.items()
        }
        self.state = Channel(STATE_TOPIC, schema=RIG_STATE_SCHEMA, context=self.context)
        self.tf = _protobuf_channel(self.context, TF_TOPIC, FrameTransforms)
        self.jobs = Channel(JOBS_TOPIC, schema=EVENT_SCHEMA, context=self.context)
        self.server: WebSocketServer | None = None
        self.feed: RigFeed | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pump: ImagePump | None = None

    def channels(self) -> list[Channel]:
        return [*self.images.values(), self.state, self.tf, self.jobs]

    def url(self) -> str | None:
        if self.server is None:
            return None
        host = self.cfg.host if ":" not in self.cfg.host else f"[{self.cfg.host}]"
        return f"ws://{host}:{self.server.port}"


def _protobuf_channel(
    context: Context, topic: str, message: type[Message], metadata: dict[str, str] | None = None
) -> Channel:
    """A channel with the export's protobuf schema of ``message`` (the same FileDescriptorSet)."""
    schema = Schema(name=message.DESCRIPTOR.full_name, encoding="protobuf", data=file_descriptor_set(message))
    return Channel(topic, schema=schema, message_encoding="protobuf", context=context, metadata=metadata)


class LiveServer:
    """Start, restart and stop the live server; its part of ``GET /status``. Thread-safe."""

    def __init__(self, runtime: LoopRuntime, config: Callable[[], Config]) -> None:
        self._runtime = runtime
        self._config = config  # the configuration in force (display settings are read per frame)
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._cfg = FoxgloveConfig()
        self._error: str | None = None
        self._parts: tuple[FrameRouter, StateHub, RigLayout] | None = None
        self._jobs = JobEvents()
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="foxglove-live",
            initializer=lower_thread_priority,
            initargs=(ENCODER_NICE,),
        )

    # -- lifecycle (any thread but the loop's) -------------------------------------------------------
    def start(self, config: Config, router: FrameRouter, hub: StateHub, layout: RigLayout) -> None:
        """Start serving if ``foxglove.enabled``. A server that cannot start (its port is taken, its
        host refused) is logged and shown in /status; the service runs on without it."""
        with self._lock:
            self._parts = (router, hub, layout)
            self._start(config)

    def configure(self, config: Config, layout: RigLayout) -> None:
        """A new configuration in force: restart the server if its ``foxglove`` section changed."""
        with self._lock:
            if self._parts is None:
                return  # not started yet: start() reads the section in force
            router, hub, _ = self._parts
            self._parts = (router, hub, layout)
            if config.foxglove == self._cfg:
                return
            self._stop()
            self._start(config)

    def stop(self) -> None:
        with self._lock:
            self._stop()
            self._parts = None

    def close(self) -> None:
        """Stop serving and end the encoder thread (the service's stop)."""
        self.stop()
        self._executor.shutdown(wait=True)

    def _start(self, config: Config) -> None:
        cfg = self._cfg = config.foxglove
        self._error = None
        if not cfg.enabled or self._parts is None:
            return
        problem = exposure_problem(cfg, config.api.token)  # Config refuses it too: never bind then
        if problem is not None:
            self._error = problem
            log.error("live Foxglove server not started: %s", problem)
            return
        if (warning := exposure_warning(cfg)) is not None:
            log.warning("%s", warning)
        running = _Running(cfg, config)
        try:
            running.server = foxglove.start_server(
                name=SERVER_NAME,
                host=cfg.host,
                port=cfg.port,
                context=running.context,
                server_listener=running.clients,
                message_backlog_size=BACKLOG,
            )
        except Exception as exc:  # the SDK raises RuntimeError for a port taken, a host it cannot bind
            self._error = f"cannot listen on {cfg.host}:{cfg.port}: {exc}"
            log.error("live Foxglove server not started: %s", self._error)
            _close_channels(running)
            return
        self._running = running
        try:
            self._runtime.submit(self._attach(running, config), timeout=5)
        except Exception as exc:  # the loop did not take the feeds: serve nothing rather than half
            self._stop()
            self._error = f"its feeds could not be attached: {exc}"
            log.exception("live Foxglove server stopped: %s", self._error)
            return
        log.info("live Foxglove server on %s", running.url())

    def _stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        try:
            self._runtime.submit(self._detach(running), timeout=5)
        except Exception:  # the loop is gone or wedged: the feeds die with it
            log.exception("live Foxglove server: detaching its feeds failed")
        if running.server is not None:
            running.server.stop()
        _close_channels(running)

    # -- loop side -------------------------------------------------------------------------------
    async def _attach(self, running: _Running, config: Config) -> None:
        assert self._parts is not None
        router, hub, layout = self._parts
        feed = RigFeed(layout, list(config.cameras), running.state, running.tf)
        for sample in list(hub.latest.values()):  # the rig as known now: a new client's first message
            feed.on_sample(sample)
        hub.add_listener(feed.on_sample)
        running.feed = feed
        mode = running.cfg.image
        pump = ImagePump(
            router.latest,
            running.images,
            lambda frame: image_message(frame, mode, self._display(frame.camera_id)),
            self._executor,
            1.0 / running.cfg.max_fps,
        )
        running.pump = pump
        running.tasks = [
            asyncio.create_task(pump.camera_loop(cam), name=f"foxglove live {cam}") for cam in running.images
        ]

    async def _detach(self, running: _Running) -> None:
        assert self._parts is not None
        if running.feed is not None:
            self._parts[1].remove_listener(running.feed.on_sample)
        for task in running.tasks:
            task.cancel()
        await asyncio.gather(*running.tasks, return_exceptions=True)

    def _display(self, camera_id: str) -> DisplayConfig | None:
        camera = self._config().cameras.get(camera_id)
        return None if camera is None else camera.display

    def job_changed(self, job: JobLike) -> None:
        """After each change of a running job (event loop): its events on ``/rig/jobs``."""
        events = self._jobs.changed(job, time.time())
        running = self._running
        if running is None or not events or not running.jobs.has_sinks():
            return
        for event in events:
            running.jobs.log(event, log_time=round(event["at"] * 1e9))

    # -- reading (any thread) ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The ``foxglove`` section of GET /status."""
        running = self._running
        cfg = self._cfg
        out: dict[str, Any] = {
            "enabled": cfg.enabled,
            "running": running is not None,
            "url": None if running is None else running.url(),
            "clients": 0 if running is None else running.clients.count(),
            "image": cfg.image,
            "max_fps": cfg.max_fps,
            "error": self._error,
        }
        if running is not None and running.pump is not None:
            out["images"] = {
                cam: {"sent": c.sent, "errors": c.errors} for cam, c in running.pump.counts.items()
            }
        return out


def _close_channels(running: _Running) -> None:
    for channel in running.channels():
        channel.close()


__all__ = ["BACKLOG", "LiveServer"]
