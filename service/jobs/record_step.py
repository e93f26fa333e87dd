"""One recording step: a session folder, its writer and recorder, the window in capture time, the manifest.

The window is ``[start, start + duration_second)`` of **capture** time (docs/protocol.md §5). It closes
once the service's clock has passed its end and every recorded camera has delivered a frame captured
after it (frames travel behind capture), or after ``capture_time.late_wait_s`` (the cameras still
missing are named in the session).

The order is what keeps every frame: the recorder is attached to the frame router (which hands it the
pre-roll frames received since the start) *before* anything that can fail or wait; the command that
tells the rig a recording starts runs alongside; whatever fails after that — the command, the MQTT
link, a frame's write, ``images_data/`` — the session still gets a ``session.json`` listing every
frame on disk and saying what failed (docs/protocol.md §6). If the process dies instead, the marker
left in the folder lets the next start recover it (sessions.recovery).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqtt_control.commands import CommandOutcome
from rigcore.errors import JobCancelled, RecordingError
from rigcore.memory import writer_cap_bytes
from rigcore.pose_timeline import PoseTimeline
from rigcore.rig import RigLayout
from service.batches.plan import RecordStep
from service.disk_guard import PlannedRecording, check_space
from service.jobs.context import RunContext
from service.jobs.job import BatchStopped, Job
from service.jobs.recorder import Recorder
from service.status import JobPhase
from sessions.manifest import (
    ImagesDataRecord,
    Problem,
    RecordingMarker,
    SessionManifest,
    SessionStatus,
    remove_marker,
    write_images_data,
    write_marker,
)
from sessions.state_log import STATE_LOG_NAME, StateLogInfo, StateRecord, write_state_log
from sessions.writer import CameraWriteOptions, SessionWriter, create_session_dir

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class Findings:
    """What is known of a recording once its window closed and its writes are done."""

    cancelled: bool
    command: CommandOutcome
    silent_cameras: Sequence[str]  # requested cameras that delivered no frame
    failed_writes: Mapping[str, int]  # camera -> frame files that could not be written
    outages: int
    missing_frames: int
    marker_error: str | None = None
    out_of_space: bool = False  # every failed write was the disk filling up (the writer's verdict)
    # Cameras that sent frames but none captured after the window's end within the late-frame wait.
    unconfirmed: Sequence[str] = ()
    late_wait_s: float = 0.0
    # Per camera, why its clock was judged failed during the recording (its frames fell back to arrival).
    clock_failures: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)


def judge(f: Findings, command_id: str) -> tuple[SessionStatus, list[Problem]]:
    """The session's status and its problems (pure). Worst first: cancelled, failed, partial."""
    problems: list[Problem] = []
    if f.cancelled:
        problems.append(
            Problem(type="Cancelled", message="the operator cancelled the job; recording cut short")
        )
    if not f.command.ok:
        problems.append(Problem(type="CommandFailed", message=f"{command_id} failed: {f.command.error}"))
    why = "; the disk is full: every frame written before is saved" if f.out_of_space else ""
    problems += [
        Problem(
            type="DiskFull" if f.out_of_space else "WriteFailed",
            camera_id=cam,
            message=f"{n} frame file(s) of camera {cam} could not be written{why}",
        )
        for cam, n in f.failed_writes.items()
        if n
    ]
    if f.marker_error:
        problems.append(
            Problem(
                type="MarkerFailed", message=f"the recording marker could not be written: {f.marker_error}"
            )
        )
    problems += [
        Problem(
            type="NoFrames", camera_id=cam, message=f"camera {cam} delivered no frame during the recording"
        )
        for cam in f.silent_cameras
    ]
    problems += _timing_problems(f)
    if f.outages:
        problems.append(
            Problem(type="StreamOutage", message=f"{f.outages} stream outage(s) during the recording")
        )
    if f.missing_frames:
        problems.append(
            Problem(type="FramesMissing", message=f"{f.missing_frames} frame(s) missing by frame_index")
        )
    if f.cancelled:
        return SessionStatus.CANCELLED, problems
    # A full disk cuts the recording short, like a stream outage: partial. Any other failed write
    # (EIO, permissions) is a fault someone must look at: failed. Either way the job fails.
    write_failed = any(f.failed_writes.values())
    if not f.command.ok or (write_failed and not f.out_of_space) or f.marker_error:
        return SessionStatus.FAILED, problems
    if f.silent_cameras or f.outages or f.missing_frames or write_failed or f.unconfirmed:
        return SessionStatus.PARTIAL, problems
    return SessionStatus.COMPLETE, problems


