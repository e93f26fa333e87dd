"""Jobs: one batch each, run one at a time in arrival order.

A job walks the phases queued → commanding → settling → recording → saving → done. Commands run
in the order given; a failed command stops the batch and the rest are ``skipped``. A
``start_recording_command`` first waits for the pan-tilt and the zoom of every recorded camera to
settle (PROTOCOL §5), then records from the settle point for ``duration_second``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from camera.pool import FramePool
from camera.recorder import Recorder
from camera.router import FrameRouter
from camera.stream import StreamClient
from camera.writer import CameraWriteOptions, SessionWriter, WriteError, create_session_dir
from mqtt_control.commands import CommandOutcome, CommandTransport
from mqtt_control.hub import SettleSpec, StateHub
from service.atomic import write_json_atomic
from service.config import Config, ResolvedPaths
from service.errors import JobCancelled, RecordingError, RigError

log = logging.getLogger(__name__)

# Present in a session folder while it is being recorded or saved; a folder that still has it at the
# next start was cut off (kill -9, power loss) and is recovered as "incomplete" (service/recovery.py).
RECORDING_MARKER = ".recording.json"

PHASES = ("queued", "commanding", "settling", "recording", "saving", "done")


@dataclass
class Job:
    id: str
    body: dict[str, Any]
    client: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    status: str = "queued"  # queued, running, succeeded, failed, cancelled
    phase: str = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    final_pose: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    cancel_requested: bool = False
    _cancel_event: asyncio.Event | None = None

    @staticmethod
    def new_id() -> str:
        return time.strftime("job-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]

    @property
    def commands(self) -> list[dict[str, Any]]:
        requests = self.body["requests"]
        assert isinstance(requests, list)
        return requests

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def to_dict(self) -> dict[str, Any]:
        session = self.sessions[-1] if self.sessions else None
        out: dict[str, Any] = {
            "job_id": self.id,
            "status": self.status,
            "phase": self.phase,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "results": self.results,
            "session": session,
            "sessions": self.sessions,
            "progress": self.progress,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.final_pose is not None:
            out["final_pose"] = self.final_pose
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class JobRunner:
    """Runs one job against the rig (event-loop side)."""

    def __init__(
        self,
        config: Config,
        paths: ResolvedPaths,
        hub: StateHub,
        router: FrameRouter,
        transport: CommandTransport,
        streams: list[StreamClient],
        executor: Executor,
        on_change: Callable[[Job], None],
        pool: FramePool | None = None,
    ) -> None:
        self._cfg = config
        self._paths = paths
        self._hub = hub
        self._router = router
        self._transport = transport
        self._streams = streams
        self._executor = executor
        self._on_change = on_change
        self._pool = pool

    async def run(self, job: Job) -> None:
        job._cancel_event = asyncio.Event()
        if job.cancel_requested:
            job._cancel_event.set()
        job.status, job.started_at = "running", time.time()
        self._on_change(job)
        batch_start = time.monotonic()
        last_cmd: dict[str, float] = {}
        targets: dict[str, dict[str, float]] = {}
        moved_since_record: set[str] = set()
        commands = job.commands
        try:
            for i, cmd in enumerate(commands):
                # Full rate for every command (idempotent): _record lets go of it while it saves.
                self._router.want_full_rate(job.id, True)
                if job._cancel_event.is_set():
                    raise JobCancelled(job.id)
                if cmd["command_id"] == self._cfg.recording.command_id:
                    await self._record(job, cmd, batch_start, last_cmd, targets)
                    moved_since_record.clear()
                    continue
                self._set_phase(job, "commanding")
                outcome = await self._transport.send(cmd)
                job.results.append(outcome.to_result(cmd))
                self._on_change(job)
                if not outcome.ok:
                    job.error = {
                        "type": "CommandFailed",
                        "message": f"command {i} ({cmd['command_id']} to "
                        f"{cmd['device_id']}) failed: {outcome.error}",
                        "index": i,
                    }
                    raise _BatchStopped
                spec = self._cfg.positioning_commands.get(cmd["command_id"])
                if spec is not None:
                    dev = cmd["device_id"]
                    last_cmd[dev] = outcome.sent_mono
                    targets.setdefault(dev, {})[spec.field] = cmd["args"][spec.arg]
                    moved_since_record.add(dev)
            if moved_since_record:
                # The batch moved the rig and recorded nothing afterwards: report where it came to rest.
                self._set_phase(job, "settling")
                specs = [
                    self._spec(dev, last_cmd, targets, batch_start) for dev in sorted(moved_since_record)
                ]
                await self._wait_settled(job, specs)
                job.final_pose = dict(self._hub.pose())
            job.status = "succeeded"
        except _BatchStopped:
            job.status = "failed"
        except JobCancelled as exc:
            job.status = "cancelled"
            job.error = exc.to_dict()
        except RigError as exc:
            job.status = "failed"
            job.error = exc.to_dict()
            self._fail_current(job, exc.to_dict())
        except Exception as exc:  # a bug must still leave a true record behind
            log.exception("job %s crashed", job.id)
            job.status = "failed"
            job.error = {"type": type(exc).__name__, "message": f"internal error: {exc}"}
            self._fail_current(job, job.error)
        finally:
            self._router.want_full_rate(job.id, False)
            for cmd in commands[len(job.results) :]:
                job.results.append({"request": cmd, "status": "skipped", "status_code": None})
            job.phase, job.finished_at = "done", time.time()
            self._on_change(job)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _fail_current(job: Job, error: dict[str, Any]) -> None:
        """Mark the command that was running when the error struck as failed (not skipped)."""
        commands = job.commands
        if len(job.results) < len(commands):
            job.results.append(
                {
                    "request": commands[len(job.results)],
                    "status": "failed",
                    "status_code": None,
                    "error": error.get("message"),
                }
            )

    def _set_phase(self, job: Job, phase: str) -> None:
        if job.phase != phase:
            job.phase = phase
            self._on_change(job)

    def _spec(
        self, dev: str, last_cmd: dict[str, float], targets: dict[str, dict[str, float]], batch_start: float
    ) -> SettleSpec:
        fields = list(self._hub.watched_fields(dev))
        dev_targets: dict[str, float | None] = dict.fromkeys(fields)
        dev_targets.update(targets.get(dev, {}))
        tolerances = {
            spec.field: spec.tolerance
            for spec in self._cfg.positioning_commands.values()
            if spec.field in dev_targets
        }
        return SettleSpec(dev, tuple(dev_targets), dev_targets, tolerances, last_cmd.get(dev, batch_start))

    async def _wait_settled(self, job: Job, specs: list[SettleSpec]) -> float:
        """Wait for every spec; return the settle point (monotonic), cancellable."""
        assert job._cancel_event is not None
        wait = asyncio.ensure_future(self._hub.wait_settled(specs, self._cfg.settle.timeout_s))
        cancel = asyncio.ensure_future(job._cancel_event.wait())
        try:
            await asyncio.wait({wait, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel.cancel()
        if not wait.done():
            wait.cancel()
            raise JobCancelled(job.id)
        trackers = wait.result()
        settled = [t.settled_mono for t in trackers.values() if t.settled_mono is not None]
        return max(settled) if settled else time.monotonic()

    async def _record(
        self,
        job: Job,
        cmd: dict[str, Any],
        batch_start: float,
        last_cmd: dict[str, float],
        targets: dict[str, dict[str, float]],
    ) -> None:
        assert job._cancel_event is not None
        loop = asyncio.get_running_loop()
        args = cmd.get("args", {})
        cameras: list[str] = list(args["camera_ids"])
        duration = float(args["duration_second"])
        devices = [self._cfg.pantilt.device_id] + [c for c in cameras if self._hub.watched_fields(c)]
        self._set_phase(job, "settling")
        specs = [self._spec(dev, last_cmd, targets, batch_start) for dev in devices]
        start_mono = await self._wait_settled(job, specs)
        start_at = time.time() - (time.monotonic() - start_mono)
        pose_at_start = dict(self._hub.pose())

        self._set_phase(job, "recording")
        try:
            session_id, session_dir = create_session_dir(self._paths.save_dir)
        except OSError as exc:
            raise RecordingError(f"cannot create a session folder in {self._paths.save_dir}: {exc}") from exc
        options = {
            cam: CameraWriteOptions(
                previews=self._cfg.cameras[cam].previews, image_format=self._cfg.cameras[cam].image_format
            )
            for cam in cameras
        }
        cap_mb = self._cfg.recording.memory_cap_mb
        writer = SessionWriter(
            session_dir,
            session_id,
            options,
            self._executor,
            # The pre-roll lives beside the writer's buffer: the cap covers both.
            memory_cap_bytes=max(0, int(cap_mb * 1024 * 1024) - self._router.preroll_bytes)
            if cap_mb
            else None,
            spill_dir=self._paths.images_data_dir / "spill" if cap_mb else None,
            pool=self._pool,
        )
        recorder = Recorder(self._cfg, cameras, start_mono, start_mono + duration, writer, self._hub)
        self._router.attach(recorder, start_mono)
        self._hub.add_listener(recorder.on_state)
        for dev in (self._cfg.pantilt.device_id, self._cfg.rangefinder.device_id):
            for sample in self._hub.history_since(dev, start_mono):
                recorder.on_state(sample)
        # Tell the rig a recording starts, while the frames already flow.
        send = asyncio.ensure_future(self._transport.send(cmd))
        # The crash-recovery marker is written (with fsync) off the loop, once frames are flowing.
        marker = {
            "session_id": session_id,
            "job_id": job.id,
            "request": job.body,
            "command": cmd,
            "record_started_at": start_at,
            "duration_second": duration,
        }
        cancelled = False
        try:
            try:
                await loop.run_in_executor(None, write_json_atomic, session_dir / RECORDING_MARKER, marker)
            except OSError as exc:
                await send
                raise RecordingError(f"cannot write in session folder {session_dir}: {exc}") from exc
            remaining = start_mono + duration - time.monotonic()
            while remaining > 0:
                job.progress = {"frames": recorder.frames_taken, "seconds_left": round(remaining, 1)}
                try:
                    async with asyncio.timeout(min(remaining, 0.25)):
                        await job._cancel_event.wait()
                    cancelled = True
                    recorder.cut_short(time.monotonic())
                    break
                except TimeoutError:
                    pass
                remaining = start_mono + duration - time.monotonic()
        finally:
            self._router.detach(recorder)
            self._hub.remove_listener(recorder.on_state)
            # Saving wants the CPU the stream reader (and the rig) would spend on unrecorded frames.
            self._router.want_full_rate(job.id, False)
        outcome: CommandOutcome = await send
        end_mono = recorder.end_mono
        end_at = start_at + (end_mono - start_mono)

        self._set_phase(job, "saving")
        outages = [
            o
            for st in self._streams
            if st.cameras & set(cameras)
            for o in st.outages_between(start_mono, end_mono)
        ]
        status = "cancelled" if cancelled else ("complete" if outcome.ok else "failed")
        if status == "complete" and (outages or recorder.gaps):
            status = "partial"
            job.warnings.append(
                f"session {session_id} is partial: {len(outages)} stream outage(s), "
                f"{sum(g['missing_frames'] for g in recorder.gaps)} frame(s) missing by frame_index"
            )
        manifest = {
            "session_id": session_id,
            "job_id": job.id,
            "status": status,
            "request": job.body,
            "command": cmd,
            "record_started_at": start_at,
            "record_ended_at": end_at,
            "duration_second": duration,
            "settle_to_first_frame_s": (
                round(recorder.first_frame_mono - start_mono, 4) if recorder.first_frame_mono else None
            ),
            "pose_at_start": pose_at_start,
            "gaps": recorder.gaps,
            "stream_outages": outages,
            "unreadable_messages": recorder.unreadable_messages,
            "memory": {
                "peak_buffered_bytes": writer.peak_memory_bytes,
                "spilled_frames": writer.spilled_frames,
                "spilled_bytes": writer.spilled_bytes,
                "spilled_inline": writer.spilled_inline,
                "warm_frames": writer.warm_frames,
                "cold_frames": writer.cold_frames,
            },
            "telemetry": recorder.telemetry,
            "telemetry_dropped": recorder.telemetry_dropped,
        }
        # finish() blocks until every write is done: it waits on the default executor so that it
        # does not hold one of the writer threads the remaining encodes need.
        finishing = loop.run_in_executor(None, writer.finish, manifest)
        while not finishing.done():
            saved, total = writer.progress()
            job.progress = {"frames": recorder.frames_taken, "saved": saved, "total": total}
            await asyncio.wait({finishing}, timeout=0.25)
        try:
            written = await finishing
        except WriteError as exc:
            raise RecordingError(f"saving session {session_id} failed: {exc}") from exc
        (session_dir / RECORDING_MARKER).unlink(missing_ok=True)
        summary = {
            "session_id": session_id,
            "path": str(session_dir),
            "status": status,
            "record_started_at": start_at,
            "record_ended_at": end_at,
            "missing_frames": sum(g["missing_frames"] for g in recorder.gaps),
            "stream_outages": len(outages),
            "cameras": {
                cam: {"frame_count": info["frame_count"], "rejected_frames": info["rejected_frames"]}
                for cam, info in written["cameras"].items()
            },
        }
        images_data = {
            "session_id": session_id,
            "job_id": job.id,
            "request": job.body,
            "command": cmd,
            "summary": {**summary, "pose_at_start": pose_at_start, "duration_second": duration},
        }
        await loop.run_in_executor(
            None, write_json_atomic, self._paths.images_data_dir / f"{session_id}.json", images_data
        )
        job.sessions.append(summary)
        result = outcome.to_result(cmd)
        result["session_id"] = session_id
        job.results.append(result)
        self._on_change(job)
        if cancelled:
            raise JobCancelled(job.id)
        if not outcome.ok:
            job.error = {
                "type": "CommandFailed",
                "message": f"{cmd['command_id']} to {cmd['device_id']} failed: "
                f"{outcome.error}; the frames recorded meanwhile were saved in {session_id}",
            }
            raise _BatchStopped


class _BatchStopped(Exception):
    """A command failed; the job's error is already set."""
