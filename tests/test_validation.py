"""The whole batch is checked before anything runs; every problem names its item and field."""

from __future__ import annotations

from typing import Any

import pytest

from rigcore.config import Config
from service.batches.validation import validate_batch

CFG = Config()


def pan(value: Any) -> dict[str, Any]:
    return {
        "target_id": "entity",
        "device_id": "acikgoz_pantilt",
        "command_id": "set_pan_position_degree",
        "args": {"pan_position_deg_x100": value},
    }


def rec(duration: Any = 3, cams: Any = ("cameradevice_swir_1",)) -> dict[str, Any]:
    return {
        "target_id": "camera_device",
        "device_id": "cameradevice_swir_1",
        "command_id": "start_recording_command",
        "args": {"duration_second": duration, "camera_ids": list(cams) if isinstance(cams, tuple) else cams},
    }


def fields(body: Any) -> list[tuple[Any, str]]:
    return [(p["index"], p["field"]) for p in validate_batch(body, CFG)]


def test_good_batch_has_no_problems() -> None:
    assert validate_batch({"requests": [pan(4500), rec()]}, CFG) == []


def test_unknown_command_on_known_device_passes_through() -> None:
    cmd = {"target_id": "entity", "device_id": "acikgoz_lrf", "command_id": "measure_once", "args": {}}
    assert validate_batch({"requests": [cmd]}, CFG) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([1, 2], [(None, "(body)")]),
        ({}, [(None, "requests")]),
        ({"requests": {}}, [(None, "requests")]),
        ({"requests": []}, [(None, "requests")]),
        ({"requests": ["x"]}, [(0, "requests[0]")]),
        ({"requests": [{"device_id": "acikgoz_pantilt", "command_id": "x"}]}, [(0, "target_id")]),
        ({"requests": [{"target_id": "e", "command_id": "x"}]}, [(0, "device_id")]),
        ({"requests": [{"target_id": "e", "device_id": "acikgoz_pantilt"}]}, [(0, "command_id")]),
        ({"requests": [{**pan(1), "device_id": "nope"}]}, [(0, "device_id")]),
        ({"requests": [pan("4500")]}, [(0, "args.pan_position_deg_x100")]),
        ({"requests": [pan(45.5)]}, [(0, "args.pan_position_deg_x100")]),
        ({"requests": [pan(True)]}, [(0, "args.pan_position_deg_x100")]),
        ({"requests": [pan(18001)]}, [(0, "args.pan_position_deg_x100")]),
        ({"requests": [pan(-18001)]}, [(0, "args.pan_position_deg_x100")]),
        ({"requests": [pan(0), rec(0)]}, [(1, "args.duration_second")]),
        ({"requests": [rec(-1)]}, [(0, "args.duration_second")]),
        ({"requests": [rec("3")]}, [(0, "args.duration_second")]),
        ({"requests": [rec(601)]}, [(0, "args.duration_second")]),
        ({"requests": [rec(cams=[])]}, [(0, "args.camera_ids")]),
        ({"requests": [rec(cams="cameradevice_swir_1")]}, [(0, "args.camera_ids")]),
        (
            {"requests": [rec(cams=["cameradevice_swir_1", "cameradevice_swir_1"])]},
            [(0, "args.camera_ids[1]")],
        ),
        ({"requests": [rec(cams=["../../etc"])]}, [(0, "args.camera_ids[0]")]),
        ({"requests": [rec(cams=["cameradevice_nope"])]}, [(0, "args.camera_ids[0]")]),
    ],
)
def test_each_problem_names_index_and_field(body: Any, expected: list[tuple[Any, str]]) -> None:
    assert fields(body) == expected