def _timing_problems(f: Findings) -> list[Problem]:
    """What the capture-time rules could not do: a clock that failed, a window that did not close."""
    problems = [
        Problem(
            type="ClockFailed",
            camera_id=cam,
            message=f"camera {cam}'s clock was judged failed ({'; '.join(reasons)}): its frames were "
            "timed by their arrival less its latency_s (time_source 'fallback')",
        )
        for cam, reasons in f.clock_failures.items()
        if reasons
    ]
    problems += [
        Problem(
            type="LateFrames",
            camera_id=cam,
            message=f"camera {cam} delivered no frame captured after the window's end within "
            f"{f.late_wait_s:g} s: frames captured at the end of the window may be missing",
        )
        for cam in f.unconfirmed
        if cam not in f.silent_cameras
    ]
    return problems


class Recording:
    def __init__(
        self,
        ctx: RunContext,
        job: Job,
        step: RecordStep,
        settle_point: float,
        settle_proof: dict[str, Any] | None = None,
        state_since: float | None = None,
    ) -> None:
        self._ctx, self._job, self._step = ctx, job, step
        self.settle_point = settle_point
        self.settle_proof = settle_proof
        # State samples are kept from here (the batch's start) to the window's close.
        self._state_since = settle_point if state_since is None else state_since
        self._late_wait = ctx.config.capture_time.late_wait(
            ctx.config.cameras[c].latency_s for c in step.cameras if c in ctx.config.cameras
        )
        self._waited = 0.0
        self.end_mono = -math.inf  # set once the window is open
        self._marker_error: str | None = None

    # -- the step ------------------------------------------------------------------------------------
    async def run(self, start_mono: float) -> None:
        """Record ``[start_mono, start_mono + duration)``, save, report; raise to stop the batch."""
        ctx = self._ctx
        await self._check_space()  # before any folder or command: a recording that cannot fit never starts
        self._phase(JobPhase.RECORDING)
        session_id, folder = self._open_folder()
        writer = self._make_writer(session_id, folder)
        window = (start_mono, start_mono + self._step.duration_s)
        recorder = Recorder(ctx.layout, self._step.cameras, window, writer, ctx.hub, ctx.router.clocks)
        self._attach(recorder)
        self.end_mono = recorder.end_mono
        # Tell the rig a recording starts, while the frames already flow.
        send = asyncio.ensure_future(ctx.send(self._step.command))
        cancelled = False
        try:
            await self._write_marker(session_id, folder, recorder)
            cancelled = await self._hold_window(recorder)
        finally:
            self._detach(recorder)
            self.end_mono = recorder.end_mono
        outcome = await send
        manifest = await self._save(writer, recorder, outcome, cancelled)
        ctx.on_session_saved(manifest, folder)
        summary = self._report(folder, manifest, outcome)
        await self._write_images_data(manifest, summary)
        _raise_for(manifest, outcome, self._step)

    def _phase(self, phase: JobPhase) -> None:
        if self._job.phase != phase:
            self._job.phase = phase
            self._ctx.on_change(self._job)

    def _wall(self, mono: float) -> float:
        return time.time() - (time.monotonic() - mono)

    # -- before the window ---------------------------------------------------------------------------
    async def _check_space(self) -> None:
        """InsufficientStorage when this recording would leave less than storage.min_free_mb free."""
        cfg, step = self._ctx.config, self._step
        if cfg.storage.min_free_mb <= 0:
            return
        check = functools.partial(
            check_space,
            [PlannedRecording(step.cameras, step.duration_s)],
            self._ctx.router.byte_rates(),  # loop-side counters: read here, on the loop
            cfg.cameras,
            self._ctx.paths.save_dir,
            cfg.storage.min_free_mb,
        )
        # statvfs of the save folder: off the loop (a slow or hung mount must not stall the frames).
        await asyncio.get_running_loop().run_in_executor(None, check)

    def _open_folder(self) -> tuple[str, Path]:
        save_dir = self._ctx.paths.save_dir
        try:
            return create_session_dir(save_dir)
        except OSError as exc:
            raise RecordingError(f"cannot create a session folder in {save_dir}: {exc}") from exc

    def _make_writer(self, session_id: str, folder: Path) -> SessionWriter:
        cfg = self._ctx.config
        options = {
            cam: CameraWriteOptions(
                previews=cfg.cameras[cam].previews,
                image_format=cfg.cameras[cam].image_format,
                display=cfg.cameras[cam].display,
            )
            for cam in self._step.cameras
        }
        cap = writer_cap_bytes(cfg.recording.memory_cap_mb, self._ctx.router.preroll_bytes)
        return SessionWriter(
            folder,
            session_id,
            options,
            self._ctx.executor,
            memory_cap_bytes=cap,
            spill_dir=self._ctx.paths.images_data_dir / "spill" if cap is not None else None,
            pool=self._ctx.pool,
        )

    def _attach(self, recorder: Recorder) -> None:
        ctx = self._ctx
        ctx.router.attach(recorder, recorder.start_mono)
        kept = [
            sample
            for dev in ctx.config.state_devices()
            for sample in ctx.hub.history_since(dev, self._state_since)
        ]
        for sample in sorted(kept, key=lambda s: s.received_mono):
            recorder.on_state(sample)
        ctx.hub.add_listener(recorder.on_state)

    def _detach(self, recorder: Recorder) -> None:
        self._ctx.router.detach(recorder)
        self._ctx.hub.remove_listener(recorder.on_state)
        # Saving wants the CPU the stream reader (and the rig) would spend on unrecorded frames.
        self._ctx.router.want_full_rate(self._job.id, False)

    async def _write_marker(self, session_id: str, folder: Path, recorder: Recorder) -> None:
        """The crash-recovery marker, written (with fsync) off the loop once frames are flowing."""
        marker = RecordingMarker(
            session_id=session_id,
            job_id=self._job.id,
            request=self._job.body,
            command=dict(self._step.command),
            settled_at=self._wall(self.settle_point),
            record_started_at=self._wall(recorder.start_mono),
            duration_second=self._step.duration_s,
            **self._job.session_tags,  # a scan's pose: scan_id, pose_index
        )
        try:
            await asyncio.get_running_loop().run_in_executor(None, write_marker, folder, marker)
        except OSError as exc:
            # Not fatal: the frames are still taken; the session says the marker is missing.
            self._marker_error = str(exc)
            log.error("session %s: cannot write the recording marker: %s", session_id, exc)

    # -- the window ------------------------------------------------------------------------------------
    async def _hold_window(self, recorder: Recorder) -> bool:
        """Wait until the window closes; True if the operator cancelled first (the window is cut)."""
        job = self._job
        cancelled = False
        while (remaining := recorder.end_mono - time.monotonic()) > 0:
            job.progress = {"frames": recorder.frames_taken, "seconds_left": round(remaining, 1)}
            self._ctx.on_change(job)
            try:
                async with asyncio.timeout(min(remaining, PROGRESS_EVERY_S)):
                    await job.cancel_requested.wait()
            except TimeoutError:
                continue
            recorder.cut_short(time.monotonic())
            cancelled = True
            break
        await self._wait_late_frames(recorder)
        return cancelled

    async def _wait_late_frames(self, recorder: Recorder) -> None:
        """Frames captured before the end are still on their way: wait until every camera has sent one
        captured after it, at most the late-frame wait (docs/protocol.md §5)."""
        started = time.monotonic()
        deadline = started + self._late_wait
        while not recorder.all_confirmed.is_set() and (left := deadline - time.monotonic()) > 0:
            self._job.progress = {
                "frames": recorder.frames_taken,
                "seconds_left": 0,
                "waiting_for_late_frames": recorder.unconfirmed(),
            }
            self._ctx.on_change(self._job)
            try:
                async with asyncio.timeout(min(left, PROGRESS_EVERY_S)):
                    await recorder.all_confirmed.wait()
            except TimeoutError:
                continue
        self._waited = time.monotonic() - started

    # -- after the window ------------------------------------------------------------------------------
    async def _save(
        self, writer: SessionWriter, recorder: Recorder, outcome: CommandOutcome, cancelled: bool
    ) -> SessionManifest:
        self._phase(JobPhase.SAVING)
        await self._drain(writer, recorder)
        counts = writer.camera_summary()
        clocks = recorder.clock_report()
        outages = [
            o
            for stream in self._ctx.streams
            if stream.cameras & set(self._step.cameras)
            for o in stream.outages_between(recorder.start_mono, recorder.end_mono)
        ]
        findings = Findings(
            cancelled=cancelled,
            command=outcome,
            silent_cameras=[c for c in self._step.cameras if recorder.frames_of(c) == 0],
            failed_writes={cam: c["failed_writes"] for cam, c in counts.items()},
            outages=len(outages),
            missing_frames=sum(g["missing_frames"] for g in recorder.gaps),
            marker_error=self._marker_error,
            out_of_space=writer.out_of_space(),
            unconfirmed=recorder.unconfirmed(),
            late_wait_s=self._late_wait,
            clock_failures={cam: c["reasons"] for cam, c in clocks.items()},
        )
        status, problems = judge(findings, self._step.command["command_id"])
        header = self._header(recorder, writer, status, problems, outages)
        notes = {cam: {"clock": clock} for cam, clock in clocks.items()}
        # Off the loop: up to MAX_STATE_SAMPLES samples to convert, sort and write (the recorder's
        # listener is detached, so its list no longer changes).
        finish = functools.partial(_save_session, self._ctx.layout, writer, header, recorder, notes)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, finish)
        except OSError as exc:
            # session.json itself could not be written: the marker stays, so the next start lists the
            # frames on disk (sessions.recovery).
            raise RecordingError(
                f"session {writer.session_id}: session.json could not be written: {exc}"
            ) from exc

    async def _drain(self, writer: SessionWriter, recorder: Recorder) -> None:
        """Wait for every frame write (a failed one is counted, never raised), reporting progress.

        It waits on the default executor so that it does not hold a writer thread the encodes need.
        """
        loop = asyncio.get_running_loop()
        waiting = loop.run_in_executor(None, _wait_quietly, writer)
        while not waiting.done():
            saved, total = writer.progress()
            self._job.progress = {"frames": recorder.frames_taken, "saved": saved, "total": total}
            self._ctx.on_change(self._job)
            await asyncio.wait({waiting}, timeout=PROGRESS_EVERY_S)
        await waiting

    def _header(
        self,
        recorder: Recorder,
        writer: SessionWriter,
        status: SessionStatus,
        problems: list[Problem],
        outages: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "job_id": self._job.id,
            "status": status,
            "request": self._job.body,
            "command": dict(self._step.command),
            "settled_at": self._wall(self.settle_point),
            "settle": self._capture_proof(recorder),
            "record_started_at": self._wall(recorder.start_mono),
            "record_ended_at": self._wall(recorder.end_mono),
            "duration_second": self._step.duration_s,
            "settle_to_first_frame_s": (
                round(recorder.first_frame_mono - self.settle_point, 4) if recorder.first_frame_mono else None
            ),
            "capture": {
                "dropped_before": recorder.dropped_before,
                "dropped_after": recorder.dropped_after,
                "late_wait_s": self._late_wait,
                "waited_s": round(self._waited, 3),
                "unconfirmed": recorder.unconfirmed(),
            },
            "pose_at_start": dict(recorder.pose_at_start),
            "problems": problems,
            "gaps": recorder.gaps,
            "stream_outages": outages,
            "unreadable_messages": recorder.unreadable_messages,
            "memory": writer.memory_report(),
            **self._job.session_tags,  # a scan's pose: scan_id, pose_index
        }

    def _capture_proof(self, recorder: Recorder) -> dict[str, Any]:
        """The settle proof, with what shows the window holds only frames captured after the settle
        (kept as :attr:`settle_proof` too: a scan's manifest repeats it)."""
        self.settle_proof = {
            **(self.settle_proof or {}),
            "latest_dropped_capture_at": recorder.latest_dropped_before,
            "earliest_saved_capture_at": recorder.earliest_saved,
            "delay_s": recorder.delay_stats(),
        }
        return self.settle_proof

    def _report(self, folder: Path, manifest: SessionManifest, outcome: CommandOutcome) -> dict[str, Any]:
        """The session in the job: its summary, and the recording command's result."""
        remove_marker(folder)
        summary = manifest.summary(folder).to_json()
        job = self._job
        job.sessions.append(summary)
        if manifest.status is SessionStatus.PARTIAL and not any(
            p.type == "NoFrames" for p in manifest.problems
        ):
            job.warnings.append(
                f"session {manifest.session_id} is partial: {summary['stream_outages']} stream outage(s), "
                f"{summary['missing_frames']} frame(s) missing by frame_index"
            )
        result = outcome.to_result(dict(self._step.command))
        result["session_id"] = manifest.session_id
        job.record_result(self._step.index, result)
        self._ctx.on_change(job)
        return summary

    async def _write_images_data(self, manifest: SessionManifest, summary: dict[str, Any]) -> None:
        record = ImagesDataRecord(
            session_id=manifest.session_id,
            job_id=self._job.id,
            request=self._job.body,
            command=dict(self._step.command),
            summary={
                **summary,
                "pose_at_start": manifest.pose_at_start,
                "duration_second": manifest.duration_second,
            },
        )
        images_data_dir = self._ctx.paths.images_data_dir
        try:
            await asyncio.get_running_loop().run_in_executor(None, write_images_data, images_data_dir, record)
        except OSError as exc:
            raise BatchStopped(
                {
                    "type": "RecordingError",
                    "message": f"session {manifest.session_id} was saved, but images_data could not be "
                    f"written in {images_data_dir}: {exc}",
                }
            ) from exc


