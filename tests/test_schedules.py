"""Schedules: the timing rules and the file (unit), and runs fired against the simulated rig.

The unit part drives :class:`service.schedules.scheduler.Scheduler` with a fake launcher and a fake
clock (pure logic: which slot is next, what is refused, what is skipped, what a downtime owes). The
integration part stores schedules over HTTP on a service talking to the real Mosquitto and the
simulated rig: an ``every_s`` schedule fires twice and both runs record sessions; a run that fell due
while the service was stopped runs once at the next start; a bad schedule is refused with nothing
stored.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from rigcore.config import Config
from rigcore.errors import QueueFull
from service.capture import CaptureService
from service.jobs.work import ScanWork, Work
from service.presets.store import PresetStore
from service.scans.run import ScanRun
from service.schedules.rules import (
    MAX_SCHEDULE_BYTES,
    MAX_SCHEDULES,
    Schedule,
    ScheduleStore,
    cron_problem,
    next_cron,
    next_slot,
    parse_schedule,
)
from service.schedules.scheduler import RETRY_S, Scheduler
from simulator.rig import SimRig
from tests.conftest import batch, scaled, until, wait_job

CFG = Config()
CAMS = ["cameradevice_swir_1"]


def scan_body(**extra: Any) -> dict[str, Any]:
    return {
        "cameras": CAMS,
        "duration_second": 1,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}],
        **extra,
    }


def fields(body: Any) -> list[str]:
    schedule, problems = parse_schedule(body, CFG, {})
    assert schedule is None
    return [p["field"] for p in problems]


# -- timing and parsing (unit) -----------------------------------------------------------------------
def test_every_s_slots_keep_their_phase_and_skip_what_was_missed() -> None:
    s = Schedule(schedule_id="s", kind="batch", request={}, every_s=10, created_at=1000, next_run_at=0)
    assert next_slot(s, 1000) == 1010
    assert next_slot(s, 1009.9) == 1010
    assert next_slot(s, 1010) == 1020  # strictly after now
    assert next_slot(s, 1234.5) == 1240  # a downtime over 23 slots owes one run, then the phase holds


def test_cron_next_match_is_in_local_time() -> None:
    base = dt.datetime(2026, 3, 1, 10, 7, 30).astimezone()
    nxt = dt.datetime.fromtimestamp(next_cron("*/15 * * * *", base.timestamp())).astimezone()
    assert (nxt.hour, nxt.minute, nxt.second) == (10, 15, 0)
    daily = dt.datetime.fromtimestamp(next_cron("0 3 * * *", base.timestamp())).astimezone()
    assert (daily.day, daily.hour, daily.minute) == (2, 3, 0)


def test_cron_expressions_are_checked() -> None:
    assert cron_problem("*/5 * * * *") is None
    assert "five fields" in (cron_problem("* * * *") or "")
    assert "five fields" in (cron_problem("0 */5 * * * *") or "")  # no seconds field
    assert "not a valid" in (cron_problem("61 * * * *") or "")


def test_a_schedule_body_is_checked_whole() -> None:
    good, problems = parse_schedule({"batch": batch(), "every_s": 60, "label": "gate"}, CFG, {}, now=5000.0)
    assert problems == [] and good is not None
    assert (good.kind, good.every_s, good.next_run_at, good.label) == ("batch", 60.0, 5060.0, "gate")
    assert fields({"every_s": 5}) == ["scan"]  # neither scan nor batch
    assert fields({"scan": scan_body(), "batch": batch(), "every_s": 5}) == ["scan"]
    assert fields({"scan": scan_body()}) == ["every_s"]  # neither every_s nor cron
    assert fields({"scan": scan_body(), "every_s": 5, "cron": "* * * * *"}) == ["every_s"]
    assert fields({"scan": scan_body(), "every_s": 0.5}) == ["every_s"]
    assert fields({"scan": scan_body(), "every_s": True}) == ["every_s"]
    assert fields({"scan": scan_body(), "cron": "often"}) == ["cron"]
    assert fields({"scan": scan_body(), "every_s": 5, "colour": "red"}) == ["colour"]
    assert fields([1]) == ["body"]


def test_the_scan_or_batch_inside_is_validated_like_its_own_endpoint() -> None:
    bad_scan = fields({"scan": scan_body(cameras=["nope"]), "every_s": 5})
    assert bad_scan and all(f.startswith("scan.") for f in bad_scan), bad_scan
    bad_batch = fields({"batch": batch(pan=999_999), "every_s": 5})
    assert bad_batch and all(f.startswith("batch.") for f in bad_batch), bad_batch
    unknown_preset = {
        "batch": {
            "requests": [
                {
                    "target_id": "entity",
                    "device_id": "acikgoz_pantilt",
                    "command_id": "goto_preset",
                    "args": {"preset": "gate"},
                }
            ]
        },
        "every_s": 5,
    }
    assert fields(unknown_preset)[0].startswith("batch.")


def test_the_store_survives_a_restart_and_sets_a_damaged_file_aside(tmp_path: Path) -> None:
    path = tmp_path / "schedules.json"
    schedule, _ = parse_schedule({"scan": scan_body(), "cron": "0 * * * *"}, CFG, {})
    assert schedule is not None
    ScheduleStore(path).add(schedule)
    again = ScheduleStore(path)
    assert [s.schedule_id for s in again.all()] == [schedule.schedule_id]
    assert again.get(schedule.schedule_id) == schedule
    path.write_text("{not json")
    damaged = ScheduleStore(path)
    assert damaged.all() == [] and damaged.warning and "damaged" in damaged.warning
    assert any(p.name.startswith("schedules.json.damaged-") for p in tmp_path.iterdir())


class FakeLauncher:
    """Records what the scheduler queues; answers like CaptureService.submit (unit tests only)."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = CFG
        self.presets = PresetStore(tmp_path / "presets.json")
        self.submitted: list[tuple[dict[str, Any], ScanRun | None]] = []
        self.status: dict[str, str] = {}
        self.refuse: Exception | None = None

    def submit(self, body: dict[str, Any], work: Work, client: dict[str, Any]) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        job_id = f"job-{len(self.submitted)}"
        self.submitted.append((body, work.run if isinstance(work, ScanWork) else None))
        self.status[job_id] = "queued"
        assert client["schedule_id"]
        return {"job_id": job_id, "status": "queued"}

    def job_view(self, job_id: str) -> dict[str, Any] | None:
        return {"job_id": job_id, "status": self.status[job_id]}

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return True


