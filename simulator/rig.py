"""SimRig: the simulated Açıkgöz rig, speaking docs/protocol.md over MQTT, HTTP and WebSocket.

Threads: one asyncio loop thread owned by the rig (frame clock, frame server, state publisher), paho's
network thread (commands over MQTT), the HTTP server thread and its per-request threads, and a small
render executor. Shared state is the physics (locked), the logs (locked) and the fault switches
(plain attributes read on each use).

Errors::

    SimError
    └── SimStartError      a server did not come up; carries the cause
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .commands import CommandHandler, CommandResult
from .config import CameraSim, Faults, SimConfig
from .frames import FrameRenderer
from .http_invoke import InvokeServer
from .mqtt_link import MqttLink
from .physics import RigPhysics
from .scene import shared_scene
from .stream import FrameProducer, FrameServer, SentFrame, StreamStats

__all__ = ["CameraSim", "Faults", "SentFrame", "SimConfig", "SimError", "SimRig", "SimStartError"]

log = logging.getLogger(__name__)

RENDER_WORKERS = 2  # the target machines have two cores
LOOP_STOP_TIMEOUT_S = 5.0


class SimError(Exception):
    """Base of the simulator's errors."""


class SimStartError(SimError):
    """The rig could not start; ``__cause__`` says why."""


