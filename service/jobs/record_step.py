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
import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

from mqtt_control.commands import CommandOutcome
from rigcore.errors import JobCancelled, RecordingError
from service.batches.plan import RecordStep
from service.disk_guard import PlannedRecording, check_space
from service.jobs.context import RunContext
from service.jobs.job import BatchStopped, Job
from service.jobs.recorder import Recorder
from service.jobs.session_save import (
    PROGRESS_EVERY_S,
    ClosedWindow,
    Findings,
    capture_proof,
    drain,
    findings_of,
    judge,
    outages_in,
    session_writer,
    wait_late_frames,
    wall,
    write_images_record,
    write_session,
)
from service.status import JobPhase
from sessions.manifest import (
    RecordingMarker,
    SessionKind,
    SessionManifest,
    SessionStatus,
    remove_marker,
    write_marker,
)
from sessions.writer import SessionWriter, create_session_dir

log = logging.getLogger(__name__)

# Findings and judge are the shared session_save's; named here too, where the recording uses them.
__all__ = ["Findings", "Recording", "judge"]


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
        parts = ctx.saves.writer_parts(ctx.config)
        writer = session_writer(parts, self._step.cameras, (session_id, folder), ctx.router.preroll_bytes)
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
        ctx.saves.on_saved(manifest, folder)
        summary = self._report(folder, manifest, outcome)
        await self._write_images_data(manifest, summary)
        _raise_for(manifest, outcome, self._step)

    def _phase(self, phase: JobPhase) -> None:
        if self._job.phase != phase:
            self._job.phase = phase
            self._ctx.on_change(self._job)

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
            settled_at=wall(self.settle_point),
            record_started_at=wall(recorder.start_mono),
            duration_second=self._step.duration_s,
            node_id=self._ctx.config.node.id,
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
        def report(awaited: list[str]) -> None:
            self._job.progress = {
                "frames": recorder.frames_taken,
                "seconds_left": 0,
                "waiting_for_late_frames": awaited,
            }
            self._ctx.on_change(self._job)

        self._waited = await wait_late_frames(recorder, self._late_wait, report)

    # -- after the window ------------------------------------------------------------------------------
    async def _save(
        self, writer: SessionWriter, recorder: Recorder, outcome: CommandOutcome, cancelled: bool
    ) -> SessionManifest:
        self._phase(JobPhase.SAVING)

        def report(saved: int, total: int) -> None:
            self._job.progress = {"frames": recorder.frames_taken, "saved": saved, "total": total}
            self._ctx.on_change(self._job)

        await drain(writer, report)
        cameras = self._step.cameras
        outages = outages_in(self._ctx.streams, cameras, recorder.start_mono, recorder.end_mono)
        findings = findings_of(
            writer,
            recorder,
            cameras,
            outages,
            cancelled=cancelled,
            command=outcome,
            marker_error=self._marker_error,
            late_wait_s=self._late_wait,
        )
        judged = judge(findings, self._step.command["command_id"])
        window = ClosedWindow(recorder, writer, judged, outages, (self._late_wait, self._waited))
        return await write_session(self._ctx.layout, writer, self._header(window), recorder)

    def _header(self, window: ClosedWindow) -> dict[str, Any]:
        recorder = window.recorder
        return {
            "kind": SessionKind.RECORDING,
            "job_id": self._job.id,
            "request": self._job.body,
            "command": dict(self._step.command),
            "settled_at": wall(self.settle_point),
            "settle": self._capture_proof(recorder),
            "duration_second": self._step.duration_s,
            "settle_to_first_frame_s": (
                round(recorder.first_frame_mono - self.settle_point, 4) if recorder.first_frame_mono else None
            ),
            **window.header(self._ctx.config.node.id),
            **self._job.session_tags,  # a scan's pose: scan_id, pose_index
        }

    def _capture_proof(self, recorder: Recorder) -> dict[str, Any]:
        """The settle proof, with what shows the window holds only frames captured after the settle
        (kept as :attr:`settle_proof` too: a scan's manifest repeats it)."""
        self.settle_proof = {**(self.settle_proof or {}), **capture_proof(recorder)}
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
        images_data_dir = self._ctx.paths.images_data_dir
        keys = {"job_id": self._job.id, "request": self._job.body, "command": dict(self._step.command)}
        try:
            await write_images_record(images_data_dir, manifest, summary, **keys)
        except OSError as exc:
            raise BatchStopped(
                {
                    "type": "RecordingError",
                    "message": f"session {manifest.session_id} was saved, but images_data could not be "
                    f"written in {images_data_dir}: {exc}",
                }
            ) from exc


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