def test_tilt_limits_and_zoom_command_on_wrong_camera() -> None:
    tilt = {
        "target_id": "entity",
        "device_id": "acikgoz_pantilt",
        "command_id": "set_tilt_position_degree",
        "args": {"tilt_position_deg_x100": 9001},
    }
    zoom = {
        "target_id": "camera_device",
        "device_id": "cameradevice_lwir_1",
        "command_id": "set_zoom_step",
        "args": {"zoom_step": 10},
    }
    assert fields({"requests": [tilt, zoom]}) == [(0, "args.tilt_position_deg_x100"), (1, "device_id")]


def test_all_problems_reported_at_once() -> None:
    assert len(validate_batch({"requests": [pan("x"), rec(0, [])]}, CFG)) == 3


def messages(body: Any) -> list[str]:
    return [p["message"] for p in validate_batch(body, CFG)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (45.5, "45.5 looks like degrees: pan_position_deg_x100 takes hundredths of a degree, e.g. 4550"),
        (-12.25, "-12.25 looks like degrees: pan_position_deg_x100 takes hundredths of a degree, e.g. -1225"),
        (
            4500.0,
            "4500.0 is not an integer: pan_position_deg_x100 takes whole hundredths of a degree, "
            "e.g. 4500 for 45°",
        ),
        (
            18001,
            "18001 is out of range [-18000, 18000]: pan_position_deg_x100 takes hundredths of a degree "
            "(-180° to 180°), so 18001 is 180.01°",
        ),
        ("4500", "must be an integer (hundredths of a degree, e.g. 4500 for 45°), got string"),
    ],
)
def test_an_angle_problem_says_the_unit_and_the_value_meant(value: Any, message: str) -> None:
    assert messages({"requests": [pan(value)]}) == [message]


def test_an_angle_in_degrees_beyond_the_range_says_so() -> None:
    tilt = {**pan(0), "command_id": "set_tilt_position_degree", "args": {"tilt_position_deg_x100": 170.5}}
    assert messages({"requests": [tilt]}) == [
        "170.5 looks like degrees: tilt_position_deg_x100 takes hundredths of a degree, e.g. 17050, "
        "but 170.5° is out of range (-90° to 90°)"
    ]


def test_other_positioning_values_keep_their_plain_wording() -> None:
    zoom = {**rec(), "command_id": "set_zoom_step", "args": {"zoom_step": 2.5}}
    assert messages({"requests": [zoom]}) == ["must be an integer, got number"]


@pytest.mark.parametrize(
    ("device", "command_id", "meant"),
    [
        ("acikgoz_pantilt", "set_pan_positon_degree", "set_pan_position_degree"),
        ("acikgoz_pantilt", "Set_Tilt_Position_Degree", "set_tilt_position_degree"),
        ("acikgoz_pantilt", "goto_presets", "goto_preset"),
        ("cameradevice_swir_1", "set_zoom_stepp", "set_zoom_step"),
        ("cameradevice_lwir_1", "start_recordin_command", "start_recording_command"),
        ("acikgoz_pantilt", "start_recording_comand", "start_recording_command"),
    ],
)
def test_a_command_id_a_typo_away_from_one_configured_for_the_device_is_refused(
    device: str, command_id: str, meant: str
) -> None:
    body = {"requests": [{"target_id": "entity", "device_id": device, "command_id": command_id, "args": {}}]}
    problems = validate_batch(body, CFG)
    assert [(p["index"], p["field"]) for p in problems] == [(0, "command_id")]
    assert f"did you mean {meant!r}?" in problems[0]["message"]


@pytest.mark.parametrize(
    ("device", "command_id"),
    [
        ("acikgoz_pantilt", "reboot"),  # far from every configured id
        ("acikgoz_lrf", "set_pan_position_degre"),  # a typo of a command the range finder is not sent
        ("cameradevice_lwir_1", "set_zoom_stepp"),  # lwir has no zoom: not configured for it
        ("acikgoz_pantilt", "get_state"),
    ],
)
def test_other_unknown_command_ids_pass_through(device: str, command_id: str) -> None:
    body = {"requests": [{"target_id": "entity", "device_id": device, "command_id": command_id, "args": {}}]}
    assert validate_batch(body, CFG) == []
