"""The capture service: the composition root. It builds the parts and starts and stops them in order.

Parts (each its own class): the configuration in force and PUT /config (service.config_reloader), the
job queue and registry (service.jobs.queue), the scans (service.scans.registry), the presets and
schedules, the session catalog and uploads, and the loop-side I/O (state hub, MQTT link, frame
router, streams). Start order (each step needs the one before; :meth:`CaptureService.start` lists
them): storage folders → recovery → catalog → runtime → loop-side parts → MQTT link → streams → job worker →
live view (service.live) → frame pool → scheduler → uploads. Stop runs the other way. Flask views call
only the synchronous methods here, or a part through a narrow protocol (api.context).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from camera.frames import Frame
from camera.pool import FramePool
from camera.router import FrameRouter
from camera.stream import StreamClient
from mqtt_control.commands import CommandTransport, HttpTransport, MqttTransport
from mqtt_control.hub import StateHub
from mqtt_control.link import MqttLink
from rigcore.config import Config
from rigcore.memory import MIB, pool_max_bytes
from rigcore.runtime import LoopRuntime
from service.aftercare import Aftercare
from service.config_reloader import ConfigReloader, InForce
from service.disk_guard import check_space, storage_status
from service.events.desk import EventDesk, Wiring
from service.fleet.fleet import Fleet
from service.history.store import HistoryStore
from service.jobs.batch_runner import JobRunner
from service.jobs.context import RunContext
from service.jobs.job import Job
from service.jobs.queue import JobQueue
from service.jobs.scan_runner import ScanRunner
from service.jobs.session_save import SaveServices
from service.jobs.work import Work, WorkKind
from service.live.server import LiveServer
from service.presets.store import PresetStore, presets_path
from service.scans.registry import ScanRegistry
from service.schedules.rules import ScheduleStore, schedules_path
from service.schedules.scheduler import Scheduler
from service.status import UNFINISHED, JobPhase, JobStatus
from service.uploads.uploader import Uploader
from sessions.catalog import Catalog
from sessions.frame_sets import write_session_frame_sets
from sessions.manifest import SessionManifest
from sessions.recovery import recover_sessions
from sessions.report import session_report_hook, zoom_fields_of
from sessions.writer_threads import WRITER_NICE, WriterThreads

log = logging.getLogger(__name__)

# Writer threads run on CPU time the stream reader (nice 0) and the pool's grower (nice 10) do not
# want: encoding can always catch up later (frames wait in memory or in the spill file), while a
# reader that falls behind makes the rig skip frames, lost for good. Not SCHED_IDLE: a writer thread
# holds the GIL between its C calls, and a SCHED_IDLE thread preempted while holding it gets no CPU
# until a core is idle, so the reader waits on the GIL meanwhile. With the warm pool, W2 measured
# 97.7 % / 96.3 % at SCHED_IDLE and 99.7-100 % at nice 19, with a shorter save. While frames pile up
# (the oldest waited a second), recording.catchup_threads more threads at nice 10 help
# (sessions.writer_threads): a thread's nice cannot be lowered again once raised without privileges.


class Runner(Protocol):
    async def run(self, job: Job) -> None: ...


# How each kind of work runs (service.jobs.work): the dispatch table of the job worker.
RUNNERS: Mapping[WorkKind, Callable[[RunContext], Runner]] = {"batch": JobRunner, "scan": ScanRunner}


class CaptureService:
    def __init__(self, config: Config, base_dir: Path | None = None, config_path: Path | None = None) -> None:
        self.base_dir = base_dir or Path.cwd()
        self.paths = config.resolve(self.base_dir)
        self.config_path = config_path
        self.runtime = LoopRuntime()
        self.history = HistoryStore(self.paths.history_file)
        owned = (self.history.journal_path, self.history.archive_dir)
        self.settings = ConfigReloader(config, config_path, self.base_dir, self.paths, owned)
        self.settings.on_change(self._apply_config)
        self.started_at = time.time()
        self._started = False
        self.recovered: list[SessionManifest] = []
        self.storage_warnings: list[str] = []
        for init in (
            self._init_writers,
            self._init_stores,
            self._init_jobs,
            self._init_sessions,
            self._init_events,
        ):
            init(config)

    # -- construction, in order (nothing here touches the rig, the broker or the loop) ---------------
    def _init_writers(self, config: Config) -> None:
        workers = config.recording.writer_threads or (os.cpu_count() or 2)
        self.executor = WriterThreads(workers, config.recording.catchup_threads, nice=WRITER_NICE)
        self.pool = FramePool(
            max_bytes=pool_max_bytes(config.recording.memory_cap_mb),
            warm_s=config.recording.warm_buffer_s,
            ingest_bytes=lambda: sum(stream.state.bytes for stream in self.streams),
        )
        self.hub: StateHub
        self.link: MqttLink
        self.router: FrameRouter
        self.streams: list[StreamClient] = []

    def _init_stores(self, config: Config) -> None:
        self.presets = PresetStore(presets_path(self.config_path, self.base_dir))
        self.schedules = ScheduleStore(schedules_path(self.config_path, self.base_dir))

    def _init_jobs(self, config: Config) -> None:
        # Work after a session is saved (derived files, catalog, uploads), off the recording path.
        self.aftercare = Aftercare()
        self.saves = SaveServices(self.paths, self.executor, self.pool, self.aftercare.session_saved)
        self.scans = ScanRegistry(self.paths.images_data_dir, self.paths.save_dir, self.aftercare)
        self.jobs = JobQueue(self.history, self.runtime, self.scans, lambda: self.config.command_transport)
        self.scheduler = Scheduler(self.schedules, self)
        # The live view in Foxglove (service.live): fed by the router, the hub and each job change.
        self.live = LiveServer(self.runtime, lambda: self.config)

    def _init_sessions(self, config: Config) -> None:
        # The session catalog (sessions.catalog), refreshed from the folders in start(), in the
        # background; copies to the object store (storage.remote), whose states the catalog follows.
        paths = self.paths
        self.catalog = Catalog(
            paths.save_dir, paths.images_data_dir, node_id=config.node.id, outbox=config.catalog.shared
        )
        # This node among the fleet (service.fleet): heartbeat, and the outbox to a shared catalog.
        self.fleet = Fleet(config.node, config.catalog, self.catalog, self)
        self.uploads = Uploader(
            config.storage.remote, paths.save_dir, paths.images_data_dir, is_busy=self._recording
        )
        self.uploads.add_listener(self.catalog.set_upload_state)
        # The work after each saved session or scan manifest, in the order it runs (one thread): files
        # derived from the folder first, then the catalog (its row counts the folder's bytes), then the
        # upload, which must see the folder complete.
        self.aftercare.on_session("frame_sets", write_session_frame_sets)
        self.aftercare.on_session("report", session_report_hook(lambda: zoom_fields_of(self.config)))
        self.aftercare.on_session("catalog", self.catalog.add_session)
        self.aftercare.on_scan("catalog", self.catalog.add_scan)
        self.aftercare.on_session("upload", self.uploads.session_saved)
        self.aftercare.on_scan("upload", self.uploads.scan_written)

    def _init_events(self, config: Config) -> None:
        # Event capture (service.events): its sessions are saved like a recording's, aftercare included.
        self.events = EventDesk(self.runtime, self.in_force, self.saves)
        self.settings.add_check(self.events.refuse_unfit)  # PUT /config: a ring too big now is refused

    def _recording(self) -> bool:
        """A job or an event is recording or saving (uploads yield to it)."""
        return self.jobs.is_recording() or self.events.busy()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        for step in (
            self._start_storage,
            self._start_recovery,
            self.catalog.start_refresh,  # after recovery: recovered sessions have their session.json
            self.runtime.start,
            lambda: self.runtime.submit(self._init_on_loop()),  # the loop-side parts
            self._start_workers,
            lambda: self.live.start(self.config, self.router, self.hub, self.in_force().layout),
            self.pool.start,  # with warm_buffer_s 0 its target is 0: it waits for a PUT /config
            self.scheduler.start,  # fires once the service is ready (wait_ready)
            self.uploads.start,  # resumes the queue on disk and queues saved sessions not in it
            self.fleet.start,  # heartbeat and outbox threads: they read the link and the streams
        ):
            step()
        self._started = True

    def _start_storage(self) -> None:
        self.storage_warnings = []
        for folder in (self.paths.save_dir, self.paths.images_data_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                # Not fatal: the service still answers, and each recording fails with this reason.
                self.storage_warnings.append(f"cannot create {folder}: {exc}")
                log.error("cannot create %s: %s", folder, exc)

    def _start_recovery(self) -> None:
        """Sessions, scans and jobs a killed process left unfinished: recorded truthfully
        (sessions.recovery)."""
        recovered = recover_sessions(self.paths.save_dir, self.paths.spill_dir)
        for manifest in recovered:
            entry = self.history.get(manifest.job_id) if manifest.job_id else None
            if entry is not None and manifest.job_id:
                summary = manifest.summary(self.paths.save_dir / manifest.session_id).to_json()
                self.history.update(manifest.job_id, sessions=[*entry.get("sessions", []), summary])
        self.scans.recover(recovered)
        # Only recent entries can be unfinished (history never archives them): this reads no archive.
        for entry in self.history.unfinished():
            if entry.get("status") in UNFINISHED:
                self.history.update(
                    str(entry["id"]),
                    status=str(JobStatus.INTERRUPTED),
                    phase=str(JobPhase.DONE),
                    finished_at=time.time(),
                    error={"type": "Interrupted", "message": "the service stopped before this job finished"},
                )
        self.recovered = recovered

    async def _init_on_loop(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.hub = StateHub(self.settings.in_force().layout, cfg.settle, cfg.mqtt.state_topic)
        self.link = MqttLink(cfg.mqtt, cfg.state_devices(), self.hub, loop)
        self.router = FrameRouter(
            cfg.cameras,
            cfg.stream_client.preroll_s,
            cfg.capture_time,
            {cam: c.latency_s for cam, c in cfg.cameras.items()},
        )
        formats = {cam: c.pixel_format for cam, c in cfg.cameras.items()}
        urls: dict[str, dict[str, str]] = {}
        for stream in cfg.streams:
            chosen = stream.cameras or tuple(cfg.cameras)
            urls.setdefault(stream.url, {}).update({c: formats[c] for c in chosen})
        self.streams = [StreamClient(url, fmts, cfg.stream_client, self.router) for url, fmts in urls.items()]
        self.jobs.init_on_loop(cfg.api.queue_size)
        await self.events.start(Wiring(self.router, self.hub, self.link, self.streams))

    def _start_workers(self) -> None:
        self.link.start()
        for stream in self.streams:
            self.runtime.spawn(stream.run_loop(), name=f"stream {stream.url}")
        self.runtime.spawn(self.jobs.work_loop(self._run), name="job worker")

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for step in (
            self.scheduler.stop,  # first: it queues jobs
            self.fleet.stop,  # the heartbeat stops (the node goes offline); the outbox keeps its rows
            self.live.close,  # before the loop: its feeds run there
            self.link.stop,  # the MQTT thread hands messages to the loop, so it stops first
            self.runtime.stop,
            self.jobs.close,
            lambda: self.executor.shutdown(wait=True),
            self.aftercare.stop,
            self.catalog.close,
            self.uploads.stop,  # an object in flight is finished or resumed at the next start
            self.pool.close,
        ):
            step()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until the broker is connected and every stream has connected once."""
        deadline = time.monotonic() + timeout
        if not self.link.wait_connected(timeout):
            return False
        while time.monotonic() < deadline:
            if self.streams_connected():
                return True
            time.sleep(0.05)
        return False

    def broker_connected(self) -> bool:
        return self.link.connected

    def streams_connected(self) -> bool:
        return all(s.state.connected for s in self.streams)

    # -- jobs ----------------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any], work: Work, client: dict[str, Any]) -> dict[str, Any]:
        """Queue checked work (a batch or a scan, service.jobs.work); return the job's view.

        Raises BrokerUnavailable, QueueFull, or OSError when history cannot be written: nothing is
        registered, queued or run then. Whatever can fail comes first — the job's history entry (a copy
        of the whole body), a place in the queue, the entry on disk — and only then is the job registered
        and queued, in one step on the loop: no job is ever listed without being queued. The history
        entry is on disk before the caller hears "accepted".
        """
        self.link.require_connected()
        self.check_disk(work)  # InsufficientStorage (507): nothing queued, nothing sent to the rig
        return self.jobs.submit(body, work, client)

    def check_disk(self, work: Work) -> None:
        """Refuse work whose recordings (a scan: one per pose) would leave less than
        ``storage.min_free_mb`` free in save_dir (service.disk_guard), from the cameras' byte rates
        now. Each recording checks again right before it starts (service.jobs.record_step)."""
        cfg = self.config
        recordings = work.recordings()
        if not recordings or cfg.storage.min_free_mb <= 0:
            return

        async def rates() -> dict[str, float]:
            return self.router.byte_rates()

        rates_now = self.runtime.submit(rates(), timeout=5)
        check_space(recordings, rates_now, cfg.cameras, self.paths.save_dir, cfg.storage.min_free_mb)

    async def _run(self, job: Job) -> None:
        # Built per job so that a configuration saved through PUT /config is in force from the next job
        # on (keys that need a reconnect are reported by PUT as restart_required).
        in_force = self.settings.in_force()
        config = in_force.config
        transport: CommandTransport = (
            HttpTransport(config.invoke_url, config.http)
            if config.command_transport == "http"
            else MqttTransport(self.link)
        )
        ctx = RunContext(
            config=config,
            layout=in_force.layout,
            hub=self.hub,
            router=self.router,
            transport=transport,
            streams=self.streams,
            saves=self.saves,
            on_change=self._job_changed,
            save_scan=self.scans.write,
        )
        try:
            await RUNNERS[job.kind](ctx).run(job)
        finally:
            if isinstance(transport, HttpTransport):
                transport.close()

    def _job_changed(self, job: Job) -> None:
        self.jobs.job_changed(job)
        self.live.job_changed(job)  # its events on the live /rig/events topic

    def job_view(self, job_id: str) -> dict[str, Any] | None:
        """A job's view (any thread): live from memory, else from history.json, else None."""
        return self.jobs.job_view(job_id)

    def job_views(self) -> list[dict[str, Any]]:
        return self.jobs.job_views()

    def timeout(self, work: Work) -> float:
        """How long a waiting POST waits for its job: the work's worst case plus ``api.wait_margin_s``."""
        in_force = self.settings.in_force()
        return work.worst_case(in_force.config, in_force.layout) + in_force.config.api.wait_margin_s

    # -- configuration -----------------------------------------------------------------------------
    def _apply_config(self, in_force: InForce) -> None:
        new = in_force.config
        self.pool.configure(pool_max_bytes(new.recording.memory_cap_mb), new.recording.warm_buffer_s)
        if self._started:
            self.runtime.submit(self._reconfigure_hub(in_force), timeout=5)
            self.runtime.submit(self.events.apply(in_force), timeout=5)  # the ring resizes now
            self.live.configure(new, in_force.layout)  # restarts the live server if its section changed

    async def _reconfigure_hub(self, in_force: InForce) -> None:
        # The hub is loop-only: its devices and settle rule change between two messages, never mid-one.
        self.hub.reconfigure(in_force.layout, in_force.config.settle)

    @property
    def config(self) -> Config:
        """The configuration in force (replaced whole by PUT /config)."""
        return self.settings.config

    def in_force(self) -> InForce:
        """The configuration and its rig layout, as one consistent pair."""
        return self.settings.in_force()

    # -- the rig now -------------------------------------------------------------------------------
    def latest_frame(self, camera_id: str) -> Frame | None:
        """The newest frame received from a camera (for live thumbnails), or None."""

        async def get() -> Frame | None:
            return self.router.latest.get(camera_id)

        return self.runtime.submit(get(), timeout=5)

    def pose(self) -> dict[str, Any]:
        """The pose the rig holds now, as the state hub knows it (read on the loop)."""

        async def get() -> dict[str, Any]:
            return dict(self.hub.pose())

        return self.runtime.submit(get(), timeout=5)

    def status(self) -> dict[str, Any]:
        config = self.config

        async def snapshot() -> dict[str, Any]:
            return {
                "broker": self.link.status(),
                "devices": self.hub.status(config.state_devices()),
                "pose": self.hub.pose(),
                "streams": [s.status() for s in self.streams],
                "cameras": self.router.status(),
                "unknown_camera_frames": self.router.unknown_camera_frames,
                "unreadable_messages": self.router.unreadable_messages,
                # "idle": no job needs frames, so the streams are answered late (camera.router).
                "stream_rate": "idle"
                if config.stream_client.idle_ack_delay_s > 0
                and not (self.router.full_rate.is_set() or self.router.full_rate_cameras)
                else "full",
            }

        data = self.runtime.submit(snapshot(), timeout=5)
        data["command_transport"] = config.command_transport
        data["queue_length"] = self.jobs.queue_length()
        data["history_warning"] = self.history.warning
        # The save folder's free space and the reserve (service.disk_guard); below it, a warning.
        data["disk"] = storage_status(self.paths.save_dir, config.storage.min_free_mb)
        low_disk = [data["disk"]["warning"]] if data["disk"]["warning"] else []
        data["storage_warnings"] = [*self.storage_warnings, *low_disk]
        data["catalog"] = {**self.catalog.status(), **self.fleet.status()}
        data["frame_pool"] = pool_status(self.pool)
        data["events"] = self.events.status()  # the event ring, its triggers (service.events)
        data["foxglove"] = self.live.status()
        return data


def pool_status(frame_pool: FramePool) -> dict[str, Any]:
    """The warm frame pool in /status (MiB)."""
    pool = frame_pool.stats()
    return {
        "mapped_mib": round(pool.mapped_bytes / MIB, 1),
        "free_mib": round(pool.free_bytes / MIB, 1),
        "in_use_mib": round(pool.in_use_bytes / MIB, 1),
        "peak_mapped_mib": round(pool.peak_mapped_bytes / MIB, 1),
        "warm_target_mib": round(pool.target_bytes / MIB, 1),
        "misses": pool.misses,
    }
