"""Named presets: the store and the expansion of goto_preset (unit), the HTTP API and a batch that
goes to a preset and records there (integration, against the simulated rig).

Unit tests are unmarked (they need no broker); each integration test carries the marker itself, so
that ``pytest -m "not integration"`` still runs the unit half of this file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from rigcore.config import Config, PositioningCommand
from rigcore.rig import RigLayout
from service.batches.plan import SendStep
from service.batches.validation import build_plan, preset_problems
from service.capture import CaptureService
from service.presets.store import (
    GOTO_PRESET,
    MAX_PRESET_BYTES,
    MAX_PRESETS,
    MAX_ZOOM_KEYS,
    PRESETS_FILE,
    Preset,
    PresetsFull,
    PresetStore,
    PresetValues,
    expand_presets,
    name_problem,
    presets_path,
    size_problems,
)
from simulator.rig import SimRig
from tests.conftest import scaled

integration = pytest.mark.integration

CFG = Config()
LAYOUT = RigLayout.from_config(CFG)
PT = "acikgoz_pantilt"
SWIR = "cameradevice_swir_1"
LWIR = "cameradevice_lwir_1"
TOL = 5  # x100 units, as the pan/tilt commands' tolerance


def goto(name: Any, device: str = PT, **extra: Any) -> dict[str, Any]:
    return {
        "target_id": "entity",
        "device_id": device,
        "command_id": GOTO_PRESET,
        "args": {"preset": name, **extra},
    }


def rec(seconds: float = 1, cams: tuple[str, ...] = (SWIR,)) -> dict[str, Any]:
    return {
        "target_id": "camera_device",
        "device_id": cams[0],
        "command_id": CFG.recording.command_id,
        "args": {"duration_second": seconds, "camera_ids": list(cams)},
    }


PAN_SPEC = CFG.positioning_commands["set_pan_position_degree"]


def with_positioning(**changes: PositioningCommand | None) -> Config:
    """The default configuration with positioning commands replaced (None: removed)."""
    merged = {**CFG.positioning_commands, **changes}
    return CFG.model_copy(update={"positioning_commands": {k: v for k, v in merged.items() if v is not None}})


GATE = Preset(pan_deg_x100=1500, tilt_deg_x100=-500, zoom={SWIR: 300})


# -- unit: names, file place, store --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gate", "ridge_line.2", "A-b_c.9", "x" * 64])
def test_good_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "gate/1", "ümit", "a;b", "../x"])
def test_bad_names(name: str) -> None:
    assert "1 to 64 characters" in (name_problem(name) or "")


def test_presets_file_is_beside_the_config_file_else_in_base_dir(tmp_path: Path) -> None:
    assert presets_path(tmp_path / "etc" / "config.json", tmp_path) == tmp_path / "etc" / PRESETS_FILE
    assert presets_path(None, tmp_path) == tmp_path / PRESETS_FILE


def test_store_puts_replaces_deletes_and_persists(tmp_path: Path) -> None:
    path = tmp_path / PRESETS_FILE
    store = PresetStore(path)
    assert store.all() == {} and not path.exists() and store.warning is None
    assert store.put("gate", GATE) is True
    assert store.put("gate", GATE.model_copy(update={"pan_deg_x100": 1600})) is False
    assert store.put("ridge", Preset(pan_deg_x100=0, tilt_deg_x100=0)) is True
    again = PresetStore(path)
    assert sorted(again.all()) == ["gate", "ridge"]
    gate = again.get("gate")
    assert gate is not None and gate.pan_deg_x100 == 1600 and gate.zoom == {SWIR: 300}
    assert isinstance(gate.pan_deg_x100, int)  # an integer stays an integer through the file
    assert gate.saved_at is not None
    assert again.delete("ridge") is True and again.delete("ridge") is False
    assert sorted(PresetStore(path).all()) == ["gate"]


@pytest.mark.parametrize("content", ["{not json", '{"presets": {"gate": {"pan_deg_x100": "left"}}}'])
def test_damaged_file_is_moved_aside_with_a_warning(tmp_path: Path, content: str) -> None:
    path = tmp_path / PRESETS_FILE
    path.write_text(content)
    store = PresetStore(path)
    assert store.all() == {}
    assert store.warning is not None and "damaged" in store.warning
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"{PRESETS_FILE}.damaged-")]
    assert len(aside) == 1 and aside[0].read_text() == content and not path.exists()


# -- unit: values against the configured limits ---------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"pan_deg_x100": 20000, "tilt_deg_x100": 0}, "pan_deg_x100", "out of range"),
        ({"pan_deg_x100": 0, "tilt_deg_x100": -9001}, "tilt_deg_x100", "out of range"),
        ({"pan_deg_x100": 0.5, "tilt_deg_x100": 0}, "pan_deg_x100", "looks like degrees"),
        ({"pan_deg_x100": True, "tilt_deg_x100": 0}, "pan_deg_x100", "must be an integer"),
        ({"tilt_deg_x100": 0}, "pan_deg_x100", "missing"),
        (
            {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {LWIR: 3}},
            f"zoom.{LWIR}",
            "not a camera with a zoom",
        ),
        (
            {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {"nope": 3}},
            "zoom.nope",
            "not a camera with a zoom",
        ),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {SWIR: -1}}, f"zoom.{SWIR}", "out of range"),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": [1]}, "zoom", "must be an object"),
        ({"pan_deg_x100": 0, "tilt_deg_x100": 0, "speed": 3}, "speed", "unknown key"),
        ([1, 2], "(body)", "must be a JSON object"),
    ],
)
def test_preset_values_are_checked_against_the_positioning_commands(
    body: Any, field: str, words: str
) -> None:
    problems = preset_problems(body, CFG)
    assert problems and problems[0]["field"] == field and words in problems[0]["message"], problems


def test_limits_follow_the_configuration() -> None:
    narrow = with_positioning(set_pan_position_degree=PAN_SPEC.model_copy(update={"max": 1000}))
    body = {"pan_deg_x100": 1500, "tilt_deg_x100": 0}
    assert preset_problems(body, CFG) == []
    assert "out of range [-18000, 1000]" in preset_problems(body, narrow)[0]["message"]


# -- unit: expansion and the plan ---------------------------------------------------------------------
def test_goto_preset_expands_into_the_configured_positioning_commands() -> None:
    commands = expand_presets([goto("gate"), rec()], {"gate": GATE}, LAYOUT)
    assert [(c["device_id"], c["command_id"], c["args"]) for c in commands] == [
        (PT, "set_pan_position_degree", {"pan_position_deg_x100": 1500}),
        (PT, "set_tilt_position_degree", {"tilt_position_deg_x100": -500}),
        (SWIR, "set_zoom_step", {"zoom_step": 300}),
        (SWIR, CFG.recording.command_id, {"duration_second": 1, "camera_ids": [SWIR]}),
    ]


def test_expansion_uses_the_command_ids_and_args_of_the_configuration() -> None:
    renamed = with_positioning(
        set_pan_position_degree=None,
        pan_to=PositioningCommand(arg="deg100", field="pan_deg_x100", integer=True),
    )
    commands = expand_presets([goto("gate")], {"gate": GATE}, RigLayout.from_config(renamed))
    assert commands[0]["command_id"] == "pan_to" and commands[0]["args"] == {"deg100": 1500}


def test_build_plan_expands_and_settles_at_the_preset() -> None:
    body = {"requests": [goto("gate"), rec()]}
    plan, problems = build_plan(body, CFG, {"gate": GATE})
    assert problems == [] and plan is not None
    assert [c["command_id"] for c in plan.commands] == [
        "set_pan_position_degree",
        "set_tilt_position_degree",
        "set_zoom_step",
        CFG.recording.command_id,
    ]
    sends = [s for s in plan.steps if isinstance(s, SendStep)]
    assert [s.index for s in sends] == [0, 1, 2] and sends[2].moves == SWIR
    settle = plan.describe()[3]
    assert (
        settle
        == f"settle (record) {PT} pan_deg_x100=1500 tilt_deg_x100=-500, {SWIR} zoom_lens_state.zoom_step=300"
    )
    assert body["requests"][0]["command_id"] == GOTO_PRESET  # the batch as sent is not changed


@pytest.mark.parametrize(
    ("command", "field", "words"),
    [
        (goto("nowhere"), "args.preset", "unknown preset 'nowhere'"),
        (goto(5), "args.preset", "must be a string"),
        ({**goto("gate"), "args": {}}, "args.preset", "missing"),
        (goto("gate", speed=2), "args.speed", "unknown key"),
        (goto("gate", device=SWIR), "device_id", "moves the pan-tilt"),
    ],
)
def test_bad_goto_preset_is_refused_naming_index_and_field(
    command: dict[str, Any], field: str, words: str
) -> None:
    plan, problems = build_plan({"requests": [rec(), command]}, CFG, {"gate": GATE})
    assert plan is None
    assert (problems[0]["index"], problems[0]["field"]) == (1, field) and words in problems[0]["message"]


def test_preset_that_no_longer_fits_the_configuration_is_refused() -> None:
    narrow = with_positioning(set_pan_position_degree=PAN_SPEC.model_copy(update={"max": 1000}))
    plan, problems = build_plan({"requests": [goto("gate")]}, narrow, {"gate": GATE})
    assert plan is None and problems[0]["field"] == "args.preset"
    assert "'gate'" in problems[0]["message"] and "pan_deg_x100" in problems[0]["message"]


# -- integration: the HTTP API ------------------------------------------------------------------------------
def _file(service: CaptureService) -> Path:
    return service.presets.path


@integration
def test_crud(client: FlaskClient, service: CaptureService) -> None:
    body = {"pan_deg_x100": 1500, "tilt_deg_x100": -500, "zoom": {SWIR: 300}}
    resp = client.put("/presets/gate", json=body)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["message"] == "created" and resp.get_json()["pan_deg_x100"] == 1500
    assert _file(service).parent == service.base_dir
    resp = client.put("/presets/gate", json={**body, "pan_deg_x100": 1600})
    assert resp.status_code == 200 and resp.get_json()["message"] == "replaced"
    client.put("/presets/ridge", json={"pan_deg_x100": 0, "tilt_deg_x100": 100})
    listed = client.get("/presets").get_json()["presets"]
    assert [(p["name"], p["pan_deg_x100"]) for p in listed] == [("gate", 1600), ("ridge", 0)]
    one = client.get("/presets/gate").get_json()
    assert one["zoom"] == {SWIR: 300} and one["tilt_deg_x100"] == -500
    on_disk = json.loads(_file(service).read_text())["presets"]
    assert sorted(on_disk) == ["gate", "ridge"]
    assert client.delete("/presets/ridge").status_code == 200
    assert client.delete("/presets/ridge").status_code == 404
    assert client.get("/presets/ridge").status_code == 404
    assert sorted(json.loads(_file(service).read_text())["presets"]) == ["gate"]


@integration
@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("a b", {"pan_deg_x100": 0, "tilt_deg_x100": 0}, "name"),
        ("x" * 65, {"pan_deg_x100": 0, "tilt_deg_x100": 0}, "name"),
        ("gate", {"pan_deg_x100": 18001, "tilt_deg_x100": 0}, "pan_deg_x100"),
        ("gate", {"pan_deg_x100": 0, "tilt_deg_x100": "up"}, "tilt_deg_x100"),
        ("gate", {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {LWIR: 2}}, f"zoom.{LWIR}"),
        ("gate", {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {SWIR: 2.5}}, f"zoom.{SWIR}"),
    ],
)
def test_bad_name_or_value_gets_400_naming_it_and_saves_nothing(
    client: FlaskClient, service: CaptureService, name: str, body: dict[str, Any], field: str
) -> None:
    resp = client.put(f"/presets/{name}", json=body)
    assert resp.status_code == 400
    err = resp.get_json()
    assert (
        err["details"][0]["field"] == field and field[:20] in err["error"] and "nothing saved" in err["error"]
    )
    assert client.get("/presets").get_json()["presets"] == [] and not _file(service).exists()


@integration
def test_not_json_saves_nothing(client: FlaskClient, service: CaptureService) -> None:
    assert client.put("/presets/gate", data="{", content_type="application/json").status_code == 400
    assert client.put("/presets/gate", data="{}", content_type="text/plain").status_code == 415
    assert not _file(service).exists()


def _wait_pose(service: CaptureService) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        pose = service.pose()
        if pose["pan_deg_x100"] is not None and pose["tilt_deg_x100"] is not None and pose["zooms"]:
            return pose
        time.sleep(0.05)
    raise AssertionError(f"the rig's pose did not become known: {service.pose()}")


@integration
def test_from_current_stores_the_pose_the_rig_holds(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    pose = _wait_pose(service)
    resp = client.post("/presets/here?from=current")
    assert resp.status_code == 201, resp.get_json()
    saved = client.get("/presets/here").get_json()
    assert (saved["pan_deg_x100"], saved["tilt_deg_x100"]) == (pose["pan_deg_x100"], pose["tilt_deg_x100"])
    assert saved["zoom"] == pose["zooms"] and SWIR in saved["zoom"]
    assert client.post("/presets/here").status_code == 400  # no ?from=current
    assert client.post("/presets/here?from=current").status_code == 200


@integration
def test_from_current_before_any_state_is_409(sim: SimRig, start_service: Any, prefix: str) -> None:
    # A service listening under another topic prefix hears nothing of the rig: the pose is unknown.
    deaf = start_service(mqtt={"topic_prefix": f"{prefix}_silent"})
    resp = create_app(deaf).test_client().post("/presets/here?from=current")
    assert resp.status_code == 409 and "not known" in resp.get_json()["error"]
    assert not _file(deaf).exists()


# -- integration: a batch that goes to a preset -------------------------------------------------------
@integration
def test_batch_goes_to_the_preset_and_records_there(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    body = {"pan_deg_x100": 1500, "tilt_deg_x100": -500, "zoom": {SWIR: 300}}
    assert client.put("/presets/gate", json=body).status_code == 201
    resp = client.post("/process-request", json={"requests": [goto("gate"), rec(1)]})
    job = resp.get_json()
    assert resp.status_code == 200 and job["status"] == "succeeded", job
    # What the rig received: the positioning commands of the preset, then the recording.
    received = [
        (c["device_id"], c["command"]["command_id"], c["command"]["args"]) for c in sim.commands_received()
    ]
    assert received[:3] == [
        (PT, "set_pan_position_degree", {"pan_position_deg_x100": 1500}),
        (PT, "set_tilt_position_degree", {"tilt_position_deg_x100": -500}),
        (SWIR, "set_zoom_step", {"zoom_step": 300}),
    ]
    assert all(c["command"]["command_id"] != GOTO_PRESET for c in sim.commands_received())
    # The job's results follow the commands sent; history keeps the batch as sent beside them.
    assert [r["request"]["command_id"] for r in job["results"]][:3] == [c[1] for c in received[:3]]
    entry = service.history.get(job["job_id"])
    assert entry is not None and entry["request"]["requests"][0]["command_id"] == GOTO_PRESET
    manifest = json.loads((Path(job["session"]["path"]) / "session.json").read_text())
    frames = manifest["cameras"][SWIR]["frames"]
    assert frames
    for frame in frames:
        pose = frame["pose"]
        assert abs(pose["pan_deg_x100"] - 1500) <= TOL and abs(pose["tilt_deg_x100"] + 500) <= TOL, pose
        assert pose["zoom"] == 300, pose


@integration
def test_unknown_preset_is_refused_and_nothing_runs(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    resp = client.post("/process-request", json={"requests": [rec(1), goto("nowhere")]})
    assert resp.status_code == 400
    err = resp.get_json()
    assert "requests[1].args.preset" in err["error"] and "'nowhere'" in err["error"]
    assert "nothing was executed" in err["error"]
    assert sim.commands_received() == []
    assert not any(service.paths.save_dir.iterdir())


# -- bounds: size and count (issue 21, item 5) --------------------------------------------------------
def test_a_preset_too_big_or_with_too_many_zoom_keys_is_one_problem() -> None:
    huge = {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {f"cam_{i}": 1 for i in range(50_000)}}
    (problem,) = size_problems(huge)
    assert problem["field"] == "body" and str(MAX_PRESET_BYTES) in problem["message"]
    many = {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {f"c{i}": 1 for i in range(MAX_ZOOM_KEYS + 1)}}
    (problem,) = size_problems(many)
    assert problem["field"] == "zoom" and str(MAX_ZOOM_KEYS) in problem["message"]
    assert size_problems({"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {SWIR: 1}}) == []


def test_the_store_keeps_at_most_max_presets_and_still_replaces_one(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / PRESETS_FILE)
    for i in range(MAX_PRESETS):
        store.put(f"p{i}", GATE)
    with pytest.raises(PresetsFull):
        store.put("one-more", GATE)
    assert store.put("p0", GATE.model_copy(update={"pan_deg_x100": 0})) is False  # a replacement
    assert len(PresetStore(tmp_path / PRESETS_FILE).all()) == MAX_PRESETS


def test_the_document_shows_the_bounds() -> None:
    schema = Preset.model_json_schema()
    assert schema["properties"]["zoom"]["maxProperties"] == MAX_ZOOM_KEYS
    values = PresetValues.model_json_schema()
    assert str(MAX_PRESET_BYTES) in values["description"] and str(MAX_PRESETS) in values["description"]


@integration
def test_fifty_thousand_zoom_keys_get_a_small_answer_and_save_nothing(
    client: FlaskClient, service: CaptureService
) -> None:
    body = {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {f"cam_{i:05d}": 1 for i in range(50_000)}}
    resp = client.put("/presets/x", json=body)
    assert resp.status_code == 400 and len(resp.data) < 5_000, len(resp.data)
    assert "nothing saved" in resp.get_json()["error"] and not _file(service).exists()
    # Within the size, one problem per key is still capped (details counted, each clipped).
    keys = {f"{'k' * 200}{i}": 1 for i in range(60)}
    resp = client.put("/presets/x", json={"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": keys})
    assert resp.status_code == 400 and len(resp.data) < 20_000, len(resp.data)


@integration
def test_a_new_preset_beyond_the_count_is_409_and_a_replacement_is_not(
    client: FlaskClient, service: CaptureService
) -> None:
    for i in range(MAX_PRESETS):
        service.presets.put(f"p{i}", GATE)
    body = {"pan_deg_x100": 0, "tilt_deg_x100": 0}
    resp = client.put("/presets/one-more", json=body)
    assert resp.status_code == 409 and str(MAX_PRESETS) in resp.get_json()["error"]
    assert "one-more" not in json.loads(_file(service).read_text())["presets"]
    assert client.put("/presets/p1", json=body).status_code == 200
