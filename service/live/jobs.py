"""Job and session events for the live ``/rig/jobs`` topic (pure; the event loop calls it).

Every change of a running job reaches :meth:`JobEvents.changed` (the service hands it the job after
each change it publishes); what changed since the job was last seen becomes events, in order:

    job_started → settling → settled → recording → saving → session_saved → … → job_finished

``settled``: the job left the settling phase still running (a settle that fails ends the job:
``job_finished`` with its status). ``session_saved`` carries the session's id, status and window.
Ids and times on the wire: the job's id, its scan's id (a scan job), epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from service.status import JobPhase, JobStatus

JOBS_TOPIC = "/rig/jobs"

# Every event, in the order a job of one recording goes through them.
EVENTS = ("job_started", "settling", "settled", "recording", "saving", "session_saved", "job_finished")
EVENT_SCHEMA: dict[str, Any] = {
    "title": "rigcapture.JobEvent",
    "description": "A change of a job or a session of the live rig",
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            "enum": list(EVENTS),
        },
        "at": {"type": "number", "description": "epoch seconds the service saw the change"},
        "job_id": {"type": "string"},
        "kind": {"type": "string", "enum": ["batch", "scan"]},
        "scan_id": {"type": ["string", "null"]},
        "status": {"type": "string", "description": "the job's status"},
        "phase": {"type": "string", "description": "the job's phase"},
        "session_id": {"type": ["string", "null"]},
        "session_status": {"type": ["string", "null"]},
        "settled_at": {"type": ["number", "null"]},
        "record_started_at": {"type": ["number", "null"]},
        "record_ended_at": {"type": ["number", "null"]},
        "error": {"type": ["string", "null"]},
    },
}

# Phases whose start is an event of its own.
_PHASE_EVENTS = {JobPhase.SETTLING: "settling", JobPhase.RECORDING: "recording", JobPhase.SAVING: "saving"}


class _Scan(Protocol):
    @property
    def id(self) -> str: ...


class JobLike(Protocol):
    """What the events read of a job (service.jobs.job.Job)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> JobStatus: ...
    @property
    def phase(self) -> JobPhase: ...
    @property
    def sessions(self) -> list[dict[str, Any]]: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def scan(self) -> _Scan | None: ...


@dataclass(frozen=True, slots=True)
class _Seen:
    status: JobStatus
    phase: JobPhase
    sessions: int


class JobEvents:
    """The last state seen of each unfinished job (a finished job is forgotten: the map holds the
    running job, at most a few)."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def changed(self, job: JobLike, now: float) -> list[dict[str, Any]]:
        """The events since ``job`` was last seen, oldest first."""
        before = self._seen.get(job.id, _Seen(JobStatus.QUEUED, JobPhase.QUEUED, 0))
        base = {
            "at": now,
            "job_id": job.id,
            "kind": "batch" if job.scan is None else "scan",
            "scan_id": None if job.scan is None else job.scan.id,
            "status": str(job.status),
            "phase": str(job.phase),
        }
        names: list[str] = []
        running = job.status is JobStatus.RUNNING
        if before.status is JobStatus.QUEUED and running:
            names.append("job_started")  # a job cancelled while queued never started
        if job.phase != before.phase:
            if before.phase is JobPhase.SETTLING and running:
                names.append("settled")
            if (name := _PHASE_EVENTS.get(job.phase)) is not None and running:
                names.append(name)
        events = [{"event": name, **base} for name in names]
        events += [_session_event(base, s) for s in job.sessions[before.sessions :]]
        if job.status.finished:
            error = job.error or {}
            events.append({"event": "job_finished", **base, "error": error.get("message")})
            self._seen.pop(job.id, None)
        else:
            self._seen[job.id] = _Seen(job.status, job.phase, len(job.sessions))
        return events


def _session_event(base: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "session_saved",
        **base,
        "session_id": session.get("session_id"),
        "session_status": session.get("status"),
        "settled_at": session.get("settled_at"),
        "record_started_at": session.get("record_started_at"),
        "record_ended_at": session.get("record_ended_at"),
    }


__all__ = ["EVENT_SCHEMA", "JOBS_TOPIC", "JobEvents", "JobLike"]