def scheduler_at(
    tmp_path: Path, body: dict[str, Any], created: float
) -> tuple[Scheduler, FakeLauncher, list[float]]:
    clock = [created]
    launcher = FakeLauncher(tmp_path)
    store = ScheduleStore(tmp_path / "schedules.json")
    schedule, problems = parse_schedule(body, CFG, {}, now=created)
    assert schedule is not None, problems
    store.add(schedule)
    return Scheduler(store, launcher, clock=lambda: clock[0]), launcher, clock


def test_due_runs_are_queued_and_an_unfinished_run_is_not_doubled(tmp_path: Path) -> None:
    sched, launcher, clock = scheduler_at(tmp_path, {"scan": scan_body(), "every_s": 10}, 1000.0)
    assert sched.tick() == pytest.approx(10) and launcher.submitted == []
    clock[0] = 1010.0
    sched.tick()
    assert len(launcher.submitted) == 1 and launcher.submitted[0][1] is not None  # a ScanRun
    (s,) = sched.store.all()
    assert (s.runs, s.next_run_at, s.last_run and s.last_run.status) == (1, 1020.0, "queued")
    assert s.last_run is not None and s.last_run.scan_id == launcher.submitted[0][1].id
    launcher.status["job-0"] = "running"
    clock[0] = 1020.0
    sched.tick()  # the previous run still runs: this slot is skipped, not queued behind it
    (s,) = sched.store.all()
    assert (len(launcher.submitted), s.skipped, s.next_run_at) == (1, 1, 1030.0)
    assert s.last_run is not None and s.last_run.status == "running"
    launcher.status["job-0"] = "succeeded"
    clock[0] = 1030.0
    sched.tick()
    (s,) = sched.store.all()
    assert (len(launcher.submitted), s.runs) == (2, 2)


def test_a_downtime_owes_one_run_not_one_per_missed_slot(tmp_path: Path) -> None:
    sched, launcher, clock = scheduler_at(tmp_path, {"batch": batch(), "every_s": 10}, 1000.0)
    clock[0] = 1000.0 + 10 * 50 + 3  # fifty slots passed while "down"
    sched.tick()
    sched.tick()
    (s,) = sched.store.all()
    assert len(launcher.submitted) == 1 and s.runs == 1
    assert s.last_run is not None and s.last_run.due_at == 1010.0  # the slot it owed
    assert s.next_run_at == 1510.0


