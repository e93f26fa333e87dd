"""The capture service: owns the loop, the MQTT link, the streams, the job queue and history.

Start order (each step needs the one before): runtime → state hub and MQTT link → frame router and
streams → job worker. Stop runs the other way. Flask views call only the synchronous methods here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from camera.frames import Frame
from camera.pool import FramePool, lower_thread_priority
from camera.router import FrameRouter
from camera.stream import StreamClient
from mqtt_control.commands import CommandTransport, HttpTransport, MqttTransport
from mqtt_control.hub import StateHub
from mqtt_control.link import MqttLink
from rigcore.atomic import write_json_atomic
from rigcore.config import Config
from rigcore.config_policy import Place, change_report, plan_change, read_file_only, with_file_only
from rigcore.errors import QueueFull
from rigcore.memory import MIB, pool_max_bytes
from rigcore.rig import RigLayout
from rigcore.runtime import LoopRuntime
from service.aftercare import Aftercare
from service.context import RunContext
from service.disk_guard import PlannedRecording, check_space, storage_status
from service.history import HistoryStore, refused_request
from service.job import Job, JobStatus, view_from_history
from service.plan import Plan, RecordStep, compile_plan
from service.presets import PresetStore, presets_path
from service.runner import JobRunner
from service.scan_plan import ScanSpec, scan_batch
from service.scan_run import ScanRun, interrupted, scan_view
from service.scan_runner import ScanRunner
from service.scheduler import Scheduler
from service.schedules import ScheduleStore, schedules_path
from service.uploads import Uploader
from sessions.catalog import Catalog
from sessions.frame_sets import write_session_frame_sets
from sessions.manifest import SessionManifest
from sessions.recovery import recover_sessions
from sessions.report import write_session_report
from sessions.scan_manifest import (
    ScanManifest,
    list_scan_manifests,
    read_scan_manifest,
    write_scan_manifest,
)

log = logging.getLogger(__name__)

# Finished jobs kept in memory for GET /jobs/<id>; older ones live on in history.json.
MAX_JOBS_KEPT = 500
# Writer threads run on CPU time the stream reader (nice 0) and the pool's grower (nice 10) do not
# want: encoding can always catch up later (frames wait in memory or in the spill file), while a
# reader that falls behind makes the rig skip frames, lost for good. Not SCHED_IDLE: a writer thread
# holds the GIL between its C calls, and a SCHED_IDLE thread preempted while holding it gets no CPU
# until a core is idle, so the reader waits on the GIL meanwhile. With the warm pool, W2 measured
# 97.7 % / 96.3 % at SCHED_IDLE and 99.7-100 % at nice 19, with a shorter save.
WRITER_NICE = 19


@dataclass(frozen=True)
class InForce:
    config: Config
    layout: RigLayout


class CaptureService:
    def __init__(self, config: Config, base_dir: Path | None = None, config_path: Path | None = None) -> None:
        self._in_force = InForce(config, RigLayout.from_config(config))
        self.base_dir = base_dir or Path.cwd()
        self.paths = config.resolve(self.base_dir)
        self.runtime = LoopRuntime()
        self.history = HistoryStore(self.paths.history_file)
        self.started_at = time.time()
        # Loop side: the live jobs. Flask side: ``_views``, a mapping the loop replaces whole after each
        # change (copy on write), so a view reads one consistent snapshot without a lock.
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._views: dict[str, dict[str, Any]] = {}
        self._done_events: dict[str, threading.Event] = {}  # set once a job's outcome is in history
        self._scan_views: dict[str, dict[str, Any]] = {}  # scans in memory, copy on write like _views
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
        self.presets = PresetStore(presets_path(config_path, self.base_dir))
        self.schedules = ScheduleStore(schedules_path(config_path, self.base_dir))
        self.scheduler = Scheduler(self.schedules, self)
        self._started = False
        self.recovered: list[SessionManifest] = []
        self.storage_warnings: list[str] = []
        self._history_marks: dict[str, tuple[str, int]] = {}
        self._reserved: set[str] = set()  # jobs accepted, their entry being written (loop only)
        # Work after a session is saved (derived files, catalog, uploads), off the recording path.
        self.aftercare = Aftercare()
        # The session catalog (sessions.catalog), refreshed from the folders in start(), in the
        # background; copies to the object store (storage.remote), whose states the catalog follows.
        self.catalog = Catalog(self.paths.save_dir, self.paths.images_data_dir)
        self.uploads = Uploader(
            config.storage.remote, self.paths.save_dir, self.paths.images_data_dir, is_busy=self.is_recording
        )
        self.uploads.add_listener(self.catalog.set_upload_state)
        self._register_aftercare()

    def _register_aftercare(self) -> None:
        """The work after each saved session or scan manifest, in the order it runs (one thread):
        files derived from the folder first, then the catalog (its row counts the folder's bytes),
        then the upload, which must see the folder complete."""
        self.aftercare.on_session("frame_sets", write_session_frame_sets)
        self.aftercare.on_session("report", write_session_report)
        self.aftercare.on_session("catalog", self.catalog.add_session)
        self.aftercare.on_scan("catalog", self.catalog.add_scan)
        self.aftercare.on_session("upload", self.uploads.session_saved)
        self.aftercare.on_scan("upload", self.uploads.scan_written)

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
        self.recovered = self._recover()
        self.catalog.start_refresh()  # after recovery: recovered sessions have their session.json
        self.runtime.start()
        self.runtime.submit(self._init_on_loop())
        self.link.start()
        for stream in self.streams:
            self.runtime.spawn(stream.run_loop(), name=f"stream {stream.url}")
        self.runtime.spawn(self._worker_loop(), name="job worker")
        self.pool.start()  # with warm_buffer_s 0 its target is 0: it waits for a PUT /config
        self.scheduler.start()  # fires once the service is ready (wait_ready)
        self.uploads.start()  # resumes the queue on disk and queues saved sessions not in it
        self._started = True

    def _recover(self) -> list[SessionManifest]:
        """Sessions and jobs a killed process left unfinished: recorded truthfully (sessions.recovery)."""
        recovered = recover_sessions(self.paths.save_dir, self.paths.images_data_dir / "spill")
        for manifest in recovered:
            entry = self.history.get(manifest.job_id) if manifest.job_id else None
            if entry is not None and manifest.job_id:
                summary = manifest.summary(self.paths.save_dir / manifest.session_id).to_json()
                self.history.update(manifest.job_id, sessions=[*entry.get("sessions", []), summary])
        self._recover_scans(recovered)
        # Only recent entries can be unfinished (history never archives them): this reads no archive.
        for entry in self.history.unfinished():
            if entry.get("status") in (JobStatus.QUEUED, JobStatus.RUNNING):
                self.history.update(
                    str(entry["id"]),
                    status=str(JobStatus.INTERRUPTED),
                    phase="done",
                    finished_at=time.time(),
                    error={"type": "Interrupted", "message": "the service stopped before this job finished"},
                )
        return recovered

    async def _init_on_loop(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.hub = StateHub(self.layout, cfg.settle, cfg.mqtt.state_topic)
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
        self._queue = asyncio.Queue(maxsize=cfg.api.queue_size)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.scheduler.stop()  # first: it queues jobs
        # The MQTT thread hands messages to the loop, so it stops first.
        self.link.stop()
        self.runtime.stop()
        self._history_io.shutdown(wait=True)
        self.executor.shutdown(wait=True)
        self.aftercare.stop()
        self.catalog.close()
        self.uploads.stop()  # an object in flight is finished or resumed at the next start
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

    # -- jobs ----------------------------------------------------------------------------------------
    def submit(
        self, body: dict[str, Any], plan: Plan, client: dict[str, Any], scan: ScanRun | None = None
    ) -> dict[str, Any]:
        """Queue a validated batch and its plan; return the job's view.

        Raises BrokerUnavailable, QueueFull, or OSError when history cannot be written: nothing is
        registered, queued or run then. Whatever can fail comes first — the job's history entry (a copy
        of the whole body), a place in the queue, the entry on disk — and only then is the job registered
        and queued, in one step on the loop: no job is ever listed without being queued. The history
        entry is on disk before the caller hears "accepted".
        """
        self.link.require_connected()
        self.check_disk(plan, scan)  # InsufficientStorage (507): nothing queued, nothing sent to the rig
        outcome: Future[dict[str, Any]] = Future()
        self.runtime.submit(self._accept(body, plan, client, outcome, scan), timeout=10)
        try:
            return outcome.result(timeout=40)
        except TimeoutError:
            if outcome.cancel():  # not queued yet, and now it never will be (see _enqueue)
                raise
            return outcome.result(timeout=10)  # being queued this very moment

    def check_disk(self, plan: Plan, scan: ScanRun | None = None) -> None:
        """Refuse a batch (or a scan: one recording per pose) whose recordings would leave less than
        ``storage.min_free_mb`` free in save_dir (service.disk_guard), from the cameras' byte rates
        now. Each recording checks again right before it starts (service.recording)."""
        cfg = self.config
        recordings = [
            PlannedRecording(step.cameras, step.duration_s)
            for step in plan.steps
            if isinstance(step, RecordStep)
        ]
        if scan is not None:
            spec = scan.spec
            recordings += [PlannedRecording(spec.cameras, spec.duration_s) for _ in spec.poses]
        if not recordings or cfg.storage.min_free_mb <= 0:
            return

        async def rates() -> dict[str, float]:
            return self.router.byte_rates()

        rates_now = self.runtime.submit(rates(), timeout=5)
        check_space(recordings, rates_now, cfg.cameras, self.paths.save_dir, cfg.storage.min_free_mb)

    async def _accept(
        self,
        body: dict[str, Any],
        plan: Plan,
        client: dict[str, Any],
        outcome: Future[dict[str, Any]],
        scan: ScanRun | None = None,
    ) -> None:
        """Keep a place in the queue and write the job's entry; the job is queued once it is written."""
        if self._queue.qsize() + len(self._reserved) >= self._queue.maxsize:
            raise QueueFull(self._queue.maxsize)
        job = Job(Job.new_id(), body, plan, client, scan=scan)
        if scan is not None:
            scan.job_id = job.id
        entry = job.history_entry(self.config.command_transport)  # may fail: nothing is kept yet
        loop = asyncio.get_running_loop()

        def written(added: Future[None]) -> None:
            # The one history thread writes in submission order, and the loop runs these calls in the
            # order they come: jobs are queued in the order they were accepted.
            try:
                loop.call_soon_threadsafe(self._enqueue, job, added, outcome)
            except RuntimeError as exc:  # the loop has stopped: the service is shutting down
                if outcome.set_running_or_notify_cancel():
                    outcome.set_exception(exc)

        added = self._history_io.submit(self.history.add, entry)
        if scan is not None:
            self._history_io.submit(self.write_scan, scan.manifest())
        self._reserved.add(job.id)  # given back by _enqueue, which runs after this returns
        added.add_done_callback(written)

    def _enqueue(self, job: Job, added: Future[None], outcome: Future[dict[str, Any]]) -> None:
        """(loop) Queue and register a job whose entry is written, or give its place back."""
        self._reserved.discard(job.id)
        if not outcome.set_running_or_notify_cancel():  # the caller gave up waiting: never run it
            if added.exception() is None:
                job.finish(JobStatus.FAILED, {"type": "NotQueued", "message": "the request timed out"})
                self._job_changed(job)  # its history entry says so; it was never registered
            return
        try:
            added.result()
            # Queued first: if that failed, nothing would be registered. It cannot: _accept kept a place.
            self._queue.put_nowait(job)
            self._register(job)
        except BaseException as exc:
            outcome.set_exception(exc)
            return
        outcome.set_result(self._views[job.id])

    def _register(self, job: Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS_KEPT:
            oldest = next(iter(self._jobs))
            if not self._jobs[oldest].finished:
                break
            self._jobs.popitem(last=False)
            self._done_events.pop(oldest, None)
        self._done_events[job.id] = job.done
        self._publish(job)
        self._history_marks[job.id] = (job.status, len(job.sessions))

    def _publish(self, job: Job) -> None:
        """Replace the views with a new mapping holding the job's new view (loop thread only)."""
        view = job.view()
        self._views = {
            jid: view if jid == job.id else self._views[jid]
            for jid in self._jobs
            if jid == job.id or jid in self._views
        }
        if job.scan is not None:
            live = {j.scan.id for j in self._jobs.values() if j.scan is not None}
            scans = {sid: v for sid, v in self._scan_views.items() if sid in live}
            scans[job.scan.id] = job.scan.view()
            self._scan_views = scans

    def job_view(self, job_id: str) -> dict[str, Any] | None:
        """A job's view (any thread): live from memory, else from history.json, else None."""
        view = self._views.get(job_id)
        if view is not None:
            return view
        entry = None if job_id.startswith("rej-") else self.history.get(job_id)  # may read an archive
        return None if entry is None else view_from_history(entry)

    def job_views(self) -> list[dict[str, Any]]:
        """The jobs in memory, newest first (any thread)."""
        return list(reversed(self._views.values()))

    def wait_job(self, job_id: str, timeout: float) -> bool:
        """Block until the job is finished and its history entry written; False on timeout."""
        event = self._done_events.get(job_id)
        return event.wait(timeout) if event is not None else True

    def record_rejected(
        self,
        raw: bytes | None,
        client: dict[str, Any],
        status: int,
        error: dict[str, Any],
        declared_bytes: int | None = None,
    ) -> str:
        """Record a refused request as a bounded entry: the body's size, SHA-256 and first characters
        (``raw`` None: the body was not read), never the whole body. A history that cannot be written
        does not change the answer: it is logged."""
        entry_id = time.strftime("rej-%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        entry = {
            "id": entry_id,
            "received_at": time.time(),
            "client": client,
            **refused_request(raw, declared_bytes),
            "status": "rejected",
            "http_status": status,
            "error": error,
        }
        try:
            self.history.add(entry)
        except OSError:
            log.exception("could not record the refused request %s in history", entry_id)
        return entry_id

    def _job_changed(self, job: Job) -> None:
        # The view follows every change; history.json follows each status change (queued → running →
        # outcome) and each new session, so a killed process leaves a true record of how far every job
        # got. The write (with fsync) runs on the history thread, never on the event loop.
        self._publish(job)
        mark = (job.status, len(job.sessions))
        written: Future[None] | None = None
        if self._history_marks.get(job.id) != mark:
            self._history_marks[job.id] = mark
            entry = job.history_entry(self.config.command_transport)
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
                if job.cancel_requested.is_set():
                    job.finish(
                        JobStatus.CANCELLED,
                        {"type": "JobCancelled", "message": f"job {job.id} was cancelled while queued"},
                    )
                    if job.scan is not None:
                        job.scan.follow(job)
                        self._history_io.submit(self.write_scan, job.scan.manifest())
                    self._job_changed(job)
                    continue
                await self._run(job)
            finally:
                self._queue.task_done()

    async def _run(self, job: Job) -> None:
        # Built per job so that a configuration saved through PUT /config is in force from the next job
        # on (keys that need a reconnect are reported by PUT as restart_required).
        in_force = self._in_force
        config = in_force.config
        transport: CommandTransport = (
            HttpTransport(config.invoke_url, config.http)
            if config.command_transport == "http"
            else MqttTransport(self.link)
        )
        ctx = RunContext(
            config=config,
            layout=in_force.layout,
            paths=self.paths,
            hub=self.hub,
            router=self.router,
            transport=transport,
            streams=self.streams,
            executor=self.executor,
            pool=self.pool if config.recording.warm_buffer_s > 0 else None,
            on_change=self._job_changed,
            on_session_saved=self.aftercare.session_saved,
            save_scan=self.write_scan,
        )
        try:
            if job.scan is not None:
                await ScanRunner(ctx).run(job)
            else:
                await JobRunner(ctx).run(job)
        finally:
            if isinstance(transport, HttpTransport):
                transport.close()

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Ask a job to stop; return its view (None: no such job in memory)."""

        async def request_cancel() -> dict[str, Any] | None:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if not job.finished:
                job.cancel_requested.set()
            return self._views.get(job_id)

        return self.runtime.submit(request_cancel(), timeout=5)

    # -- scans ---------------------------------------------------------------------------------------
    def _recover_scans(self, recovered: list[SessionManifest]) -> None:
        """Scans a killed process left queued or running: marked ``interrupted`` in their manifest."""
        folder = self.paths.images_data_dir
        for manifest in list_scan_manifests(folder):
            if manifest.status in ("queued", "running"):
                cut_off = {
                    s.pose_index: (s.session_id, str(self.paths.save_dir / s.session_id))
                    for s in recovered
                    if s.scan_id == manifest.scan_id and s.pose_index is not None
                }
                try:
                    write_scan_manifest(folder, interrupted(manifest, time.time(), cut_off))
                except OSError:
                    log.exception("could not mark scan %s interrupted", manifest.scan_id)

    def write_scan(self, manifest: ScanManifest) -> None:
        """Write a scan manifest (blocking: call it off the loop, with a manifest taken on the loop)
        and hand it to the aftercare hooks; a failure is logged, the scan goes on."""
        try:
            path = write_scan_manifest(self.paths.images_data_dir, manifest)
        except OSError:
            log.exception(
                "could not write the manifest of scan %s in %s", manifest.scan_id, self.paths.images_data_dir
            )
            return
        self.aftercare.scan_written(manifest, path)

    def scan_view(self, scan_id: str) -> dict[str, Any] | None:
        """A scan (any thread): live from memory, else from its scan manifest, else None."""
        view = self._scan_views.get(scan_id)
        if view is not None:
            return view
        manifest = read_scan_manifest(self.paths.images_data_dir, scan_id)
        return None if manifest is None else scan_view(manifest)

    def scan_manifest(self, scan_id: str) -> ScanManifest | None:
        """A scan's manifest as on disk (None: none, or not readable)."""
        return read_scan_manifest(self.paths.images_data_dir, scan_id)

    def scan_views(self) -> list[dict[str, Any]]:
        """Every scan, in memory or in a scan manifest, newest first (any thread)."""
        live = dict(self._scan_views)
        found = {m.scan_id: scan_view(m) for m in list_scan_manifests(self.paths.images_data_dir)}
        found.update(live)
        return sorted(found.values(), key=lambda v: (v.get("created_at") or 0, v["scan_id"]), reverse=True)

    def cancel_scan(self, scan_id: str) -> dict[str, Any] | None:
        """Ask a scan to stop (its job's cancel); return its view (None: no such scan in memory)."""
        view = self._scan_views.get(scan_id)
        if view is None or view.get("job_id") is None or self.cancel(view["job_id"]) is None:
            return None
        latest: dict[str, Any] = self._scan_views.get(scan_id, view)
        return latest

    # One PUT /config at a time (read, merge, check, write, apply as one step), so that concurrent
    # calls cannot interleave and leave config.json and the configuration in force disagreeing. On
    # the class so that it needs nothing from __init__; services sharing a process share it, harmlessly.
    _config_lock: ClassVar[threading.Lock] = threading.Lock()

    def update_config(self, patch: Any) -> dict[str, list[str]]:
        """Merge ``patch`` into the configuration in force and check it (rigcore.config_policy), save
        it to config.json atomically, then apply it from the next job.

        Raises ConfigRefused (nothing saved). Returns which top-level keys changed and which need a
        restart to take effect.
        """
        if self.config_path is None:
            raise RuntimeError("the service was started without a config file")
        with self._config_lock:
            owned = (self.history.journal_path, self.history.archive_dir)
            place = Place(self.config_path.resolve(), self.base_dir, self.paths, owned)
            new = plan_change(self.config, patch, place)
            file_only = read_file_only(self.config_path)
            report = change_report(self.config, new)
            write_json_atomic(self.config_path, with_file_only(new.to_json(), file_only))
            in_force = InForce(new, RigLayout.from_config(new))
            self._in_force = in_force  # one reference: readers never see a new config with an old layout
            self.pool.configure(pool_max_bytes(new.recording.memory_cap_mb), new.recording.warm_buffer_s)
            if self._started:
                self.runtime.submit(self._reconfigure_hub(in_force), timeout=5)
        return report

    async def _reconfigure_hub(self, in_force: InForce) -> None:
        # The hub is loop-only: its devices and settle rule change between two messages, never mid-one.
        self.hub.reconfigure(in_force.layout, in_force.config.settle)

    @property
    def config(self) -> Config:
        """The configuration in force (replaced whole by PUT /config)."""
        return self._in_force.config

    @property
    def layout(self) -> RigLayout:
        return self._in_force.layout

    def in_force(self) -> InForce:
        """The configuration and its rig layout, as one consistent pair."""
        return self._in_force

    def job_timeout(self, plan: Plan) -> float:
        """How long a waiting POST waits for one job: its worst case plus ``api.wait_margin_s``."""
        return self._worst_case(plan) + self.config.api.wait_margin_s

    def scan_timeout(self, spec: ScanSpec) -> float:
        """The same for a scan: every attempt at every pose taking its batch's worst case."""
        in_force = self._in_force
        command = in_force.config.recording.command_id
        poses = sum(
            self._worst_case(
                compile_plan(scan_batch(spec, pose, in_force.layout, command), in_force.layout, command)
            )
            for pose in spec.poses
        )
        return poses * (spec.retries + 1) + in_force.config.api.wait_margin_s

    def _worst_case(self, plan: Plan) -> float:
        """Each command's timeouts, each settle, each recording and its saving."""
        cfg = self.config
        per_command = cfg.http.connect_timeout_s + cfg.http.read_timeout_s + cfg.mqtt.response_timeout_s
        total = per_command * len(plan.commands)
        for step in plan.steps:
            if isinstance(step, RecordStep):
                total += cfg.settle.timeout_s + step.duration_s * 3
        return total + cfg.settle.timeout_s

    def is_recording(self) -> bool:
        """A job runs (commands, settles, records or saves): background work such as uploads waits."""
        return any(v["status"] == JobStatus.RUNNING for v in self._views.values())

    def queue_length(self) -> int:
        return sum(1 for v in self._views.values() if v["status"] == JobStatus.QUEUED)

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

    # -- status --------------------------------------------------------------------------------
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
                if config.stream_client.idle_ack_delay_s > 0 and not self.router.full_rate.is_set()
                else "full",
            }

        data = self.runtime.submit(snapshot(), timeout=5)
        data["command_transport"] = config.command_transport
        data["queue_length"] = self.queue_length()
        data["history_warning"] = self.history.warning
        # The save folder's free space and the reserve (service.disk_guard); below it, a warning.
        data["disk"] = storage_status(self.paths.save_dir, config.storage.min_free_mb)
        low_disk = [data["disk"]["warning"]] if data["disk"]["warning"] else []
        data["storage_warnings"] = [*self.storage_warnings, *low_disk]
        data["catalog"] = self.catalog.status()
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