class SimRig:
    """The whole simulated rig. ``start()`` brings every server up, ``stop()`` tears it down."""

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else SimConfig()
        self.faults: Faults = self.cfg.faults
        self._physics = RigPhysics(self.cfg)
        self._commands = CommandHandler(self.cfg, self._physics)
        self._log_lock = threading.Lock()
        # Overflow policy for both logs: the oldest entries are dropped (see SimConfig limits).
        self._sent: deque[SentFrame] = deque(maxlen=self.cfg.sent_frames_limit)
        self._received: deque[dict[str, Any]] = deque(maxlen=self.cfg.commands_limit)
        self._stats = StreamStats()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_stop: asyncio.Event | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_error: BaseException | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._http: InvokeServer | None = None
        self._mqtt: MqttLink | None = None
        self._renderers: dict[str, FrameRenderer] = {}
        self._state = "new"
        self.ws_url = ""
        self.http_url = ""

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> SimRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every server in the background; returns once all listen and MQTT is connected."""
        if self._state != "new":
            raise SimError(f"SimRig cannot start: it is {self._state}")
        self._state = "running"
        deadline = time.monotonic() + self.cfg.start_timeout_s
        try:
            self._init_renderers()
            self._start_http()
            self._start_mqtt(deadline)
            self._start_loop(deadline)
        except Exception as exc:
            self.stop()
            raise SimStartError(f"simulated rig failed to start: {exc}") from exc
        log.info(
            "simulated rig up: ws %s, http %s, mqtt %s:%d prefix %r",
            self.ws_url,
            self.http_url,
            self.cfg.mqtt_host,
            self.cfg.mqtt_port,
            self.cfg.topic_prefix,
        )

    def _init_renderers(self) -> None:
        scene = shared_scene()
        self._renderers = {
            cid: FrameRenderer(cid, cam, scene, self.cfg.jpeg_quality)
            for cid, cam in self.cfg.cameras.items()
        }
        self._executor = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="simrig-render")

    def _start_http(self) -> None:
        self._http = InvokeServer(self.cfg.http_host, self.cfg.http_port, self._on_http_invoke)
        self._http.start()
        self.http_url = f"http://{self.cfg.http_host}:{self._http.port}/api/1.0/invoke"

    def _start_mqtt(self, deadline: float) -> None:
        self._mqtt = MqttLink(self.cfg, self._on_mqtt_command)
        self._mqtt.start(max(0.1, deadline - time.monotonic()))

    def _start_loop(self, deadline: float) -> None:
        self._loop_thread = threading.Thread(target=self._loop_main, name="simrig-loop", daemon=True)
        self._loop_thread.start()
        if not self._ready.wait(max(0.1, deadline - time.monotonic())):
            raise TimeoutError("event loop thread did not become ready")
        if self._loop_error is not None:
            raise self._loop_error

    def stop(self) -> None:
        """Stop everything and join the threads; safe to call more than once."""
        if self._state == "stopped":
            return
        self._state = "stopped"
        self._stopping.set()  # cuts short delayed HTTP answers
        loop, loop_stop = self._loop, self._loop_stop
        if loop is not None and loop_stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop_stop.set)
            except RuntimeError:
                pass  # the loop already finished
        if self._loop_thread is not None:
            self._loop_thread.join(LOOP_STOP_TIMEOUT_S + 2.0)
            if self._loop_thread.is_alive():
                log.warning("event loop thread did not stop in time")
        if self._mqtt is not None:
            clear = self._state_devices() if self.cfg.clear_retained_on_stop else None
            self._mqtt.stop(clear_retained=clear)
        if self._http is not None:
            self._http.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        log.info("simulated rig stopped")

    # -- the loop thread ------------------------------------------------------------------------

    def _loop_main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:
            log.exception("simulated rig event loop failed")
            self._loop_error = exc
        finally:
            self._ready.set()  # never leave start() waiting on a dead thread

    async def _amain(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_stop = asyncio.Event()
        assert self._executor is not None
        producer = FrameProducer(self.cfg, self._physics, self._renderers, self._executor, time.monotonic())
        server = FrameServer(self.cfg, producer, self._stats, self._on_sent)
        async with asyncio.timeout(self.cfg.start_timeout_s):
            await producer.warm_up()
        port = await server.start()
        self.ws_url = f"{'wss' if self.cfg.ws_tls_cert else 'ws'}://{self.cfg.ws_host}:{port}"
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(producer.run_loop(), name="frame_clock_loop"),
                    tg.create_task(self._state_loop(), name="state_publish_loop"),
                ]
                self._ready.set()
                if self._stopping.is_set():  # stop() ran before _loop_stop existed
                    self._loop_stop.set()
                await self._loop_stop.wait()
                await server.close(LOOP_STOP_TIMEOUT_S)
                for task in tasks:
                    task.cancel()
        finally:
            await server.close(LOOP_STOP_TIMEOUT_S)  # idempotent; here for the error path

    async def _state_loop(self) -> None:
        """Publish every device's state at state_hz on a fixed schedule, also while idle."""
        assert self._mqtt is not None
        period = 1.0 / self.cfg.state_hz
        last_pantilt: dict[str, Any] | None = None
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            silent = self.faults.silent_state
            for device_id in self._state_devices():
                if device_id in silent:
                    continue
                if device_id == self.cfg.pantilt_id:
                    state = dict(self._physics.pantilt_state(now, self.faults.never_settle, last_pantilt))
                    last_pantilt = state
                else:
                    state = self._commands.state_of(device_id, now)
                self._mqtt.publish_state(device_id, state)
            # Fixed schedule; if publishing fell behind by more than a period, skip ahead.
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    def _state_devices(self) -> list[str]:
        return [self.cfg.pantilt_id, *self.cfg.zoom_cameras(), self.cfg.lrf_id]

    def _on_sent(self, frames: list[SentFrame]) -> None:
        with self._log_lock:
            self._sent.extend(frames)

    # -- commands -------------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        with self._log_lock:
            self._received.append(entry)

    def _on_mqtt_command(self, topic_device: str, payload: bytes) -> None:
        received_at, now = time.time(), time.monotonic()
        try:
            command: Any = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            command = None
        request_id = command.get("request_id") if isinstance(command, dict) else None
        if command is None:
            result = CommandResult(400, {"error": "payload is not JSON"})
        elif isinstance(command, dict) and command.get("device_id", topic_device) != topic_device:
            result = CommandResult(400, {"error": "device_id does not match the topic"})
        else:
            if isinstance(command, dict):
                command = {"device_id": topic_device, **command}
            result = self._commands.handle(command, now)
        respond = self.faults.mqtt_respond
        self._record(
            {
                "received_at": received_at,
                "transport": "mqtt",
                "device_id": topic_device,
                "command": command if command is not None else payload.decode("utf-8", "replace"),
                "request_id": request_id,
                "status_code": result.status_code,
                "response": result.response,
                "answered": respond,
            }
        )
        if respond and self._mqtt is not None:
            self._mqtt.respond(
                topic_device,
                {"request_id": request_id, "status_code": result.status_code, "response": result.response},
            )

    def _on_http_invoke(self, body: bytes) -> tuple[int, Any]:
        received_at, now = time.time(), time.monotonic()
        delay = self.faults.invoke_delay_s
        if delay > 0:
            self._stopping.wait(delay)
        try:
            command: Any = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            command = None
        fault_status = self.faults.invoke_status
        if fault_status is not None:
            result = CommandResult(fault_status, {"error": f"simulated fault: status {fault_status}"})
        elif command is None:
            result = CommandResult(400, {"error": "body is not JSON"})
        else:
            result = self._commands.handle(command, now)
        self._record(
            {
                "received_at": received_at,
                "transport": "http",
                "device_id": command.get("device_id") if isinstance(command, dict) else None,
                "command": command if command is not None else body.decode("utf-8", "replace"),
                "request_id": None,
                "status_code": result.status_code,
                "response": result.response,
                "answered": True,
            }
        )
        return result.status_code, result.response

    # -- observation ----------------------------------------------------------------------------

    def pose(self) -> dict[str, Any]:
        """Ground-truth pose now: pan_deg_x100, tilt_deg_x100, rgb_zoom, swir_zoom_step, moving
        (a move pending or in progress), lrf_distance_m, zooms (per zoom camera). No jitter."""
        return self._physics.pose_dict(time.monotonic())

    def sent_frames(self) -> list[SentFrame]:
        """Every frame actually sent on any connection, oldest first (a copy), with its ground truth:
        the stamp sent (``timestamp_ns``, None if the camera sends none), the true capture time
        (``captured_ns``) and pose, and when it was released (``available_at_epoch``) and sent."""
        with self._log_lock:
            return list(self._sent)

    def commands_received(self) -> list[dict[str, Any]]:
        """Every command received on either transport, oldest first: received_at (epoch), transport,
        device_id, command, request_id, status_code, response, answered."""
        with self._log_lock:
            return [dict(entry) for entry in self._received]

    def stats(self) -> dict[str, Any]:
        """Counters of the frame server and the renderers; with the send queue also the backlog:
        ``queue_depth`` {connection id: {camera: frames queued}} of open connections, ``queue_depth_max``
        {camera: deepest seen} and ``queue_overflow_drops`` (see StreamStats)."""
        return {
            **dataclasses.asdict(self._stats),  # copies malformed_sent too
            "renders": {cid: r.renders for cid, r in self._renderers.items()},
            "cache_hits": {cid: r.cache_hits for cid, r in self._renderers.items()},
        }
