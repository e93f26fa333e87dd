"""A job: one batch, its plan, and what came of it.

A job changes only on the event loop. Its status and phase are enums; :meth:`Job.finish` is the one
place a job ends, whatever ended it (success, a failure, a cancel while queued or running, a bug).
Flask views never read a live job: after every change the service publishes :meth:`Job.view`, a
fresh dict, and views read those (``service.capture``). A job that has left memory is read back from
``history.json`` through :func:`view_from_history` into the same shape.

Phases: queued → commanding ↔ settling → recording → saving → … → done.

A scan job's view carries ``kind: "scan"`` and ``scan``: the scan's id, label, progress and, per pose,
its target, status and session (:func:`scan_summary`), so a client shows it as a scan with each pose's
session, not as a batch whose ``session`` is its last pose's.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from rigcore.errors import JobCancelled
from service.batches.plan import Plan
from service.jobs.work import NO_PLAN, Work, WorkKind
from service.scans.run import ScanRun
from service.status import UNFINISHED, CommandStatus, JobPhase, JobStatus, PoseStatus


class BatchStopped(Exception):
    """A step failed in a way that ends the batch; ``error`` is what the job reports."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error


@dataclass(eq=False)
class Job:
    id: str
    body: dict[str, Any]
    plan: Plan
    client: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    status: JobStatus = JobStatus.QUEUED
    phase: JobPhase = JobPhase.QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    final_pose: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    # Set (from the loop) once the job is finished and its history entry is written.
    done: threading.Event = field(default_factory=threading.Event)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # A scan job (POST /scans) runs its poses one after another (service.jobs.scan_runner); ``plan`` and
    # ``results`` are then those of the pose being run, and ``session_tags`` go into its session.json.
    scan: ScanRun | None = None
    session_tags: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def new_id() -> str:
        return time.strftime("job-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]

    @staticmethod
    def for_work(work: Work, body: dict[str, Any], client: dict[str, Any]) -> Job:
        """A new job running ``work``: a batch's plan, or a scan (its job id noted in the scan)."""
        if work.kind == "batch":
            return Job(Job.new_id(), body, work.plan, client)
        job = Job(Job.new_id(), body, NO_PLAN, client, scan=work.run)
        work.run.job_id = job.id
        return job

    @property
    def kind(self) -> WorkKind:
        return "batch" if self.scan is None else "scan"

    @property
    def finished(self) -> bool:
        return self.status.finished

    # -- changes (event loop only) ---------------------------------------------------------------
    def start(self) -> None:
        self.status, self.started_at = JobStatus.RUNNING, time.time()

    def raise_if_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise JobCancelled(self.id)

    def record_result(self, index: int, result: dict[str, Any]) -> None:
        """The result of command ``index`` (commands finish in order, each once)."""
        assert index == len(self.results), f"result for command {index} out of order"
        self.results.append(result)

    def fail_current(self, message: str | None) -> None:
        """Mark the command that was running when the job failed as failed (not skipped)."""
        if len(self.results) < len(self.plan.commands):
            cmd = dict(self.plan.commands[len(self.results)])
            failed = str(CommandStatus.FAILED)
            self.results.append({"request": cmd, "status": failed, "status_code": None, "error": message})

    def finish(self, status: JobStatus, error: dict[str, Any] | None = None) -> None:
        """End the job: the commands not run are ``skipped``, the phase is ``done``."""
        assert status.finished, status
        self.status = status
        if error is not None:
            self.error = error
        for cmd in self.plan.commands[len(self.results) :]:
            skipped = str(CommandStatus.SKIPPED)
            self.results.append({"request": dict(cmd), "status": skipped, "status_code": None})
        self.phase, self.finished_at, self.progress = JobPhase.DONE, time.time(), {}

    # -- reading -----------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The job as the API shows it: a fresh dict sharing nothing with the job."""
        view = copy.deepcopy(
            {
                "job_id": self.id,
                "kind": self.kind,
                "status": str(self.status),
                "phase": str(self.phase),
                "created_at": self.created_at,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "results": self.results,
                "session": self.sessions[-1] if self.sessions else None,
                "sessions": self.sessions,
                "progress": self.progress,
                "error": self.error,
                "final_pose": self.final_pose,
                "warnings": self.warnings,
            }
        )
        view["scan"] = None if self.scan is None else scan_summary(self.scan)  # built fresh: no copy
        return view

    def history_entry(self, transport: str) -> dict[str, Any]:
        """The job's entry in history.json: its view plus who sent what."""
        view = self.view()
        view.pop("progress")
        return {
            "id": view.pop("job_id"),
            "received_at": view.pop("created_at"),
            "client": copy.deepcopy(self.client),
            "request": copy.deepcopy(self.body),
            "transport": transport,
            **view,
        }


def scan_summary(scan: ScanRun) -> dict[str, Any]:
    """A scan job's scan as its view shows it: id, label, status, progress, and per pose (``index``
    from 0, as on the wire) its target, status and session."""
    poses = [
        {
            "index": p.index,
            "pan_deg_x100": p.target.pan_deg_x100,
            "tilt_deg_x100": p.target.tilt_deg_x100,
            "preset": p.preset,
            "status": p.status,
            "session_id": p.session_id,
        }
        for p in scan.poses
    ]
    done = sum(1 for p in scan.poses if p.status == PoseStatus.DONE.value)
    return {
        "scan_id": scan.id,
        "label": scan.spec.label,
        "status": scan.status,
        "progress": {"done": done, "total": len(poses)},
        "poses": poses,
    }


def view_from_history(entry: dict[str, Any]) -> dict[str, Any]:
    """A job that has left memory, from its history entry, in the shape of :meth:`Job.view`."""
    sessions = entry.get("sessions") or []
    status = entry.get("status")
    request = entry.get("request")
    scan_request = isinstance(request, dict) and ("poses" in request or "grid" in request)
    return {
        "job_id": entry.get("id"),
        "kind": entry.get("kind") or ("scan" if scan_request else "batch"),
        "status": status,
        "phase": str(JobPhase.DONE) if status not in UNFINISHED else status,
        "created_at": entry.get("received_at"),
        "started_at": entry.get("started_at"),
        "finished_at": entry.get("finished_at"),
        "results": entry.get("results") or [],
        "session": sessions[-1] if sessions else None,
        "sessions": sessions,
        "progress": {},
        "error": entry.get("error"),
        "final_pose": entry.get("final_pose"),
        "warnings": entry.get("warnings") or [],
        "scan": entry.get("scan"),
    }
