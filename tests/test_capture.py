"""End to end: POST a batch → commands reach the simulated rig → settle → record → session folder.

Real Mosquitto, the simulated rig's real WebSocket and HTTP servers, real HTTP through Flask.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from api import create_app
from service.capture import CaptureService
from sessions.state_log import read_state_log
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import batch, scaled

pytestmark = pytest.mark.integration

CAMS = ("cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1")
TOL = 5  # 0.05° in x100 units


def post(service: CaptureService, body: Any, **kw: Any) -> Any:
    client = create_app(service).test_client()
    return client.post("/process-request", json=body, **kw)


def load_manifest(resp_json: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    path = Path(resp_json["session"]["path"])
    return path, json.loads((path / "session.json").read_text())


def check_session(sim: SimRig, path: Path, manifest: dict[str, Any], pan: int, tilt: int) -> None:
    """Every frame at the target pose, after the settle point, in the window; ≥98 % of sent frames."""
    start, end = manifest["record_started_at"], manifest["record_ended_at"]
    sent = sim.sent_frames()
    for cam in CAMS:
        info = manifest["cameras"][cam]
        frames = info["frames"]
        assert info["frame_count"] == len(frames) > 0, cam
        indices = [f["frame_index"] for f in frames]
        assert indices == sorted(indices) and len(set(indices)) == len(indices), f"{cam}: order/duplicates"
        for f in frames:
            # The window bounds capture times (docs/protocol.md §5); arrival may come after its end.
            assert start <= f["captured_at"] < end, f"{cam}: frame captured outside the recording window"
            assert (
                abs(f["pose"]["pan_deg_x100"] - pan) <= TOL and abs(f["pose"]["tilt_deg_x100"] - tilt) <= TOL
            )
            assert (path / f["file"]).is_file()
        # What the rig captured while the recording window was open (its true capture time, ours too).
        by_index = {s.frame_index: s for s in sent if s.camera_id == cam}
        for idx in indices:
            true_pose: dict[str, Any] = by_index[idx].pose
            assert abs(true_pose["pan_deg_x100"] - pan) <= TOL, f"{cam} frame {idx} captured while moving"
            assert abs(true_pose["tilt_deg_x100"] - tilt) <= TOL
        window = [s for s in sent if s.camera_id == cam and start + 0.05 <= s.captured_ns / 1e9 < end - 0.05]
        saved = set(indices)
        kept = sum(1 for s in window if s.frame_index in saved)
        assert window and kept / len(window) >= 0.98, f"{cam}: kept {kept} of {len(window)} frames sent"


@pytest.mark.parametrize("transport", ["mqtt", "http"])
def test_pan_tilt_record_saves_every_frame_at_the_target_pose(
    transport: str, sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service(transport)
    resp = post(service, batch(4500, -1000, seconds=2.0))
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["message"] == "Requests processed"
    assert body["status"] == "succeeded", body
    assert [r["status"] for r in body["results"]] == ["ok", "ok", "ok"]
    assert all(r["transport"] == transport for r in body["results"])
    path, manifest = load_manifest(body)
    assert manifest["status"] == "complete" and manifest["job_id"] == body["job_id"]
    assert body["session"]["cameras"]["cameradevice_swir_1"]["frame_count"] > 0
    check_session(sim, path, manifest, 4500, -1000)
    # The settle proof: how long the pan-tilt took, how close it came, the steady run, the range.
    proof = manifest["settle"]
    assert proof["settled_at"] == pytest.approx(manifest["settled_at"], abs=1e-3)
    pantilt = proof["devices"]["acikgoz_pantilt"]
    assert pantilt["targets"] == {"pan_deg_x100": 4500, "tilt_deg_x100": -1000}
    assert all(abs(v) <= TOL for v in pantilt["residual"].values()) and len(pantilt["residual"]) == 2
    assert pantilt["steady_messages"] >= 5 and pantilt["steady_window_s"] >= 0.5
    assert 0.5 <= pantilt["time_to_settle_s"] < 20
    assert proof["range_m"]["readings"] >= 3 and 0 < proof["range_m"]["min"] <= proof["range_m"]["max"]
    # Commands reached the rig in order over the chosen transport.
    got = [(c["command"]["command_id"], c["transport"]) for c in sim.commands_received()]
    assert [g[0] for g in got] == [
        "set_pan_position_degree",
        "set_tilt_position_degree",
        "start_recording_command",
    ]
    assert {g[1] for g in got} == {transport}
    # Files written lossless: LWIR stays 16-bit, SWIR 8-bit, RGB as the JPEG received.
    lwir = manifest["cameras"]["cameradevice_lwir_1"]["frames"][0]["file"]
    with Image.open(path / lwir) as img:
        arr = np.asarray(img)
    assert arr.dtype == np.uint16 and arr.max() > 255
    assert manifest["cameras"]["cameradevice_rgb_1"]["frames"][0]["file"].endswith(".jpg")
    # The summary files beside it.
    images_data = json.loads((service.paths.images_data_dir / f"{manifest['session_id']}.json").read_text())
    assert images_data["summary"]["cameras"]["cameradevice_lwir_1"]["frame_count"] == len(
        manifest["cameras"]["cameradevice_lwir_1"]["frames"]
    )
    history = json.loads(service.paths.history_file.read_text())["requests"]
    assert history[-1]["id"] == body["job_id"] and history[-1]["status"] == "succeeded"
    assert history[-1]["sessions"][0]["session_id"] == manifest["session_id"]
    # The state samples kept with the session (sessions.state_log): every device, from the batch's
    # first command on, so the move itself is in them (pan from its start to the target).
    samples = read_state_log(path)
    assert manifest["state_log"]["samples"] == len(samples) > 0
    assert {"acikgoz_pantilt", "acikgoz_lrf", "cameradevice_rgb_1", "cameradevice_swir_1"} <= {
        s.device_id for s in samples
    }
    pans = [s.values["pan_deg_x100"] for s in samples if s.device_id == "acikgoz_pantilt"]
    assert pans[0] != 4500 and abs(pans[-1] - 4500) <= TOL
    first, last = samples[0].received_at, samples[-1].received_at
    # From before the move to the window's close (the rig publishes state 10 times a second).
    assert first < manifest["settled_at"] < manifest["record_ended_at"] - 0.2 < last
    # Every frame's pose was found at its capture time, between two samples.
    frames = [f for c in manifest["cameras"].values() for f in c["frames"]]
    assert {f["pose_method"] for f in frames} == {"interpolated"}
    assert {f["time_source"] for f in frames} == {"stamp"}


def test_late_moving_rig_never_yields_frames_from_before_the_move(
    sim_config: SimConfig, request: pytest.FixtureRequest
) -> None:
    """The rig starts moving 400 ms after the command while its retained state shows the old pose."""
    sim_config.start_delay_s = 0.4
    sim: SimRig = request.getfixturevalue("sim")
    service = request.getfixturevalue("start_service")("mqtt")
    resp = post(service, batch(-3000, 1500, seconds=1.5))
    body = resp.get_json()
    assert body["status"] == "succeeded", body
    path, manifest = load_manifest(body)
    check_session(sim, path, manifest, -3000, 1500)


def test_target_equal_to_current_pose_settles_without_motion(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    body = post(service, batch(0, 0, seconds=1.0)).get_json()
    assert body["status"] == "succeeded", body
    path, manifest = load_manifest(body)
    check_session(sim, path, manifest, 0, 0)


def test_settle_timeout_fails_the_batch_and_records_nothing(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    sim.faults.never_settle = True
    service = start_service("mqtt", settle={"timeout_s": scaled(3.0)})
    resp = post(service, batch(1000, 0, seconds=1.0))
    body = resp.get_json()
    assert body["status"] == "failed", body
    err = body["error"]
    assert err["type"] == "SettleTimeout" and err["device_id"] == "acikgoz_pantilt"
    assert err["target"]["pan_deg_x100"] == 1000 and err["last_value"]["pan_deg_x100"] is not None
    assert "acikgoz_pantilt" in err["message"] and "1000" in err["message"]
    assert [r["status"] for r in body["results"]] == ["ok", "ok", "failed"]
    assert body["session"] is None
    assert not any(service.paths.save_dir.iterdir()), "no session folder may be created"
    assert "start_recording_command" not in [c["command"]["command_id"] for c in sim.commands_received()]
    entry = json.loads(service.paths.history_file.read_text())["requests"][-1]
    assert entry["status"] == "failed" and entry["error"]["type"] == "SettleTimeout"


def test_recording_first_records_at_the_current_pose_then_moves(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    body = post(service, batch(2000, 500, seconds=1.0, record_first=True)).get_json()
    assert body["status"] == "succeeded", body
    path, manifest = load_manifest(body)
    check_session(sim, path, manifest, 0, 0)
    # After the recording the moves ran, and the batch reports where the rig came to rest.
    assert body["final_pose"]["pan_deg_x100"] == 2000 and body["final_pose"]["tilt_deg_x100"] == 500
    assert sim.pose()["pan_deg_x100"] == 2000


def test_rejected_batch_executes_nothing_and_is_in_history(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    bad = batch(4500, -1000)
    bad["requests"][1]["args"]["tilt_position_deg_x100"] = "-1000"
    resp = post(service, bad)
    assert resp.status_code == 400
    err = resp.get_json()
    message = "must be an integer (hundredths of a degree, e.g. 4500 for 45°), got string"
    assert err["details"] == [{"index": 1, "field": "args.tilt_position_deg_x100", "message": message}]
    assert "tilt_position_deg_x100" in err["error"]
    client = create_app(service).test_client()
    assert client.post("/process-request", data="{nope", content_type="application/json").status_code == 400
    assert client.post("/process-request", data="x=1", content_type="text/plain").status_code == 415
    assert sim.commands_received() == []
    history = json.loads(service.paths.history_file.read_text())["requests"]
    assert [h["status"] for h in history] == ["rejected"] * 3
    assert history[0]["error"]["details"][0]["field"] == "args.tilt_position_deg_x100"
