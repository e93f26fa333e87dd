"""The job queue and registry: accepting a job (its history entry first), queueing it, the live jobs
and their views, and each job's record in history.json as it changes. Each job event and each refused
request gets a line in the log (service.jobs.log).

Loop side: the live jobs. Flask side: the views, a mapping the loop replaces whole after each change
(copy on write), so a view reads one consistent snapshot without a lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rigcore.errors import QueueFull
from rigcore.runtime import LoopRuntime
from service.history.store import HistoryStore, Refusal, refused_request
from service.jobs.job import Job, view_from_history
from service.jobs.log import JobLog, one_line
from service.jobs.work import Work
from service.scans.registry import ScanRegistry
from service.status import REJECTED, JobStatus

log = logging.getLogger(__name__)
refusals = logging.getLogger("rigcapture.requests")

# Finished jobs kept in memory for GET /jobs/<id>; older ones live on in history.json.
MAX_JOBS_KEPT = 500


class JobQueue:
    def __init__(
        self,
        history: HistoryStore,
        runtime: LoopRuntime,
        scans: ScanRegistry,
        transport: Callable[[], str],  # the command transport in force, as history records it
    ) -> None:
        self.history = history
        self._runtime = runtime
        self._scans = scans
        self._transport = transport
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._views: dict[str, dict[str, Any]] = {}
        self._done_events: dict[str, threading.Event] = {}  # set once a job's outcome is in history
        self._history_marks: dict[str, tuple[str, int]] = {}
        self._reserved: set[str] = set()  # jobs accepted, their entry being written (loop only)
        # One thread: history writes land in the order they were made.
        self.history_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._queue: asyncio.Queue[Job]
        self._log = JobLog()  # loop only, like the jobs

    def init_on_loop(self, maxsize: int) -> None:
        self._queue = asyncio.Queue(maxsize=maxsize)

    def close(self) -> None:
        self.history_io.shutdown(wait=True)

    # -- accepting (any thread, then the loop) -----------------------------------------------------
    def submit(self, body: dict[str, Any], work: Work, client: dict[str, Any]) -> dict[str, Any]:
        """Queue checked work; return the job's view (see CaptureService.submit)."""
        outcome: Future[dict[str, Any]] = Future()
        self._runtime.submit(self._accept(body, work, client, outcome), timeout=10)
        try:
            return outcome.result(timeout=40)
        except TimeoutError:
            if outcome.cancel():  # not queued yet, and now it never will be (see _enqueue)
                raise
            return outcome.result(timeout=10)  # being queued this very moment

    async def _accept(
        self, body: dict[str, Any], work: Work, client: dict[str, Any], outcome: Future[dict[str, Any]]
    ) -> None:
        """Keep a place in the queue and write the job's entry; the job is queued once it is written."""
        if self._queue.qsize() + len(self._reserved) >= self._queue.maxsize:
            raise QueueFull(self._queue.maxsize)
        job = Job.for_work(work, body, client)
        entry = job.history_entry(self._transport())  # may fail: nothing is kept yet
        loop = asyncio.get_running_loop()

        def written(added: Future[None]) -> None:
            # The one history thread writes in submission order, and the loop runs these calls in the
            # order they come: jobs are queued in the order they were accepted.
            try:
                loop.call_soon_threadsafe(self._enqueue, job, added, outcome)
            except RuntimeError as exc:  # the loop has stopped: the service is shutting down
                if outcome.set_running_or_notify_cancel():
                    outcome.set_exception(exc)

        added = self.history_io.submit(self.history.add, entry)
        if job.scan is not None:
            self.history_io.submit(self._scans.write, job.scan.manifest())
        self._reserved.add(job.id)  # given back by _enqueue, which runs after this returns
        added.add_done_callback(written)

    def _enqueue(self, job: Job, added: Future[None], outcome: Future[dict[str, Any]]) -> None:
        """(loop) Queue and register a job whose entry is written, or give its place back."""
        self._reserved.discard(job.id)
        if not outcome.set_running_or_notify_cancel():  # the caller gave up waiting: never run it
            if added.exception() is None:
                job.finish(JobStatus.FAILED, {"type": "NotQueued", "message": "the request timed out"})
                self.job_changed(job)  # its history entry says so; it was never registered
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
        ahead = sum(1 for jid, j in self._jobs.items() if jid != job.id and not j.finished)
        self._log.accepted(job, ahead)

    def _publish(self, job: Job) -> None:
        """Replace the views with a new mapping holding the job's new view (loop thread only)."""
        view = job.view()
        self._views = {
            jid: view if jid == job.id else self._views[jid]
            for jid in self._jobs
            if jid == job.id or jid in self._views
        }
        if job.scan is not None:
            self._scans.publish(job.scan, (j.scan.id for j in self._jobs.values() if j.scan is not None))

    # -- changes (loop) ------------------------------------------------------------------------------
    def job_changed(self, job: Job) -> None:
        # The view follows every change; history.json follows each status change (queued → running →
        # outcome) and each new session, so a killed process leaves a true record of how far every job
        # got. The write (with fsync) runs on the history thread, never on the event loop.
        self._log.changed(job)
        self._publish(job)
        mark = (job.status, len(job.sessions))
        written: Future[None] | None = None
        if self._history_marks.get(job.id) != mark:
            self._history_marks[job.id] = mark
            entry = job.history_entry(self._transport())
            entry.pop("id")
            written = self.history_io.submit(self._update_history, job.id, entry)
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

    async def work_loop(self, run: Callable[[Job], Awaitable[None]]) -> None:
        """Take jobs from the queue one at a time and ``run`` them; a job cancelled while queued ends."""
        while True:
            job = await self._queue.get()
            try:
                if job.cancel_requested.is_set():
                    self._end_cancelled(job)
                    continue
                await run(job)
            finally:
                self._queue.task_done()

    def _end_cancelled(self, job: Job) -> None:
        job.finish(
            JobStatus.CANCELLED,
            {"type": "JobCancelled", "message": f"job {job.id} was cancelled while queued"},
        )
        if job.scan is not None:
            job.scan.follow(job.status, job.finished_at, job.error)
            self.history_io.submit(self._scans.write, job.scan.manifest())
        self.job_changed(job)

    # -- reading (any thread) ------------------------------------------------------------------------
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

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Ask a job to stop; return its view (None: no such job in memory)."""

        async def request_cancel() -> dict[str, Any] | None:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if not job.finished:
                job.cancel_requested.set()
            return self._views.get(job_id)

        return self._runtime.submit(request_cancel(), timeout=5)

    def is_recording(self) -> bool:
        """A job runs (commands, settles, records or saves): background work such as uploads waits."""
        return any(v["status"] == JobStatus.RUNNING for v in self._views.values())

    def queue_length(self) -> int:
        return sum(1 for v in self._views.values() if v["status"] == JobStatus.QUEUED)

    def record_rejected(self, refused: Refusal) -> str:
        """Record a refused request as a bounded entry: the body's size, SHA-256 and first characters
        (``refused.raw`` None: the body was not read), never the whole body. A history that cannot be written
        does not change the answer: it is logged."""
        entry_id = time.strftime("rej-%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        entry = {
            "id": entry_id,
            "received_at": time.time(),
            "client": refused.client,
            **refused_request(refused.raw, refused.declared_bytes),
            "status": REJECTED,
            "http_status": refused.status,
            "error": refused.error,
        }
        try:
            self.history.add(entry)
        except OSError:
            log.exception("could not record the refused request %s in history", entry_id)
        address = (refused.client or {}).get("address") or "?"
        problem = first_problem(refused.error)
        refusals.warning(
            "request %s refused (%d) from %s: %s",
            entry_id,
            refused.status,
            address,
            problem,
            extra={
                "event": "refused",
                "history_id": entry_id,
                "http_status": refused.status,
                "problem": problem,
            },
        )
        return entry_id


def first_problem(error: dict[str, Any]) -> str:
    """The first problem of an error answer (api.errors ``error_body``) in one short line: its first
    detail (item, field, message), else its message; control characters escaped."""
    details = error.get("details") or []
    first = details[0] if details and isinstance(details[0], dict) else None
    if first is None:
        text = str(error.get("error") or error.get("message") or "refused")
    else:
        item = f"item {first['index']} " if isinstance(first.get("index"), int) else ""
        text = f"{item}{first.get('field') or ''}: {first.get('message')}".strip(": ")
        if len(details) > 1:
            text += f" (and {len(details) - 1} more)"
    return one_line(text, 300)
