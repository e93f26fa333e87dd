"""One log line per job event, naming the job: accepted, started, settled (how long), recorded (frames
per camera), saved (the session), and how it ended (succeeded, failed with the reason, cancelled).

:class:`JobLog` watches each job change the queue publishes (service.jobs.queue ``job_changed``, on
the event loop) and writes a line only when something a person follows has changed: the status, the
phase, a new session. A progress tick costs one tuple comparison. Each record carries ``event`` and
``job_id`` (and what the line says, as fields) for ``--log-format json`` (application.py).

People read degrees, camera short names and seconds here; the ids are the wire's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from service.jobs.job import Job
from service.status import JobPhase, JobStatus

log = logging.getLogger("rigcapture.jobs")

CAMERA_PREFIX = "cameradevice_"


def short(camera_id: str) -> str:
    """A camera's short name, as the dashboard and the report show it (``lwir_1``)."""
    return camera_id.removeprefix(CAMERA_PREFIX)


@dataclass
class _Seen:
    """What the log last said about a job."""

    status: JobStatus
    phase: JobPhase
    sessions: int = 0
    phase_since: float = field(default_factory=time.monotonic)


class JobLog:
    """The job lines of the log (event loop only)."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def accepted(self, job: Job, ahead: int) -> None:
        """A job was queued; ``ahead``: jobs queued or running before it."""
        self._seen[job.id] = _Seen(job.status, job.phase)
        who = (job.client or {}).get("address") or "?"
        if job.scan is not None:
            what = _count(len(job.scan.poses), "pose")
            label = job.scan.spec.label
            what += f" ({label})" if label else ""
        else:
            ids = [str(c.get("command_id")) for c in job.plan.commands]
            what = f"{_count(len(ids), 'command')} ({', '.join(ids)})"
        _line(
            logging.INFO,
            job,
            "accepted",
            f"accepted from {who}: {what}; {ahead} ahead in the queue",
            ahead=ahead,
        )

    def changed(self, job: Job) -> None:
        """A job changed: log what a person follows (the first sight of a job counts as its start)."""
        seen = self._seen.get(job.id)
        if seen is None:
            seen = self._seen[job.id] = _Seen(JobStatus.QUEUED, JobPhase.QUEUED)
        if (job.status, job.phase, len(job.sessions)) == (seen.status, seen.phase, seen.sessions):
            return
        if seen.status is JobStatus.QUEUED and job.status is JobStatus.RUNNING:
            waited = (job.started_at or time.time()) - job.created_at
            _line(logging.INFO, job, "started", f"started after {waited:.1f} s in the queue", waited_s=waited)
        if seen.phase is JobPhase.SETTLING and job.phase is not JobPhase.SETTLING and not job.finished:
            self._settled(job, seen)
        elif seen.phase is JobPhase.SETTLING and job.status is JobStatus.SUCCEEDED:
            self._settled(job, seen)  # a move without a recording: settled, then done
        for session in job.sessions[seen.sessions :]:
            _session_lines(job, session)
        if job.phase is not seen.phase:
            seen.phase, seen.phase_since = job.phase, time.monotonic()
        seen.status, seen.sessions = job.status, len(job.sessions)
        if job.finished:
            _ended(job)
            del self._seen[job.id]

    def _settled(self, job: Job, seen: _Seen) -> None:
        took = time.monotonic() - seen.phase_since
        where = ""
        if job.final_pose:
            pose = job.final_pose
            where = f" at pan {_deg(pose.get('pan_deg_x100'))}, tilt {_deg(pose.get('tilt_deg_x100'))}"
        since = (
            f"{(time.time() - job.started_at):.2f} s after its start" if job.started_at else "after its start"
        )
        _line(
            logging.INFO,
            job,
            "settled",
            f"{_pose(job)}settled in {took:.2f} s ({since}){where}",
            settle_s=took,
        )


def _session_lines(job: Job, session: dict[str, Any]) -> None:
    """Two lines for a recording: the frames per camera, then the session saved (and how)."""
    cameras = session.get("cameras") or {}
    frames = {cam: int((c or {}).get("frame_count") or 0) for cam, c in cameras.items()}
    rejected = sum(int((c or {}).get("rejected_frames") or 0) for c in cameras.values())
    per_camera = ", ".join(f"{n} {short(cam)}" for cam, n in frames.items()) or "none"
    start, end = session.get("record_started_at"), session.get("record_ended_at")
    span = (
        f" in {end - start:.2f} s" if isinstance(start, float | int) and isinstance(end, float | int) else ""
    )
    extra = f", {rejected} rejected" if rejected else ""
    _line(
        logging.INFO,
        job,
        "recorded",
        f"{_pose(job)}recorded frames: {per_camera}{span}{extra}",
        frames={short(cam): n for cam, n in frames.items()},
        rejected=rejected,
    )
    status = str(session.get("status"))
    problems = "; ".join(str(p.get("message")) for p in session.get("problems") or [] if isinstance(p, dict))
    level = logging.INFO if status == "complete" else logging.WARNING
    _line(
        level,
        job,
        "saved",
        f"{_pose(job)}saved session {session.get('session_id')} ({status}) in {session.get('path')}"
        + (f": {problems}" if problems else ""),
        session_id=session.get("session_id"),
        session_status=status,
    )


def _ended(job: Job) -> None:
    took = f"{job.finished_at - job.started_at:.2f} s" if job.finished_at and job.started_at else None
    error = job.error or {}
    reason = str(error.get("message") or error.get("type") or "no reason given")
    if job.status is JobStatus.SUCCEEDED:
        warnings = (
            f" with {_count(len(job.warnings), 'warning')}: {'; '.join(job.warnings)}" if job.warnings else ""
        )
        _line(logging.INFO, job, "succeeded", f"succeeded in {took or '?'}{warnings}", seconds=took)
    elif job.status is JobStatus.CANCELLED:
        _line(logging.INFO, job, "cancelled", f"cancelled: {reason}", reason=reason)
    else:
        after = f" after {took}" if took else ""
        _line(logging.WARNING, job, "failed", f"{job.status}{after}: {reason}", reason=reason)


def _line(level: int, job: Job, event: str, text: str, **fields: Any) -> None:
    scan = f" (scan {job.scan.id})" if job.scan is not None else ""
    extra = {"event": event, "job_id": job.id, **fields}
    log.log(level, "job %s%s %s", job.id, scan, one_line(text, 2000), extra=extra)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line of at most ``limit`` characters: what a device or a client said may be in
    it, and no control character of theirs reaches the log (a forged line)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pose(job: Job) -> str:
    """``pose 2/3 `` for a scan's pose (people count from 1), else nothing."""
    index = job.session_tags.get("pose_index")
    if job.scan is None or not isinstance(index, int):
        return ""
    return f"pose {index + 1}/{len(job.scan.poses)} "


def _deg(x100: Any) -> str:
    return f"{x100 / 100:.2f}°" if isinstance(x100, int | float) and not isinstance(x100, bool) else "?"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
