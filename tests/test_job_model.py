"""Unit: the job state machine, its one view shape, and how a recording is judged (pure; no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from mqtt_control.commands import CommandOutcome
from rigcore.config import Config
from rigcore.rig import RigLayout
from service.batches.plan import compile_plan
from service.jobs.job import Job, view_from_history
from service.jobs.record_step import Findings, judge
from service.status import JobPhase, JobStatus
from sessions.manifest import SessionStatus

CFG = Config()
PAN = {
    "target_id": "entity",
    "device_id": "acikgoz_pantilt",
    "command_id": "set_pan_position_degree",
    "args": {"pan_position_deg_x100": 10},
}
REC = {
    "target_id": "camera_device",
    "device_id": "cameradevice_swir_1",
    "command_id": "start_recording_command",
    "args": {"duration_second": 1, "camera_ids": ["cameradevice_swir_1"]},
}


def new_job(*commands: dict[str, Any]) -> Job:
    body = {"requests": list(commands)}
    plan = compile_plan(commands, RigLayout.from_config(CFG), CFG.recording.command_id)
    return Job("job-1", body, plan, {"address": "127.0.0.1"})


def test_finish_is_the_one_end_every_unrun_command_is_skipped() -> None:
    job = new_job(PAN, PAN, REC)
    job.start()
    assert job.status is JobStatus.RUNNING and not job.finished
    job.record_result(0, {"request": PAN, "status": "ok"})
    job.fail_current("command 1 failed")
    job.finish(JobStatus.FAILED, {"type": "CommandFailed", "message": "x"})
    assert [r["status"] for r in job.results] == ["ok", "failed", "skipped"]
    assert job.phase is JobPhase.DONE and job.finished and job.finished_at is not None
    assert job.progress == {}


def test_cancel_while_queued_skips_everything() -> None:
    job = new_job(PAN, REC)
    job.finish(JobStatus.CANCELLED, {"type": "JobCancelled", "message": "cancelled while queued"})
    assert [r["status"] for r in job.results] == ["skipped", "skipped"]
    assert job.view()["status"] == "cancelled" and job.view()["phase"] == "done"


def test_a_job_cannot_finish_as_running_and_results_come_in_order() -> None:
    job = new_job(PAN, REC)
    with pytest.raises(AssertionError):
        job.finish(JobStatus.RUNNING)
    with pytest.raises(AssertionError):
        job.record_result(1, {})


def test_cancel_request_stops_at_the_next_step() -> None:
    job = new_job(PAN)
    job.raise_if_cancelled()
    job.cancel_requested.set()
    with pytest.raises(Exception, match="cancelled"):
        job.raise_if_cancelled()


def test_view_shares_nothing_with_the_job() -> None:
    job = new_job(PAN)
    view = job.view()
    job.results.append({"status": "ok"})
    job.progress["frames"] = 3
    assert view["results"] == [] and view["progress"] == {}


def test_a_job_read_back_from_history_has_the_same_shape_as_a_live_one() -> None:
    job = new_job(PAN, REC)
    job.start()
    job.sessions.append({"session_id": "s1", "status": "complete"})
    job.finish(JobStatus.SUCCEEDED)
    live = job.view()
    entry = job.history_entry("mqtt")
    assert entry["id"] == "job-1" and entry["request"] == job.body and entry["client"] == job.client
    old = view_from_history(entry)
    assert set(old) == set(live)
    assert old == {**live, "progress": {}}


# -- judging a recording --------------------------------------------------------------------------------

OK = CommandOutcome(True, 200, None, None, "mqtt", 0.0, 0.0)
FAILED = CommandOutcome.failed("mqtt", "link lost while waiting")


def findings(**kw: Any) -> Findings:
    base: dict[str, Any] = {
        "cancelled": False,
        "command": OK,
        "silent_cameras": [],
        "failed_writes": {},
        "outages": 0,
        "missing_frames": 0,
    }
    return Findings(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "status", "types"),
    [
        ({}, SessionStatus.COMPLETE, []),
        ({"silent_cameras": ["cam_b"]}, SessionStatus.PARTIAL, ["NoFrames"]),
        ({"outages": 1, "missing_frames": 4}, SessionStatus.PARTIAL, ["StreamOutage", "FramesMissing"]),
        ({"command": FAILED}, SessionStatus.FAILED, ["CommandFailed"]),
        (
            {"failed_writes": {"c": 2}, "silent_cameras": ["c"]},
            SessionStatus.FAILED,
            ["WriteFailed", "NoFrames"],
        ),
        ({"marker_error": "EIO"}, SessionStatus.FAILED, ["MarkerFailed"]),
        ({"cancelled": True, "command": FAILED}, SessionStatus.CANCELLED, ["Cancelled", "CommandFailed"]),
    ],
)
def test_judge_names_every_problem_and_picks_the_worst_status(
    kw: dict[str, Any], status: SessionStatus, types: list[str]
) -> None:
    got, problems = judge(findings(**kw), "start_recording_command")
    assert got is status
    assert [p.type for p in problems] == types


def test_a_silent_camera_is_named() -> None:
    _status, problems = judge(findings(silent_cameras=["cameradevice_vnir_playerone"]), "rec")
    assert problems[0].camera_id == "cameradevice_vnir_playerone"
    assert "cameradevice_vnir_playerone" in problems[0].message
