"""The capture service: owns the loop, the MQTT link, the streams, the job queue and history.

Start order (each step needs the one before): runtime → state hub and MQTT link → frame router and
streams → job worker. Stop runs the other way. Flask views call only the synchronous methods here.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from camera.frames import Frame
from camera.pool import FramePool, lower_thread_priority
from camera.router import FrameRouter
from camera.stream import StreamClient
from mqtt_control.commands import CommandTransport, HttpTransport, MqttTransport
from mqtt_control.hub import StateHub
from mqtt_control.link import MqttLink
from service.atomic import write_json_atomic
from service.config import Config
from service.errors import QueueFull
from service.history import HistoryStore
from service.jobs import Job, JobRunner
from service.recovery import recover
from service.runtime import LoopRuntime

log = logging.getLogger(__name__)

# Finished jobs kept in memory for GET /jobs/<id>; older ones live on in history.json.
MAX_JOBS_KEPT = 500
MIB = 2**20
POOL_HEADROOM_BYTES = 128 * MIB  # of a memory cap, kept out of the warm pool: see pool_max_bytes
# Writer threads run on CPU time the stream reader (nice 0) and the pool's grower (nice 10) do not
# want: encoding can always catch up later (frames wait in memory or in the spill file), while a
# reader that falls behind makes the rig skip frames, lost for good. Not SCHED_IDLE: a writer thread
# holds the GIL between its C calls, and a SCHED_IDLE thread preempted while holding it gets no CPU
# until a core is idle, so the reader waits on the GIL meanwhile. With the warm pool, W2 measured
# 97.7 % / 96.3 % at SCHED_IDLE and 99.7-100 % at nice 19, with a shorter save.
WRITER_NICE = 19


class CaptureService:
    def __init__(self, config: Config, base_dir: Path | None = None, config_path: Path | None = None) -> None:
        self.config = config
        self.base_dir = base_dir or Path.cwd()
        self.paths = config.resolve(self.base_dir)
        self.runtime = LoopRuntime()
        self.history = HistoryStore(self.paths.history_file)
        self.started_at = time.time()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        workers = config.recording.writer_threads or (os.cpu_count() or 2)
        # One thread: history writes land in the order they were made.
        self._history_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self.executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="writer",
            initializer=lower_thread_priority,
            initargs=(WRITER_NICE,),
        )
        self.pool = FramePool(
            max_bytes=pool_max_bytes(config.recording.memory_cap_mb),
            warm_s=config.recording.warm_buffer_s,
            ingest_bytes=lambda: sum(stream.state.bytes for stream in self.streams),
        )
        self.hub: StateHub
        self.link: MqttLink
        self.router: FrameRouter
        self.streams: list[StreamClient] = []
        self._queue: asyncio.Queue[Job]
        self.config_path = config_path
        self._started = False
        self.recovered: list[dict[str, Any]] = []
        self.storage_warnings: list[str] = []
        self._history_marks: dict[str, tuple[str, int]] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.storage_warnings = []
        for folder in (self.paths.save_dir, self.paths.images_data_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                # Not fatal: the service still answers, and each recording fails with this reason.
                self.storage_warnings.append(f"cannot create {folder}: {exc}")
                log.error("cannot create %s: %s", folder, exc)
        self.recovered = recover(self.paths.save_dir, self.history)
        self.runtime.start()
        self.runtime.submit(self._init_on_loop())
        self.link.start()
        for stream in self.streams:
            self.runtime.spawn(stream.run_loop(), name=f"stream {stream.url}")
        self.runtime.spawn(self._worker_loop(), name="job worker")
        self.pool.start()  # with warm_buffer_s 0 its target is 0: it waits for a PUT /config
        self._started = True

    async def _init_on_loop(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.hub = StateHub(cfg)
        self.link = MqttLink(cfg, self.hub, loop)
        self.router = FrameRouter(cfg)
        formats = {cam: c.pixel_format for cam, c in cfg.cameras.items()}
        urls: dict[str, dict[str, str]] = {}
        for stream in cfg.streams:
            chosen = stream.cameras or tuple(cfg.cameras)
            urls.setdefault(stream.url, {}).update({c: formats[c] for c in chosen})
        self.streams = [StreamClient(url, fmts, cfg.stream_client, self.router) for url, fmts in urls.items()]
        self._queue = asyncio.Queue(maxsize=cfg.api.queue_size)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        # The MQTT thread hands messages to the loop, so it stops first.
        self.link.stop()
        self.runtime.stop()
        self._history_io.shutdown(wait=True)
        self.executor.shutdown(wait=True)
        self.pool.close()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until the broker is connected and every stream has connected once."""
        deadline = time.monotonic() + timeout
        if not self.link.wait_connected(timeout):
            return False
        while time.monotonic() < deadline:
            if all(s.state.connected for s in self.streams):
                return True
            time.sleep(0.05)
        return False

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any], client: dict[str, Any]) -> Job:
        """Queue a validated batch. Raises BrokerUnavailable or QueueFull (nothing queued then)."""
        self.link.require_connected()
        job = Job(Job.new_id(), body, client)
        added = self.runtime.submit(self._enqueue(job), timeout=10)
        added.result(timeout=30)  # the history entry is on disk before the caller hears "accepted"
        return job

    async def _enqueue(self, job: Job) -> Future[None]:
        if self._queue.full():
            raise QueueFull(self._queue.maxsize)
        self.jobs[job.id] = job
        while len(self.jobs) > MAX_JOBS_KEPT:
            oldest = next(iter(self.jobs))
            if not self.jobs[oldest].finished:
                break
            self.jobs.popitem(last=False)
        # Queued on the one history thread before the job can run, so every later update of this
        # job finds its entry (that thread writes in submission order).
        added = self._history_io.submit(self.history.add, copy.deepcopy(self._history_entry(job)))
        self._queue.put_nowait(job)
        return added

    def record_rejected(self, body: Any, client: dict[str, Any], status: int, error: dict[str, Any]) -> str:
        entry_id = time.strftime("rej-%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        self.history.add(
            {
                "id": entry_id,
                "received_at": time.time(),
                "client": client,
                "request": body,
                "status": "rejected",
                "http_status": status,
                "error": error,
            }
        )
        return entry_id

    def _history_entry(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "received_at": job.created_at,
            "client": job.client,
            "request": job.body,
            "transport": self.config.command_transport,
            "status": job.status,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "results": job.results,
            "error": job.error,
            "sessions": job.sessions,
            "final_pose": job.final_pose,
        }

    def _job_changed(self, job: Job) -> None:
        # history.json follows each status change (queued → running → outcome) and each new
        # session, so a killed process leaves a true record of how far every job got. The write
        # (with fsync) runs on the history thread, never on the event loop.
        mark = (job.status, len(job.sessions))
        written: Future[None] | None = None
        if self._history_marks.get(job.id) != mark:
            self._history_marks[job.id] = mark
            entry = copy.deepcopy(self._history_entry(job))
            entry.pop("id")
            written = self._history_io.submit(self._update_history, job.id, entry)
        if job.finished:
            self._history_marks.pop(job.id, None)
            # Whoever waits on the job reads history.json next: release them once it is written.
            if written is None:
                job.done.set()
            else:
                written.add_done_callback(lambda _f: job.done.set())

    def _update_history(self, job_id: str, entry: dict[str, Any]) -> None:
        try:
            self.history.update(job_id, **entry)
        except OSError:
            log.exception("could not write history for %s", job_id)

    async def _worker_loop(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if job.cancel_requested:
                    job.status, job.phase, job.finished_at = "cancelled", "done", time.time()
                    job.error = {
                        "type": "JobCancelled",
                        "message": f"job {job.id} was cancelled while queued",
                    }
                    job.results = [
                        {"request": c, "status": "skipped", "status_code": None} for c in job.commands
                    ]
                    self._job_changed(job)
                    continue
                # Built per job so that a configuration saved through PUT /config is in force from
                # the next job on (keys that need a reconnect are reported by PUT as restart_required).
                config = self.config
                transport: CommandTransport = (
                    HttpTransport(config) if config.command_transport == "http" else MqttTransport(self.link)
                )
                runner = JobRunner(
                    config,
                    self.paths,
                    self.hub,
                    self.router,
                    transport,
                    self.streams,
                    self.executor,
                    self._job_changed,
                    self.pool if config.recording.warm_buffer_s > 0 else None,
                )
                try:
                    await runner.run(job)
                finally:
                    if isinstance(transport, HttpTransport):
                        transport.close()
            finally:
                self._queue.task_done()

    def cancel(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None or job.finished:
            return job

        async def request_cancel() -> None:
            job.cancel_requested = True
            if job._cancel_event is not None:
                job._cancel_event.set()

        self.runtime.submit(request_cancel(), timeout=5)
        return job

    def update_config(self, new: Config) -> dict[str, list[str]]:
        """Save ``new`` to config.json atomically and apply it from the next job.

        Returns which top-level keys were applied and which need a restart to take effect.
        """
        if self.config_path is None:
            raise RuntimeError("the service was started without a config file")
        old_data, new_data = self.config.to_json(), new.to_json()
        changed = sorted(k for k in new_data if new_data[k] != old_data.get(k))
        live = {
            "command_transport",
            "invoke_url",
            "http",
            "positioning_commands",
            "settle",
            "recording",
            "extra_devices",
        }
        api_live = {"token"}
        restart = [k for k in changed if k not in live and k != "api"]
        if "api" in changed:
            api_changed = {k for k in new_data["api"] if new_data["api"][k] != old_data["api"].get(k)}
            restart += [f"api.{k}" for k in sorted(api_changed - api_live)]
        # The writer threads are made once, at start.
        if new_data["recording"]["writer_threads"] != old_data["recording"]["writer_threads"]:
            restart.append("recording.writer_threads")
        write_json_atomic(self.config_path, new_data)
        self.config = new
        self.pool.configure(pool_max_bytes(new.recording.memory_cap_mb), new.recording.warm_buffer_s)
        self.hub.reconfigure(new)
        return {"changed": changed, "restart_required": restart}

    def job_timeout(self, body: dict[str, Any]) -> float:
        """Worst case for one job: each command's timeouts, each settle, each recording, saving."""
        cfg = self.config
        total = 0.0
        for cmd in body.get("requests", []):
            total += cfg.http.connect_timeout_s + cfg.http.read_timeout_s + cfg.mqtt.response_timeout_s
            if cmd.get("command_id") == cfg.recording.command_id:
                total += cfg.settle.timeout_s + float(cmd.get("args", {}).get("duration_second", 0)) * 3
        return total + cfg.settle.timeout_s + cfg.api.wait_margin_s

    def queue_length(self) -> int:
        return sum(1 for j in self.jobs.values() if j.status == "queued")

    def latest_frame(self, camera_id: str) -> Frame | None:
        """The newest frame received from a camera (for live thumbnails), or None."""

        async def get() -> Frame | None:
            return self.router.latest.get(camera_id)

        return self.runtime.submit(get(), timeout=5)

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        async def snapshot() -> dict[str, Any]:
            return {
                "broker": self.link.status(),
                "devices": self.hub.status(),
                "pose": self.hub.pose(),
                "streams": [s.status() for s in self.streams],
                "cameras": self.router.status(),
                "unknown_camera_frames": self.router.unknown_camera_frames,
                "unreadable_messages": self.router.unreadable_messages,
                # "idle": no job needs frames, so the streams are answered late (camera.router).
                "stream_rate": "idle"
                if self.config.stream_client.idle_ack_delay_s > 0 and not self.router.full_rate.is_set()
                else "full",
            }

        data = self.runtime.submit(snapshot(), timeout=5)
        data["command_transport"] = self.config.command_transport
        data["queue_length"] = self.queue_length()
        data["history_warning"] = self.history.warning
        data["storage_warnings"] = self.storage_warnings
        pool = self.pool.stats()
        data["frame_pool"] = {
            "mapped_mib": round(pool.mapped_bytes / MIB, 1),
            "free_mib": round(pool.free_bytes / MIB, 1),
            "in_use_mib": round(pool.in_use_bytes / MIB, 1),
            "peak_mapped_mib": round(pool.peak_mapped_bytes / MIB, 1),
            "warm_target_mib": round(pool.target_bytes / MIB, 1),
            "misses": pool.misses,
        }
        return data


def pool_max_bytes(memory_cap_mb: float | None) -> int | None:
    """The warm pool's share of ``recording.memory_cap_mb``: the cap less room for the pre-roll and the
    frames on their way to the spill file (a quarter of the cap, at most POOL_HEADROOM_BYTES)."""
    if memory_cap_mb is None:
        return None
    cap = int(memory_cap_mb * MIB)
    return cap - min(cap // 4, POOL_HEADROOM_BYTES)