def test_a_run_that_no_longer_fits_is_refused_and_one_not_queued_is_retried(tmp_path: Path) -> None:
    sched, launcher, clock = scheduler_at(tmp_path, {"batch": batch(), "every_s": 600}, 0.0)
    launcher.refuse = QueueFull(4)
    clock[0] = 600.0
    sched.tick()
    (s,) = sched.store.all()
    assert s.last_run is not None and s.last_run.status == "not_queued" and s.runs == 0
    assert s.next_run_at == 600.0 + RETRY_S and "queue" in s.last_run.error["message"]  # type: ignore[index]
    launcher.refuse = None
    launcher.config = Config.from_dict({"cameras": {"cameradevice_rgb_1": {}}})  # the batch's cameras left
    clock[0] = s.next_run_at
    sched.tick()
    (s,) = sched.store.all()
    assert s.last_run is not None and s.last_run.status == "refused" and launcher.submitted == []
    assert "nothing was executed" in s.last_run.error["message"]  # type: ignore[index]
    assert s.next_run_at == 1200.0


# -- against the simulated rig (integration) --------------------------------------------------------------
@pytest.mark.integration
def test_an_every_s_schedule_fires_twice_and_each_run_records(client: FlaskClient, sim: SimRig) -> None:
    body = {"batch": batch(pan=1500, tilt=-500, seconds=1, cameras=("cameradevice_swir_1",)), "every_s": 2}
    resp = client.post("/schedules", json={**body, "label": "twice"})
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert created["next_run_at"] > time.time()
    sid = created["schedule_id"]

    def two_queued() -> Any:
        s = client.get(f"/schedules/{sid}").get_json()
        return s if s["runs"] >= 2 else None

    schedule = until(two_queued, 40, "two runs of the schedule")
    assert schedule["label"] == "twice" and schedule["kind"] == "batch"
    assert client.delete(f"/schedules/{sid}").status_code == 200  # no third run from here on
    assert client.get(f"/schedules/{sid}").status_code == 404
    assert client.get("/schedules").get_json()["schedules"] == []
    # history.json says where each run came from; each run recorded its own session.
    entries = client.get("/history?limit=50").get_json()["requests"]
    runs = [e for e in entries if (e.get("client") or {}).get("schedule_id") == sid]
    assert len(runs) >= 2, entries
    sessions = []
    for entry in runs[:2]:
        job = wait_job(client, entry["id"], 30)
        assert job["status"] == "succeeded" and len(job["sessions"]) == 1, job
        sessions.append(job["sessions"][0]["session_id"])
    assert sessions[0] != sessions[1]
    moves = [
        c for c in sim.commands_received() if c["command"].get("command_id") == "set_pan_position_degree"
    ]
    assert len(moves) >= 2


@pytest.mark.integration
def test_a_run_due_while_the_service_was_down_runs_once_at_start(
    sim: SimRig, start_service: Callable[..., CaptureService], tmp_path: Path
) -> None:
    first = start_service("mqtt")
    body = {"batch": batch(pan=0, tilt=0, seconds=1, cameras=("cameradevice_swir_1",)), "every_s": 3600}
    schedule, problems = parse_schedule(body, first.config, {}, now=time.time() - 5 * 3600 - 60)
    assert schedule is not None, problems
    first.stop()
    # As the file looks after the service was down for five slots.
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps({"format_version": 1, "schedules": [schedule.model_dump(mode="json")]}))
    service = start_service("mqtt")
    client = create_app(service).test_client()

    def ran() -> Any:
        s = client.get(f"/schedules/{schedule.schedule_id}").get_json()
        return s if s["last_run"] and s["last_run"]["status"] == "succeeded" else None

    after = until(ran, 30, "the owed run")
    time.sleep(scaled(1.0))
    after = client.get(f"/schedules/{schedule.schedule_id}").get_json()
    assert after["runs"] == 1 and after["skipped"] == 0, after
    assert after["next_run_at"] > time.time() + 3000  # the next slot, not another owed one
    assert after["next_run_at"] == pytest.approx(schedule.created_at + 6 * 3600)


@pytest.mark.integration
def test_a_bad_schedule_is_refused_and_nothing_is_stored_or_run(client: FlaskClient, sim: SimRig) -> None:
    before = len(sim.commands_received())
    resp = client.post("/schedules", json={"scan": scan_body(cameras=["nope"]), "every_s": 1})
    err = resp.get_json()
    assert resp.status_code == 400 and "scan.cameras" in err["error"] and "nothing was stored" in err["error"]
    resp = client.post("/schedules", json={"batch": batch(), "cron": "every day"})
    assert resp.status_code == 400 and "cron" in resp.get_json()["error"]
    assert client.get("/schedules").get_json()["schedules"] == []
    time.sleep(scaled(1.5))
    assert len(sim.commands_received()) == before
    assert client.delete("/schedules/nope").status_code == 404


