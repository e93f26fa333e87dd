"""The thread that fires schedules (service/schedules/rules.py holds the rules and the file).

It sleeps until the soonest schedule falls due (woken early when a schedule is added or deleted),
then queues each due schedule's scan or batch through the same entry as the HTTP API — validated
again against the configuration in force, so a schedule whose preset was deleted or whose camera
left the configuration is ``refused`` with the reason rather than run half-way. Runs are ordinary
jobs in the one queue: they never overlap a capture. The thread starts firing only once the service
is ready (broker and streams connected), so a run owed from a downtime is queued, not lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from rigcore.config import Config
from rigcore.errors import RigError
from service.batches.plan import Plan
from service.jobs.work import BatchWork, ScanWork, Work
from service.presets.store import PresetStore
from service.scans.run import ScanRun
from service.schedules.rules import (
    LastRun,
    Launch,
    Schedule,
    ScheduleStore,
    check_launch,
    next_slot,
)
from service.status import UNFINISHED, RunStatus

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0  # re-read the clock at least this often (a wall-clock jump is noticed)
FOLLOW_S = 1.0  # while a run is unfinished, its status is refreshed this often
RETRY_S = 5.0  # a run that could not be queued (broker down, queue full) is tried again after this
READY_WAIT_S = 0.25  # short: stop() must not wait long for a service that never got ready
MAX_PROBLEMS = 20


class Launcher(Protocol):
    """What the scheduler needs from the capture service."""

    @property
    def config(self) -> Config: ...

    presets: PresetStore

    def submit(self, body: dict[str, Any], work: Work, client: dict[str, Any]) -> dict[str, Any]: ...

    def job_view(self, job_id: str) -> dict[str, Any] | None: ...

    def wait_ready(self, timeout: float = 10.0) -> bool: ...


class Scheduler:
    def __init__(
        self, store: ScheduleStore, launcher: Launcher, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._launcher = launcher
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._broken: set[str] = set()  # ids of schedules that failed (see tick)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def poke(self) -> None:
        """A schedule was added or deleted: look again now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set() and not self._launcher.wait_ready(READY_WAIT_S):
            pass
        while not self._stopping.is_set():
            try:
                delay = self.tick()
            except Exception:  # never let the thread die: the next tick tries again
                log.exception("scheduler tick failed")
                delay = RETRY_S
            self._wake.wait(delay)
            self._wake.clear()

    def tick(self) -> float:
        """Refresh unfinished runs, fire every due schedule; return the seconds until the next look.

        Each schedule on its own: one that fails (an error while firing it, a cron that never fires
        edited into the file) is marked ``broken`` and skipped; the others keep their slots."""
        delay = MAX_SLEEP_S
        for schedule in self.store.all():
            if schedule.broken is not None or schedule.schedule_id in self._broken:
                continue
            try:
                delay = min(delay, self._tick_one(schedule))
            except Exception as exc:
                self._mark_broken(schedule, exc)
        return max(delay, 0.01)

    def _tick_one(self, schedule: Schedule) -> float:
        self._follow(schedule)
        now = self._clock()
        if schedule.next_run_at <= now:
            self._fire(schedule, now)
        delay = schedule.next_run_at - self._clock()
        if schedule.last_run is not None and schedule.last_run.status in UNFINISHED:
            delay = min(delay, FOLLOW_S)
        return delay

    def _mark_broken(self, schedule: Schedule, exc: Exception) -> None:
        log.error("schedule %s fails and is skipped from now on", schedule.schedule_id, exc_info=exc)
        schedule.broken = f"{type(exc).__name__}: {str(exc)[:300]}"
        self._broken.add(schedule.schedule_id)  # skipped even if the mark cannot be saved
        try:
            self.store.update(schedule)
        except Exception:
            log.exception("schedule %s: cannot save its broken mark", schedule.schedule_id)

    def _follow(self, schedule: Schedule) -> None:
        """Bring the last run's status up to date with its job."""
        last = schedule.last_run
        if last is None or last.status not in UNFINISHED or last.job_id is None:
            return
        view = self._launcher.job_view(last.job_id)
        status = None if view is None else view.get("status")
        if status is not None and status != last.status:
            last.status = RunStatus(status)
            self.store.update(schedule)

    def _fire(self, schedule: Schedule, now: float) -> None:
        due = schedule.next_run_at
        upcoming = next_slot(schedule, now)  # first: a schedule without a next slot queues nothing
        last = schedule.last_run
        if last is not None and last.status in UNFINISHED:
            schedule.skipped += 1
            schedule.next_run_at = upcoming
            self.store.update(schedule)
            return
        launch, problems = check_launch(
            schedule.kind, schedule.request, self._launcher.config, self._launcher.presets.all()
        )
        if launch is None:
            error = {
                "type": "InvalidRequest",
                "message": f"the schedule's {schedule.kind} no longer fits the configuration: "
                f"{problems[0]['field']}: {problems[0]['message']}; nothing was executed",
                "problems": problems[:MAX_PROBLEMS],
            }
            schedule.last_run = LastRun(at=now, due_at=due, status=RunStatus.REFUSED, error=error)
            schedule.next_run_at = upcoming
        else:
            self._queue(schedule, launch, now, due)
        self.store.update(schedule)

    def _queue(self, schedule: Schedule, launch: Launch, now: float, due: float) -> None:
        client = {"address": None, "user_agent": "rigcapture scheduler", "schedule_id": schedule.schedule_id}
        scan = None if launch.scan is None else ScanRun.new(launch.scan, launch.request)
        work: Work = ScanWork(scan) if scan is not None else BatchWork(_plan(launch))
        try:
            view = self._launcher.submit(launch.request, work, client)
        except (RigError, OSError) as exc:
            error = {"type": type(exc).__name__, "message": f"not queued: {exc}"}
            schedule.last_run = LastRun(at=now, due_at=due, status=RunStatus.NOT_QUEUED, error=error)
            schedule.next_run_at = min(now + RETRY_S, next_slot(schedule, now))
            log.warning("schedule %s: %s", schedule.schedule_id, error["message"])
            return
        schedule.last_run = LastRun(
            at=now,
            due_at=due,
            status=RunStatus(view["status"]),
            job_id=view["job_id"],
            scan_id=None if scan is None else scan.id,
        )
        schedule.runs += 1
        schedule.next_run_at = next_slot(schedule, now)


def _plan(launch: Launch) -> Plan:
    assert launch.plan is not None, "a batch launch carries its plan"
    return launch.plan
