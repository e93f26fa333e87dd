"""Unit: compiling a batch into a plan of steps, and the recording-start rule (pure; no broker)."""

from __future__ import annotations

import math
from typing import Any

from rigcore.config import Config
from rigcore.rig import RigLayout
from service.batches.plan import RecordStep, SendStep, SettleStep, compile_plan
from service.batches.validation import build_plan
from service.jobs.batch_runner import RunState, recording_start

CFG = Config()
LAYOUT = RigLayout.from_config(CFG)
REC = CFG.recording.command_id
PT = "acikgoz_pantilt"


def pan(value: int) -> dict[str, Any]:
    return {
        "target_id": "entity",
        "device_id": PT,
        "command_id": "set_pan_position_degree",
        "args": {"pan_position_deg_x100": value},
    }


def zoom_step(value: int) -> dict[str, Any]:
    return {
        "target_id": "camera_device",
        "device_id": "cameradevice_swir_1",
        "command_id": "set_zoom_step",
        "args": {"zoom_step": value},
    }


def rec(seconds: float = 2, cams: tuple[str, ...] = ("cameradevice_swir_1",)) -> dict[str, Any]:
    return {
        "target_id": "camera_device",
        "device_id": cams[0],
        "command_id": REC,
        "args": {"duration_second": seconds, "camera_ids": list(cams)},
    }


def plan_of(*commands: dict[str, Any]) -> list[str]:
    return compile_plan(commands, LAYOUT, REC).describe()


def test_move_then_record_settles_the_pantilt_and_the_recorded_zoom_before_recording() -> None:
    assert plan_of(pan(4500), rec()) == [
        "send #0 set_pan_position_degree to acikgoz_pantilt (moves acikgoz_pantilt)",
        "settle (record) acikgoz_pantilt pan_deg_x100=4500, cameradevice_swir_1",
        "record #1 2 s of cameradevice_swir_1",
    ]


def test_cameras_without_zoom_add_no_settle_and_targets_carry_through_the_batch() -> None:
    plan = compile_plan([pan(100), zoom_step(400), rec(1, ("cameradevice_lwir_1",)), rec(1)], LAYOUT, REC)
    settles = [s for s in plan.steps if isinstance(s, SettleStep)]
    assert [d.device_id for d in settles[0].devices] == [PT]  # LWIR reports no zoom
    second = {d.device_id: dict(d.targets) for d in settles[1].devices}
    # Both targets still hold for the second recording: the rig must still be there.
    assert second[PT] == {"pan_deg_x100": 100, "tilt_deg_x100": None}
    assert second["cameradevice_swir_1"] == {"zoom_lens_state.zoom_step": 400}
    assert settles[0].devices[0].tolerances == {"pan_deg_x100": 5, "tilt_deg_x100": 5}
    assert plan.recordings == 2


def test_moves_after_the_last_recording_end_with_a_final_settle_of_those_devices_only() -> None:
    steps = compile_plan([rec(), zoom_step(10), pan(0)], LAYOUT, REC).steps
    assert isinstance(steps[-1], SettleStep) and steps[-1].purpose == "final" and steps[-1].index is None
    assert [d.device_id for d in steps[-1].devices] == ["cameradevice_swir_1", PT]
    assert [type(s).__name__ for s in steps] == [
        "SettleStep",
        "RecordStep",
        "SendStep",
        "SendStep",
        "SettleStep",
    ]


def test_a_recording_first_records_at_the_starting_pose_then_moves() -> None:
    steps = compile_plan([rec(), pan(3000)], LAYOUT, REC).steps
    assert isinstance(steps[0], SettleStep) and dict(steps[0].devices[0].targets)["pan_deg_x100"] is None
    assert isinstance(steps[1], RecordStep) and isinstance(steps[2], SendStep) and steps[2].moves == PT


def test_pass_through_commands_are_sent_and_settle_nothing() -> None:
    other = {"target_id": "entity", "device_id": "acikgoz_lrf", "command_id": "measure", "args": {}}
    steps = compile_plan([other], LAYOUT, REC).steps
    assert steps == (SendStep(0, other),)


def test_build_plan_refuses_an_invalid_batch_and_compiles_a_valid_one() -> None:
    plan, problems = build_plan({"requests": [pan(99999), rec()]}, CFG)
    assert plan is None and problems[0]["index"] == 0 and problems[0]["field"] == "args.pan_position_deg_x100"
    plan, problems = build_plan({"requests": [pan(10), rec()]}, CFG)
    assert problems == [] and plan is not None and len(plan.steps) == 3


def test_positioning_commands_are_configuration_not_code() -> None:
    cfg = Config.from_dict(
        {
            "positioning_commands": {
                "goto_pan": {"arg": "p", "field": "pan_deg_x100", "tolerance": 7, "integer": True},
            }
        }
    )
    layout = RigLayout.from_config(cfg)
    cmd = {"target_id": "entity", "device_id": PT, "command_id": "goto_pan", "args": {"p": 12}}
    steps = compile_plan([cmd, rec()], layout, REC).steps
    assert steps[0] == SendStep(0, cmd, moves=PT)
    assert isinstance(steps[1], SettleStep) and dict(steps[1].devices[0].tolerances)["pan_deg_x100"] == 7
    assert layout.command_for("pan_deg_x100") == "goto_pan"
    # The default pan command is not a positioning command on this rig: passed through, no settle.
    assert compile_plan([pan(5)], layout, REC).steps == (SendStep(0, pan(5)),)


# -- the timing rules ---------------------------------------------------------------------------------


def test_state_counts_from_the_latest_of_last_command_batch_start_previous_recording_end() -> None:
    state = RunState(batch_start=100.0)
    assert state.counts_from(PT) == 100.0
    state.last_sent[PT] = 103.0
    assert state.counts_from(PT) == 103.0 and state.counts_from("cameradevice_swir_1") == 100.0
    state.last_record_end = 110.0
    assert state.counts_from(PT) == 110.0 and state.counts_from("cameradevice_swir_1") == 110.0
    state.last_sent[PT] = 111.0
    assert state.counts_from(PT) == 111.0


def test_recording_start_is_never_before_settle_previous_end_or_the_preroll() -> None:
    # Settled just now, the pre-roll still holds it: the recording starts at the settle point.
    assert recording_start(50.0, -math.inf, 49.8) == 50.0
    # The settle point lies further back than the pre-roll reaches: start just after the horizon.
    start = recording_start(40.0, -math.inf, 49.8)
    assert 49.8 < start < 49.8 + 1e-9
    # A previous recording ended after the settle point: start where it ended, never overlap.
    assert recording_start(50.0, 52.0, 49.8) == 52.0
