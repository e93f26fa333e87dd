"""Schedules: a scan or a batch run again every N seconds or on a cron expression.

One owner of ``schedules.json`` (beside ``config.json``, like ``presets.json``): :class:`ScheduleStore`,
a typed model written atomically under a lock (rigcore.json_store); a damaged file is moved aside with
a warning.

Timing rules (pure functions here; the thread that fires them is service/schedules/scheduler.py):

* ``every_s``: runs fall at ``created_at + k × every_s``. After a run, the next one is the first
  such slot after now, so a run that took longer than the period skips the slots it covered
  instead of queueing them all.
* ``cron``: a standard five-field expression (minute hour day-of-month month day-of-week), read by
  croniter in the service machine's local time zone, as cron does.
* A run that fell due while the service was down runs **once** at the next start (not once per
  missed slot); the next run is then the first slot after that start.
* While a schedule's previous run is still queued or running, a slot that falls due is not queued
  (it is counted in ``skipped``): a slow scan never piles up copies of itself behind it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field

from rigcore.checks import clip, is_number, json_size, json_type
from rigcore.config import Config
from rigcore.config_paths import SCHEDULES_FILE as SCHEDULES_FILE
from rigcore.json_store import FileBacked
from service.batches.plan import Plan
from service.batches.validation import build_plan
from service.presets.store import Preset
from service.scans.spec import ScanSpec, parse_scan
from service.status import RunStatus

log = logging.getLogger(__name__)

MAX_SCHEDULES = 100  # schedules in schedules.json; POST /schedules beyond it: 409
MAX_SCHEDULE_BYTES = 32 * 1024  # one POST /schedules body as compact JSON; beyond it: 400
MIN_EVERY_S = 1.0
MAX_EVERY_S = 366 * 86400.0
MAX_LABEL = 200
CRON_FIELDS = 5

ScheduleKind = Literal["scan", "batch"]


class LastRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float  # when it was fired (epoch s)
    due_at: float  # the slot it ran for (earlier than ``at`` after a downtime)
    status: RunStatus
    job_id: str | None = None
    scan_id: str | None = None
    error: dict[str, Any] | None = None


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule_id: str
    label: str | None = None
    kind: ScheduleKind
    request: dict[str, Any]  # the scan or the batch, as sent
    every_s: float | None = None
    cron: str | None = None
    created_at: float
    next_run_at: float
    last_run: LastRun | None = None
    runs: int = 0  # runs queued
    skipped: int = 0  # slots not queued because the previous run was unfinished
    # Why the scheduler stopped firing this schedule (a cron that never fires, an error while firing
    # it); the other schedules keep their slots. Cleared by replacing the schedule.
    broken: str | None = None

    def view(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    schedules: list[Schedule] = Field(default_factory=list)


def schedules_path(config_path: Path | None, base_dir: Path) -> Path:
    """schedules.json in the folder of the service's config file, else in ``base_dir``."""
    return (config_path.parent if config_path is not None else base_dir) / SCHEDULES_FILE


# -- timing (pure) ---------------------------------------------------------------------------------
def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a usable five-field cron expression, or None."""
    if len(expr.split()) != CRON_FIELDS:
        return "a cron expression has five fields: minute hour day-of-month month day-of-week"
    if not croniter.is_valid(expr):
        return f"{clip(expr)!r} is not a valid cron expression"
    try:
        next_cron(expr, time.time())
    except Exception:  # croniter gives up (CroniterBadDateError) on a date that never comes: 30 Feb
        return f"{clip(expr)!r} never fires (no such date in the next years)"
    return None


def next_cron(expr: str, after: float) -> float:
    """The first time after ``after`` (epoch s) that ``expr`` matches, in the local time zone."""
    base = dt.datetime.fromtimestamp(after).astimezone()
    nxt: dt.datetime = croniter(expr, base).get_next(dt.datetime)
    return nxt.timestamp()


def next_slot(schedule: Schedule, now: float) -> float:
    """The schedule's first slot strictly after ``now`` (the first run is the first slot after
    ``created_at`` for cron, ``created_at + every_s`` for a period)."""
    if schedule.cron is not None:
        return next_cron(schedule.cron, now)
    period = schedule.every_s
    assert period is not None, "a schedule has every_s or cron"
    k = math.floor((now - schedule.created_at) / period) + 1
    return schedule.created_at + max(k, 1) * period


# -- parsing (pure) --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """What a schedule runs, checked against the configuration in force (for a batch: its plan)."""

    kind: ScheduleKind
    request: dict[str, Any]
    plan: Plan | None = None
    scan: ScanSpec | None = None


def _p(field: str, message: str, index: int | None = None) -> dict[str, Any]:
    return {"index": index, "field": field, "message": message}


def check_launch(
    kind: ScheduleKind, request: Any, config: Config, presets: Mapping[str, Preset]
) -> tuple[Launch | None, list[dict[str, Any]]]:
    """Validate what a schedule runs, exactly as POST /scans or POST /process-request would; the
    problems' fields are prefixed with ``scan.`` or ``batch.``."""
    if kind == "scan":
        spec, problems = parse_scan(request, config, presets)
        launch = None if spec is None else Launch(kind=kind, request=request, scan=spec)
    else:
        plan, problems = build_plan(request, config, presets)
        launch = None if plan is None else Launch(kind=kind, request=request, plan=plan)
    prefixed = [{**p, "field": f"{kind}.{p['field']}"} for p in problems]
    return launch, prefixed