def test_a_cron_that_never_fires_is_refused() -> None:
    assert "never fires" in (cron_problem("0 0 30 2 *") or "")  # 30 February
    assert fields({"batch": batch(), "cron": "0 0 31 4 *"}) == ["cron"]  # 31 April


def test_a_failing_schedule_is_marked_and_skipped_while_the_others_keep_their_slots(tmp_path: Path) -> None:
    """A schedule edited into the file with a cron that can never fire, and one whose firing raises,
    must neither stop the scheduler nor starve the good schedule."""
    sched, launcher, clock = scheduler_at(tmp_path, {"batch": batch(), "every_s": 10}, 1000.0)
    (good,) = sched.store.all()
    never = good.model_copy(update={"schedule_id": "s-never", "cron": "0 0 30 2 *", "every_s": None})
    sched.store.add(never)
    raising = good.model_copy(update={"schedule_id": "s-raise", "every_s": 0.0})  # next slot: 1/0
    sched.store.add(raising)
    for t in (1010.0, 1020.0, 1030.0):
        clock[0] = t
        sched.tick()
        for job_id in launcher.status:
            launcher.status[job_id] = "succeeded"
    by_id = {s.schedule_id: s for s in sched.store.all()}
    assert by_id[good.schedule_id].runs == 3 and by_id[good.schedule_id].broken is None
    assert "CroniterBadDateError" in (by_id["s-never"].broken or "")
    assert "ZeroDivisionError" in (by_id["s-raise"].broken or "")
    assert by_id["s-never"].runs == 0
    # The marks are saved: after a restart the broken schedules are still skipped.
    reread = {s.schedule_id: s.broken for s in ScheduleStore(tmp_path / "schedules.json").all()}
    assert reread[good.schedule_id] is None and reread["s-never"] and reread["s-raise"]


def test_a_huge_integer_period_is_refused_not_a_crash() -> None:
    # math.isfinite(10**400) raises OverflowError; one is_number (rigcore.state) decides everywhere.
    assert fields({"batch": batch(), "every_s": 10**400}) == ["every_s"]


# -- bounds: size and count (issue 21, item 5) --------------------------------------------------------
def test_a_schedule_too_big_is_one_problem() -> None:
    body = {"batch": batch(), "every_s": 60, "label": "x" * MAX_SCHEDULE_BYTES}
    schedule, problems = parse_schedule(body, CFG, {})
    assert schedule is None and [p["field"] for p in problems] == ["body"]
    assert str(MAX_SCHEDULE_BYTES) in problems[0]["message"]


def test_the_store_holds_at_most_max_schedules(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path / "schedules.json")
    schedule, _ = parse_schedule({"batch": batch(), "every_s": 60}, CFG, {})
    assert schedule is not None
    for i in range(MAX_SCHEDULES):
        assert store.add(schedule.model_copy(update={"schedule_id": f"s{i}"}))
    assert store.add(schedule.model_copy(update={"schedule_id": "one-more"})) is False
    assert len(ScheduleStore(tmp_path / "schedules.json").all()) == MAX_SCHEDULES


@pytest.mark.integration
def test_too_big_and_too_many_schedules_are_refused_over_http(
    client: FlaskClient, service: CaptureService
) -> None:
    big = {"batch": batch(), "every_s": 60, "label": None, "scan_note": "y" * (MAX_SCHEDULE_BYTES + 10)}
    resp = client.post("/schedules", json=big)
    answer = resp.get_json()
    assert resp.status_code == 400 and "body" in answer["error"] and len(resp.data) < 5_000, answer
    schedule, _ = parse_schedule({"batch": batch(), "every_s": 3600}, service.config, {})
    assert schedule is not None
    for i in range(MAX_SCHEDULES):
        service.schedules.add(schedule.model_copy(update={"schedule_id": f"s{i}"}))
    resp = client.post("/schedules", json={"batch": batch(), "every_s": 3600})
    assert resp.status_code == 409 and str(MAX_SCHEDULES) in resp.get_json()["error"]
    assert len(client.get("/schedules").get_json()["schedules"]) == MAX_SCHEDULES