def _wait_quietly(writer: SessionWriter) -> None:
    try:
        writer.wait()
    except Exception:
        pass


def _raise_for(manifest: SessionManifest, outcome: CommandOutcome, step: RecordStep) -> None:
    """Stop the batch if the session is not whole (its files are already written)."""
    sid, cmd = manifest.session_id, step.command
    if manifest.status is SessionStatus.CANCELLED:
        raise JobCancelled(manifest.job_id or "")
    if not outcome.ok:
        raise BatchStopped(
            {
                "type": "CommandFailed",
                "message": f"{cmd['command_id']} to {cmd['device_id']} failed: {outcome.error}; "
                f"the frames recorded meanwhile were saved in {sid}",
                "index": step.index,
            }
        )
    if manifest.write_error_count:
        first = manifest.write_errors[0] if manifest.write_errors else {}
        raise BatchStopped(
            {
                "type": "WriteFailed",
                "message": f"{manifest.write_error_count} frame file(s) of session {sid} could not be "
                f"written (first: {first.get('file')}: {first.get('error')}); every file written is "
                "listed in its session.json",
                "camera_id": first.get("camera_id"),
            }
        )
    silent = [p.camera_id for p in manifest.problems if p.type == "NoFrames"]
    if silent:
        raise BatchStopped(
            {
                "type": "NoFrames",
                "message": f"camera(s) {', '.join(str(c) for c in silent)} delivered no frame during the "
                f"recording; session {sid} is partial",
                "camera_ids": silent,
            }
        )


