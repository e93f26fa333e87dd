"""Unit: a scan request parsed into poses, grid orders, and each pose's batch (pure; no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from rigcore.config import Config
from rigcore.rig import RigLayout
from service.batches.plan import RecordStep, SendStep, SettleStep, compile_plan
from service.presets.store import Preset
from service.scans.spec import (
    MAX_POSES,
    AxisRange,
    Grid,
    ScanPose,
    ScanSpec,
    grid_poses,
    parse_scan,
    scan_batch,
)

CFG = Config()
LAYOUT = RigLayout.from_config(CFG)
REC = CFG.recording.command_id
PT = "acikgoz_pantilt"
SWIR = "cameradevice_swir_1"
RGB = "cameradevice_rgb_1"
LWIR = "cameradevice_lwir_1"
PRESETS = {
    "gate": Preset(pan_deg_x100=4500, tilt_deg_x100=-300, zoom={SWIR: 7}),
    "wide": Preset(pan_deg_x100=99999, tilt_deg_x100=0),  # saved before the limits narrowed
}


def scan(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"cameras": [SWIR], "duration_second": 2}
    if "grid" not in fields:
        body["poses"] = [{"pan_deg_x100": 0, "tilt_deg_x100": 0}]
    return {**body, **fields}


def axis(start: int, stop: int, step: int) -> dict[str, int]:
    return {"from": start, "to": stop, "step": step}


def grid(order: str = "rows", pan: Any = None, tilt: Any = None) -> dict[str, Any]:
    return {
        "pan_deg_x100": pan if pan is not None else axis(0, 200, 100),
        "tilt_deg_x100": tilt if tilt is not None else axis(0, 100, 100),
        "order": order,
    }


def parsed(body: dict[str, Any]) -> ScanSpec:
    spec, problems = parse_scan(body, CFG, PRESETS)
    assert problems == [] and spec is not None
    return spec


def fields(body: Any) -> list[tuple[Any, str]]:
    spec, problems = parse_scan(body, CFG, PRESETS)
    assert spec is None and problems
    return [(p["index"], p["field"]) for p in problems]


# -- grid order --------------------------------------------------------------------------------------
def order_of(order: str, pan: tuple[int, int, int], tilt: tuple[int, int, int]) -> list[tuple[int, int]]:
    return grid_poses(Grid(AxisRange(*pan), AxisRange(*tilt), order))  # type: ignore[arg-type]


def test_serpentine_alternates_the_pan_direction_row_by_row() -> None:
    p0, p1, p2, t0, t1 = 0, 100, 200, 0, 100
    assert order_of("serpentine", (0, 200, 100), (0, 100, 100)) == [
        (p0, t0),
        (p1, t0),
        (p2, t0),
        (p2, t1),
        (p1, t1),
        (p0, t1),
    ]


def test_rows_run_every_row_from_from_to_to() -> None:
    assert order_of("rows", (0, 200, 100), (0, 200, 100)) == [
        (0, 0), (100, 0), (200, 0), (0, 100), (100, 100), (200, 100), (0, 200), (100, 200), (200, 200),
    ]  # fmt: skip


def test_descending_ranges_run_downward_and_rows_follow_tilt_from_to() -> None:
    assert order_of("rows", (300, -300, 300), (500, 0, 500)) == [
        (300, 500), (0, 500), (-300, 500), (300, 0), (0, 0), (-300, 0),
    ]  # fmt: skip
    # serpentine's third row runs from→to again
    assert [p for p, _ in order_of("serpentine", (0, 100, 100), (0, 200, 100))] == [0, 100, 100, 0, 0, 100]


def test_ranges_include_to_when_a_step_lands_on_it_and_stop_short_otherwise() -> None:
    assert AxisRange(0, 1000, 250).values() == [0, 250, 500, 750, 1000]
    assert AxisRange(0, 10, 4).values() == [0, 4, 8]  # uneven: the last value not beyond "to"
    assert AxisRange(10, 0, 4).values() == [10, 6, 2]
    assert AxisRange(-9000, 9000, 36000).values() == [-9000]  # a step longer than the range
    assert AxisRange(500, 500, 100).values() == [500]
    assert AxisRange(0, 10, 4).count() == 3


def test_a_grid_scan_numbers_its_poses_in_visiting_order() -> None:
    spec = parsed(scan(grid=grid("serpentine")))
    assert [(p.index, p.pan, p.tilt, p.preset) for p in spec.poses] == [
        (0, 0, 0, None), (1, 100, 0, None), (2, 200, 0, None),
        (3, 200, 100, None), (4, 100, 100, None), (5, 0, 100, None),
    ]  # fmt: skip


# -- a good scan -------------------------------------------------------------------------------------
def test_defaults_and_options_are_carried() -> None:
    spec = parsed(scan())
    assert (spec.on_pose_failure, spec.retries, spec.label) == ("abort", 0, None)
    assert spec.cameras == (SWIR,) and spec.duration_s == 2
    spec = parsed(scan(on_pose_failure="skip", retries=5, label="ridge sweep", cameras=[SWIR, LWIR]))
    assert (spec.on_pose_failure, spec.retries, spec.label) == ("skip", 5, "ridge sweep")
    assert spec.cameras == (SWIR, LWIR)


def test_presets_are_resolved_to_their_values_when_parsed() -> None:
    spec = parsed(scan(poses=[{"preset": "gate"}, {"pan_deg_x100": 10, "tilt_deg_x100": 20}]))
    assert spec.poses == (
        ScanPose(0, 4500, -300, {SWIR: 7}, preset="gate"),
        ScanPose(1, 10, 20, {}, None),
    )


# -- bad scans: every problem names the pose and the field ---------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], [(None, "(body)")]),
        (
            {"poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}]},
            [(None, "cameras"), (None, "duration_second")],
        ),
        (scan(cameras=[]), [(None, "cameras")]),
        (scan(cameras="cameradevice_swir_1"), [(None, "cameras")]),
        (scan(cameras=[SWIR, SWIR]), [(None, "cameras[1]")]),
        (scan(cameras=[SWIR, "nope"]), [(None, "cameras[1]")]),
        (scan(duration_second=0), [(None, "duration_second")]),
        (scan(duration_second=CFG.recording.max_duration_s + 1), [(None, "duration_second")]),
        (scan(duration_second="2"), [(None, "duration_second")]),
        (scan(on_pose_failure="retry"), [(None, "on_pose_failure")]),
        (scan(retries=6), [(None, "retries")]),
        (scan(retries=-1), [(None, "retries")]),
        (scan(retries=True), [(None, "retries")]),
        (scan(label=7), [(None, "label")]),
        (scan(label="x" * 201), [(None, "label")]),
        (scan(speed=3), [(None, "speed")]),
        ({"cameras": [SWIR], "duration_second": 1}, [(None, "poses")]),
        (scan(grid=grid()) | {"poses": []}, [(None, "grid")]),
        (scan(poses=[]), [(None, "poses")]),
        (scan(poses={"pan_deg_x100": 0}), [(None, "poses")]),
    ],
)
def test_top_level_problems_name_the_field(body: Any, expected: list[tuple[Any, str]]) -> None:
    assert fields(body) == expected


@pytest.mark.parametrize(
    ("pose", "expected"),
    [
        ({"pan_deg_x100": 18001, "tilt_deg_x100": 0}, ["poses[3].pan_deg_x100"]),
        ({"pan_deg_x100": 0, "tilt_deg_x100": -9001}, ["poses[3].tilt_deg_x100"]),
        ({"pan_deg_x100": 0.5, "tilt_deg_x100": 0}, ["poses[3].pan_deg_x100"]),  # integer commands
        ({"pan_deg_x100": 0}, ["poses[3].tilt_deg_x100"]),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {SWIR: -1}}, [f"poses[3].zoom.{SWIR}"]),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {LWIR: 2}}, [f"poses[3].zoom.{LWIR}"]),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": 2}, ["poses[3].zoom"]),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "speed": 2}, ["poses[3].speed"]),
        ({"preset": "nope"}, ["poses[3].preset"]),
        ({"preset": 3}, ["poses[3].preset"]),
        ({"preset": "wide"}, ["poses[3].preset"]),  # a preset that no longer fits the limits
        ({"preset": "gate", "pan_deg_x100": 0}, ["poses[3].pan_deg_x100"]),
        ("north", ["poses[3]"]),
    ],
)
def test_pose_problems_name_the_pose_index_and_field(pose: Any, expected: list[str]) -> None:
    good = {"pan_deg_x100": 0, "tilt_deg_x100": 0}
    assert fields(scan(poses=[good, good, good, pose, good])) == [(3, f) for f in expected]


def test_out_of_range_message_states_the_limits() -> None:
    _, problems = parse_scan(scan(poses=[{"pan_deg_x100": 18001, "tilt_deg_x100": 0}]), CFG, PRESETS)
    [problem] = problems
    assert (problem["index"], problem["field"]) == (0, "poses[0].pan_deg_x100")
    assert problem["message"].startswith("18001 is out of range [-18000, 18000]")
    assert "180.01°" in problem["message"]  # and in the unit people read


def test_every_problem_is_reported_at_once() -> None:
    body = scan(
        cameras=["nope"],
        duration_second=-1,
        poses=[{"pan_deg_x100": 99999, "tilt_deg_x100": 0}, {"preset": "nope"}],
    )
    assert fields(body) == [
        (None, "cameras[0]"),
        (None, "duration_second"),
        (0, "poses[0].pan_deg_x100"),
        (1, "poses[1].preset"),
    ]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"pan_deg_x100": axis(0, 100, 0)}, ["grid.pan_deg_x100.step"]),
        ({"tilt_deg_x100": axis(0, 100, -50)}, ["grid.tilt_deg_x100.step"]),
        ({"pan_deg_x100": axis(0, 18100, 100)}, ["grid.pan_deg_x100.to"]),
        ({"tilt_deg_x100": axis(-9100, 0, 100)}, ["grid.tilt_deg_x100.from"]),
        ({"pan_deg_x100": {"from": 0, "to": 100}}, ["grid.pan_deg_x100.step"]),
        ({"pan_deg_x100": {"from": 0.5, "to": 100, "step": 10}}, ["grid.pan_deg_x100.from"]),
        ({"pan_deg_x100": {**axis(0, 100, 10), "by": 2}}, ["grid.pan_deg_x100.by"]),
        ({"pan_deg_x100": [0, 100, 10]}, ["grid.pan_deg_x100"]),
        ({"order": "spiral"}, ["grid.order"]),
        ({"zoom": {}}, ["grid.zoom"]),
    ],
)
def test_grid_problems_name_the_grid_field(bad: dict[str, Any], expected: list[str]) -> None:
    assert fields(scan(grid={**grid(), **bad})) == [(None, f) for f in expected]


def test_missing_grid_parts_are_named() -> None:
    assert fields(scan(grid={})) == [
        (None, "grid.order"),
        (None, "grid.pan_deg_x100"),
        (None, "grid.tilt_deg_x100"),
    ]
    assert fields(scan(grid=[1, 2])) == [(None, "grid")]


def test_pose_count_is_limited_for_lists_and_grids() -> None:
    pose = {"pan_deg_x100": 0, "tilt_deg_x100": 0}
    assert len(parsed(scan(poses=[pose] * MAX_POSES)).poses) == MAX_POSES
    assert fields(scan(poses=[pose] * (MAX_POSES + 1))) == [(None, "poses")]
    # 50 × 10 = 500 fits; 51 × 10 does not, and is refused before any pose is made
    assert len(parsed(scan(grid=grid(pan=axis(0, 4900, 100), tilt=axis(0, 900, 100)))).poses) == 500
    _, problems = parse_scan(scan(grid=grid(pan=axis(-18000, 18000, 1), tilt=axis(0, 900, 100))), CFG, {})
    assert problems == [
        {"index": None, "field": "grid", "message": "makes 36001 × 10 = 360010 poses; at most 500"}
    ]


# -- each pose's batch -----------------------------------------------------------------------------------
def test_a_pose_batch_moves_pan_tilt_and_each_zoom_then_records_the_scan_cameras() -> None:
    spec = parsed(scan(cameras=[SWIR, LWIR], duration_second=3, poses=[{"preset": "gate"}]))
    batch = scan_batch(spec, spec.poses[0], LAYOUT, REC)
    assert batch == [
        {
            "target_id": "entity",
            "device_id": PT,
            "command_id": "set_pan_position_degree",
            "args": {"pan_position_deg_x100": 4500},
        },
        {
            "target_id": "entity",
            "device_id": PT,
            "command_id": "set_tilt_position_degree",
            "args": {"tilt_position_deg_x100": -300},
        },
        {
            "target_id": "camera_device",
            "device_id": SWIR,
            "command_id": "set_zoom_step",
            "args": {"zoom_step": 7},
        },
        {
            "target_id": "camera_device",
            "device_id": SWIR,
            "command_id": REC,
            "args": {"duration_second": 3, "camera_ids": [SWIR, LWIR]},
        },
    ]


def test_zoom_commands_only_for_the_cameras_the_pose_zooms() -> None:
    spec = parsed(scan(cameras=[SWIR, RGB, LWIR], poses=[{"pan_deg_x100": 0, "tilt_deg_x100": 0}]))
    batch = scan_batch(spec, spec.poses[0], LAYOUT, REC)
    assert [c["command_id"] for c in batch] == ["set_pan_position_degree", "set_tilt_position_degree", REC]
    pose = ScanPose(0, 0, 0, {RGB: 1.5})
    assert [(c["device_id"], c["command_id"]) for c in scan_batch(spec, pose, LAYOUT, REC)][2] == (
        RGB,
        "set_zoom_value",
    )


def test_command_ids_and_args_come_from_the_configuration() -> None:
    cfg = Config.from_dict(
        {"positioning_commands": {"goto_pan": {"arg": "p", "field": "pan_deg_x100", "integer": True}}}
    )
    spec, problems = parse_scan(scan(), cfg, {})
    # No command drives tilt on this rig: a pose cannot be reached, so the scan is refused.
    assert spec is None and problems[0]["field"] == "poses[0].tilt_deg_x100"
    assert "no command in positioning_commands drives" in problems[0]["message"]
    cfg = Config.from_dict(
        {
            "positioning_commands": {
                "goto_pan": {"arg": "p", "field": "pan_deg_x100", "min": -100, "max": 100},
                "goto_tilt": {"arg": "t", "field": "tilt_deg_x100"},
            },
            "recording": {"command_id": "shoot"},
        }
    )
    assert fields_with(cfg, scan(poses=[{"pan_deg_x100": 101, "tilt_deg_x100": 0}])) == [
        "poses[0].pan_deg_x100"
    ]
    spec, problems = parse_scan(scan(poses=[{"pan_deg_x100": 50, "tilt_deg_x100": 7}]), cfg, {})
    assert spec is not None and problems == []
    batch = scan_batch(spec, spec.poses[0], RigLayout.from_config(cfg), cfg.recording.command_id)
    assert [(c["command_id"], c["args"]) for c in batch[:2]] == [
        ("goto_pan", {"p": 50}),
        ("goto_tilt", {"t": 7}),
    ]
    assert batch[2]["command_id"] == "shoot"


def fields_with(cfg: Config, body: Any) -> list[str]:
    return [p["field"] for p in parse_scan(body, cfg, {})[1]]


def test_a_pose_batch_compiles_to_send_settle_record_with_the_pose_as_targets() -> None:
    spec = parsed(
        scan(cameras=[SWIR, LWIR], poses=[{"pan_deg_x100": 1200, "tilt_deg_x100": -450, "zoom": {SWIR: 3}}])
    )
    pose = spec.poses[0]
    plan = compile_plan(scan_batch(spec, pose, LAYOUT, REC), LAYOUT, REC)
    assert [type(s) for s in plan.steps] == [SendStep, SendStep, SendStep, SettleStep, RecordStep]
    settle = plan.steps[3]
    assert isinstance(settle, SettleStep) and settle.purpose == "record"
    targets = {d.device_id: dict(d.targets) for d in settle.devices}
    assert targets == {
        PT: {"pan_deg_x100": pose.pan, "tilt_deg_x100": pose.tilt},
        SWIR: {LAYOUT.zoom_fields[SWIR]: pose.zoom[SWIR]},
    }
    record = plan.steps[4]
    assert isinstance(record, RecordStep) and record.cameras == (SWIR, LWIR) and record.duration_s == 2
