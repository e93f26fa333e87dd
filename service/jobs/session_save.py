"""Closing and saving a window of frames as a session: the part a recording (service.jobs.record_step)
and an event (service.events) share.

Once a window is open — a :class:`service.jobs.recorder.Recorder` taking the frames captured inside
it, handing them to a :class:`sessions.writer.SessionWriter` — the rest is the same whatever opened
it: wait for the frames captured before its end that are still on their way
(:func:`wait_late_frames`), wait for every frame's write (:func:`drain`), judge what was found
(:class:`Findings`, :func:`judge`), and write ``state.jsonl`` and ``session.json`` with each frame's
pose at its capture time (:func:`write_session`). The caller adds its own keys to the manifest
(:meth:`ClosedWindow.header` gives the shared ones) and hands the saved session to aftercare.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camera.pool import FramePool
from camera.stream import StreamClient
from mqtt_control.commands import CommandOutcome
from rigcore.config import Config, ResolvedPaths
from rigcore.errors import RecordingError
from rigcore.memory import writer_cap_bytes
from rigcore.pose_timeline import PoseTimeline
from rigcore.rig import RigLayout
from service.jobs.recorder import Recorder
from sessions.manifest import ImagesDataRecord, Problem, SessionManifest, SessionStatus, write_images_data
from sessions.state_log import STATE_LOG_NAME, StateLogInfo, StateRecord, write_state_log
from sessions.writer import CameraWriteOptions, SessionWriter

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25
# Every camera confirmed, how long a window still waits for a pan-tilt sample received after its end
# (devices publish 5-20 times a second, PROTOCOL.md §2: two to ten periods).
POSE_WAIT_S = 0.5


@dataclass(frozen=True)
class Findings:
    """What is known of a recording once its window closed and its writes are done."""

    cancelled: bool
    command: CommandOutcome | None  # the command that started the recording (None: an event has none)
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
    command_failed = f.command is not None and not f.command.ok
    if f.command is not None and command_failed:
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
    if command_failed or (write_failed and not f.out_of_space) or f.marker_error:
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


def findings_of(
    writer: SessionWriter,
    recorder: Recorder,
    cameras: Sequence[str],
    outages: Sequence[dict[str, Any]],
    **known: Any,
) -> Findings:
    """What the writer and the recorder found once the writes are done; ``known`` adds what only the
    caller knows (``cancelled``, ``command``, ``marker_error``, ``late_wait_s``)."""
    counts = writer.camera_summary()
    return Findings(
        cancelled=known.pop("cancelled", False),
        command=known.pop("command", None),
        silent_cameras=[c for c in cameras if recorder.frames_of(c) == 0],
        failed_writes={cam: c["failed_writes"] for cam, c in counts.items()},
        outages=len(outages),
        missing_frames=sum(g["missing_frames"] for g in recorder.gaps),
        out_of_space=writer.out_of_space(),
        unconfirmed=recorder.unconfirmed(),
        clock_failures={cam: c["reasons"] for cam, c in recorder.clock_report().items()},
        **known,
    )


def outages_in(
    streams: Iterable[StreamClient], cameras: Iterable[str], start_mono: float, end_mono: float
) -> list[dict[str, Any]]:
    """The outages of the streams that carry ``cameras`` within the window."""
    chosen = set(cameras)
    return [o for s in streams if s.cameras & chosen for o in s.outages_between(start_mono, end_mono)]


def wall(mono: float) -> float:
    """A monotonic time as epoch seconds (the service's clock)."""
    return time.time() - (time.monotonic() - mono)


@dataclass(frozen=True)
class WriterParts:
    """What a session's writer is made of: the configuration and folders in force, the writer threads
    and the frame pool (service.jobs.context RunContext, service.events)."""

    config: Config
    paths: ResolvedPaths
    executor: Executor
    pool: FramePool | None


@dataclass(frozen=True)
class SaveServices:
    """What saving any session needs from the service, beside the configuration in force: the folders
    (fixed since the start), the writer threads, the frame pool, and aftercare for a saved session
    (service.aftercare). Jobs (service.capture) and events (service.events.desk) share one."""

    paths: ResolvedPaths
    executor: Executor
    pool: FramePool
    on_saved: Callable[[SessionManifest, Path], None]

    def writer_parts(self, config: Config) -> WriterParts:
        """A writer's parts under ``config``: the frame pool only with a warm buffer
        (``recording.warm_buffer_s`` > 0); without one, frames are allocated as they come."""
        pool = self.pool if config.recording.warm_buffer_s > 0 else None
        return WriterParts(config, self.paths, self.executor, pool)


def session_writer(
    parts: WriterParts, cameras: Iterable[str], session: tuple[str, Path], held_bytes: int
) -> SessionWriter:
    """The writer of one session's ``cameras`` in their configured formats, its memory the cap less
    ``held_bytes`` (frames other parts hold: the pre-roll, the event ring), spilling beyond it."""
    cfg = parts.config
    options = {
        cam: CameraWriteOptions(
            previews=cfg.cameras[cam].previews,
            image_format=cfg.cameras[cam].image_format,
            display=cfg.cameras[cam].display,
        )
        for cam in cameras
    }
    cap = writer_cap_bytes(cfg.recording.memory_cap_mb, held_bytes)
    return SessionWriter(
        session[1],
        session[0],
        options,
        parts.executor,
        memory_cap_bytes=cap,
        spill_dir=parts.paths.spill_dir if cap is not None else None,
        pool=parts.pool,
    )


async def write_images_record(
    images_data_dir: Path, manifest: SessionManifest, summary: Mapping[str, Any], **keys: Any
) -> None:
    """``images_data/<session_id>.json`` of a saved session, off the loop: its summary with the pose
    at the start and the duration, and ``keys`` (job_id, request, command). OSError when it cannot be
    written (the session itself is saved)."""
    record = ImagesDataRecord(
        session_id=manifest.session_id,
        summary={
            **summary,
            "pose_at_start": manifest.pose_at_start,
            "duration_second": manifest.duration_second,
        },
        **keys,
    )
    await asyncio.get_running_loop().run_in_executor(None, write_images_data, images_data_dir, record)


@dataclass(frozen=True)
class ClosedWindow:
    """A window once its writes are done and it is judged: what every ``session.json`` header shares,
    whatever opened the window (a recording's step or an event)."""

    recorder: Recorder
    writer: SessionWriter
    judged: tuple[SessionStatus, list[Problem]]
    outages: list[dict[str, Any]]
    waits: tuple[float, float]  # the late-frame wait, and how long it waited

    def header(self, node_id: str) -> dict[str, Any]:
        """The shared keys: status and problems, the window in capture time, how it was closed, gaps,
        outages, and the node that recorded it (config ``node.id``, for the fleet)."""
        recorder = self.recorder
        status, problems = self.judged
        late_wait, waited = self.waits
        return {
            "status": status,
            "record_started_at": wall(recorder.start_mono),
            "record_ended_at": wall(recorder.end_mono),
            "capture": {
                "dropped_before": recorder.dropped_before,
                "dropped_after": recorder.dropped_after,
                "late_wait_s": late_wait,
                "waited_s": round(waited, 3),
                "unconfirmed": recorder.unconfirmed(),
            },
            "pose_at_start": dict(recorder.pose_at_start),
            "problems": problems,
            "gaps": recorder.gaps,
            "stream_outages": self.outages,
            "unreadable_messages": recorder.unreadable_messages,
            "memory": self.writer.memory_report(),
            "node_id": node_id,
        }


def capture_proof(recorder: Recorder) -> dict[str, Any]:
    """What shows the window holds only frames captured inside it (a recording adds it to its settle
    proof): the newest frame dropped before it, the earliest taken, the cameras' delays."""
    return {
        "latest_dropped_capture_at": recorder.latest_dropped_before,
        "earliest_saved_capture_at": recorder.earliest_saved,
        "delay_s": recorder.delay_stats(),
    }


# -- the waits ----------------------------------------------------------------------------------------
async def wait_late_frames(
    recorder: Recorder, late_wait_s: float, report: Callable[[list[str]], None]
) -> float:
    """Frames captured before the end are still on their way: wait until every camera has sent one
    captured after it, at most ``late_wait_s`` (docs/protocol.md §5); ``report`` hears the cameras
    still awaited. Returns how long it waited."""
    started = time.monotonic()
    deadline = started + late_wait_s
    while not recorder.all_confirmed.is_set() and (left := _left(recorder, deadline)) > 0:
        report(recorder.unconfirmed())
        try:
            async with asyncio.timeout(min(left, PROGRESS_EVERY_S)):
                await recorder.all_confirmed.wait()
        except TimeoutError:
            continue
    return time.monotonic() - started


def _left(recorder: Recorder, deadline: float) -> float:
    """Seconds left of the late-frame wait: once every camera confirmed, the pan-tilt sample after the
    end is awaited POSE_WAIT_S more at most (a link that is down sends none; frames then say ``held``)."""
    confirmed = recorder.cameras_confirmed_mono
    end = deadline if confirmed is None else min(deadline, confirmed + POSE_WAIT_S)
    return end - time.monotonic()


async def drain(writer: SessionWriter, report: Callable[[int, int], None]) -> None:
    """Wait for every frame write (a failed one is counted, never raised); ``report`` hears (saved,
    total) meanwhile. It waits on the default executor so that it does not hold a writer thread the
    encodes need."""
    loop = asyncio.get_running_loop()
    waiting = loop.run_in_executor(None, _wait_quietly, writer)
    while not waiting.done():
        report(*writer.progress())
        await asyncio.wait({waiting}, timeout=PROGRESS_EVERY_S)
    await waiting


def _wait_quietly(writer: SessionWriter) -> None:
    try:
        writer.wait()
    except Exception:
        pass


# -- the files ----------------------------------------------------------------------------------------
async def write_session(
    layout: RigLayout, writer: SessionWriter, header: dict[str, Any], recorder: Recorder
) -> SessionManifest:
    """``state.jsonl`` and ``session.json`` (``header`` plus the cameras), off the loop: up to
    MAX_STATE_SAMPLES samples to convert, sort and write (the recorder's state listener must be
    detached, so its list no longer changes). RecordingError when session.json cannot be written:
    the marker stays, so the next start lists the frames on disk (sessions.recovery)."""
    notes = {cam: {"clock": clock} for cam, clock in recorder.clock_report().items()}
    finish = functools.partial(_save_session, layout, writer, header, recorder, notes)
    try:
        return await asyncio.get_running_loop().run_in_executor(None, finish)
    except OSError as exc:
        raise RecordingError(
            f"session {writer.session_id}: session.json could not be written: {exc}"
        ) from exc


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
