"""The statuses the service writes, one enum each (the bottom of service/: imports nothing of it).

The values are the strings the API shows and the files hold; a ``StrEnum`` member is that string.
Scan and pose records are typed with literal strings in sessions/scan_manifest.py: there the
member's ``.value`` (typed as its literal) is assigned.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's status; a scan's status is its job's."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the process that ran it stopped (found in history at the next start)

    @property
    def finished(self) -> bool:
        return self not in UNFINISHED


# A job (or scan, or schedule run) whose record will change again.
UNFINISHED: frozenset[str] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
# The statuses a job (or scan) ends with.
FINISHED: frozenset[str] = frozenset(s for s in JobStatus if s not in UNFINISHED)


class JobPhase(StrEnum):
    QUEUED = "queued"
    COMMANDING = "commanding"
    SETTLING = "settling"
    RECORDING = "recording"
    SAVING = "saving"
    DONE = "done"


class CommandStatus(StrEnum):
    """One command's result in a job's ``results``."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class PoseStatus(StrEnum):
    """One pose of a scan."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    """A schedule's last run: its job's status once queued, or why it was not queued."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"  # no longer fits the configuration
    NOT_QUEUED = "not_queued"  # broker down, queue full, history not writable


class EventStatus(StrEnum):
    """An event (service.events): collecting its frames, saving them, then how its session ended."""

    COLLECTING = "collecting"  # the window is open: the ring's frames taken, the after part coming
    SAVING = "saving"
    SAVED = "saved"  # session complete
    PARTIAL = "partial"  # saved, but frames are missing (a camera, an outage, the ring held less)
    FAILED = "failed"  # the session could not be saved whole (a write, session.json)

    @property
    def finished(self) -> bool:
        return self not in (EventStatus.COLLECTING, EventStatus.SAVING)


# A refused request's history entry (never a job).
REJECTED = "rejected"