def _save_session(
    layout: RigLayout,
    writer: SessionWriter,
    header: dict[str, Any],
    recorder: Recorder,
    notes: dict[str, dict[str, Any]],
) -> SessionManifest:
    """Blocking: keep the state samples (sessions.state_log), then write session.json with each
    frame's pose found at its capture time among them (rigcore.pose_timeline)."""
    header["state_log"] = _keep_states(layout, writer.session_dir, recorder)
    timeline = PoseTimeline(layout, recorder.states, recorder.pose_at_start)
    return writer.finish(header, raise_on_error=False, poses=timeline.pose_at, camera_notes=notes)


def _keep_states(layout: RigLayout, folder: Path, recorder: Recorder) -> dict[str, Any] | None:
    """Write state.jsonl; its StateLogInfo, or None when it could not be written (logged)."""
    records = [
        StateRecord(device_id=s.device_id, received_at=s.received_at, retained=s.retained, values=v)
        for s in recorder.states
        if (v := layout.state_values(s)) is not None
    ]
    try:
        write_state_log(folder, records)
    except OSError as exc:
        log.error("session %s: cannot write %s: %s", folder.name, STATE_LOG_NAME, exc)
        return None
    return StateLogInfo(
        samples=len(records),
        dropped=recorder.states_dropped,
        from_at=records[0].received_at if records else None,
        to_at=records[-1].received_at if records else None,
    ).model_dump(mode="json")