def _timing_problems(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    every, cron = body.get("every_s"), body.get("cron")
    if (every is None) == (cron is None):
        return [_p("every_s", "give exactly one of every_s (seconds) and cron (an expression)")]
    if every is not None:
        if not is_number(every):
            return [_p("every_s", f"must be a number of seconds, got {json_type(every)}")]
        if not MIN_EVERY_S <= every <= MAX_EVERY_S:
            return [_p("every_s", f"must be between {MIN_EVERY_S:g} and {MAX_EVERY_S:g} s, got {every:g}")]
        return []
    if not isinstance(cron, str):
        return [_p("cron", f"must be a string, got {json_type(cron)}")]
    problem = cron_problem(cron)
    return [] if problem is None else [_p("cron", problem)]


def _kind_problems(body: Mapping[str, Any]) -> tuple[ScheduleKind | None, list[dict[str, Any]]]:
    has_scan, has_batch = "scan" in body, "batch" in body
    if has_scan == has_batch:
        return None, [_p("scan", "give exactly one of scan (a POST /scans body) and batch (a batch)")]
    kind: ScheduleKind = "scan" if has_scan else "batch"
    if not isinstance(body[kind], dict):
        return None, [_p(kind, f"must be an object, got {json_type(body[kind])}")]
    return kind, []


def _other_problems(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    known = {"scan", "batch", "every_s", "cron", "label"}
    problems = [_p(clip(str(key)), "unknown field") for key in body if key not in known]
    label = body.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        problems.append(_p("label", f"must be a string of at most {MAX_LABEL} characters"))
    return problems


def parse_schedule(
    body: Any, config: Config, presets: Mapping[str, Preset], now: float | None = None
) -> tuple[Schedule | None, list[dict[str, Any]]]:
    """Check a POST /schedules body whole: ``(schedule, [])`` or ``(None, problems)``."""
    if not isinstance(body, dict):
        return None, [_p("body", f"must be a JSON object, got {json_type(body)}")]
    size = json_size(body)
    if size > MAX_SCHEDULE_BYTES:  # checked first: one problem, whatever the body holds
        return None, [_p("body", f"{size} bytes as JSON; a schedule is at most {MAX_SCHEDULE_BYTES}")]
    kind, problems = _kind_problems(body)
    problems += _timing_problems(body) + _other_problems(body)
    if kind is not None:
        problems += check_launch(kind, body[kind], config, presets)[1]
    if problems or kind is None:
        return None, problems
    created = time.time() if now is None else now
    schedule = Schedule(
        schedule_id=time.strftime("sch-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
        label=body.get("label"),
        kind=kind,
        request=body[kind],
        every_s=None if body.get("every_s") is None else float(body["every_s"]),
        cron=body.get("cron"),
        created_at=created,
        next_run_at=created,  # replaced just below
    )
    schedule.next_run_at = next_slot(schedule, created)
    return schedule, []


# -- the file ----------------------------------------------------------------------------------
class ScheduleStore(FileBacked[ScheduleFile]):
    """The schedules, read once at start and rewritten whole (atomically) on every change.

    Callers get copies: a schedule changes only through :meth:`add`, :meth:`delete` and
    :meth:`update`, each of which writes the file before it changes memory."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, ScheduleFile)
        schedules = [] if self.loaded is None else self.loaded.schedules
        self._items: dict[str, Schedule] = {s.schedule_id: s for s in schedules}

    def all(self) -> list[Schedule]:
        """Every schedule (copies), soonest first."""
        items = sorted(self._items.values(), key=lambda s: s.next_run_at)
        return [s.model_copy(deep=True) for s in items]

    def get(self, schedule_id: str) -> Schedule | None:
        found = self._items.get(schedule_id)
        return None if found is None else found.model_copy(deep=True)

    def add(self, schedule: Schedule) -> bool:
        """Store a new schedule; False when the store is full (MAX_SCHEDULES)."""
        with self._file.lock:
            if len(self._items) >= MAX_SCHEDULES:
                return False
            self._save({**self._items, schedule.schedule_id: schedule.model_copy(deep=True)})
        return True

    def delete(self, schedule_id: str) -> Schedule | None:
        with self._file.lock:
            found = self._items.get(schedule_id)
            if found is not None:
                self._save({k: v for k, v in self._items.items() if k != schedule_id})
        return found

    def update(self, schedule: Schedule) -> bool:
        """Replace a schedule by id; False (nothing written) when it was deleted meanwhile."""
        with self._file.lock:
            if schedule.schedule_id not in self._items:
                return False
            self._save({**self._items, schedule.schedule_id: schedule.model_copy(deep=True)})
        return True

    def _save(self, items: dict[str, Schedule]) -> None:
        self._file.save(ScheduleFile(schedules=list(items.values())))
        self._items = items
