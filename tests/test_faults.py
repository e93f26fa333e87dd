"""Faults the field throws at the service: each is survived, reported, and loses nothing held.

Real Mosquitto, the simulated rig's fault switches, real HTTP through Flask.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from service.capture import CaptureService
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import batch, free_port, scaled, until, wait_job

pytestmark = pytest.mark.integration

CAMS = ("cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1")


def post(service: CaptureService, body: Any, query: str = "") -> Any:
    return create_app(service).test_client().post(f"/process-request{query}", json=body)


def last_history(service: CaptureService) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(service.paths.history_file.read_text())["requests"][-1]
    return entry


def test_stream_drop_mid_recording_reconnects_and_marks_the_session_partial(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    sim.faults.drop_stream_after_s = 1.0
    body = post(service, batch(0, 0, seconds=2.5)).get_json()
    sim.faults.drop_stream_after_s = None
    assert body["status"] == "succeeded", body
    assert body["session"]["status"] == "partial"
    assert body["session"]["stream_outages"] >= 1
    assert any("partial" in w for w in body["warnings"])
    manifest = json.loads((Path(body["session"]["path"]) / "session.json").read_text())
    assert manifest["status"] == "partial"
    outage = manifest["stream_outages"][0]
    assert outage["from"] is not None and outage["duration_s"] > 0
    start, end = manifest["record_started_at"], manifest["record_ended_at"]
    for cam in CAMS:
        frames = manifest["cameras"][cam]["frames"]
        # Frames on both sides of the outage were kept: recording went on after the reconnect.
        assert any(f["received_at"] < outage["from"] for f in frames), cam
        assert any(outage["to"] and f["received_at"] > outage["to"] for f in frames), cam
        assert all(start <= f["captured_at"] < end for f in frames)
    gap = manifest["gaps"][0]
    lo, hi = gap["missing_frame_index"]
    assert hi >= lo and gap["missing_frames"] == hi - lo + 1


def test_no_state_from_a_device_names_device_topic_and_wait(
    sim_config: SimConfig, request: pytest.FixtureRequest, prefix: str
) -> None:
    sim_config.faults.silent_state = {"acikgoz_pantilt"}
    request.getfixturevalue("sim")
    service = request.getfixturevalue("start_service")("mqtt", settle={"timeout_s": scaled(2.0)})
    body = post(service, batch(None, None, seconds=1.0)).get_json()
    assert body["status"] == "failed"
    err = body["error"]
    assert err["type"] == "NoStateError" and err["device_id"] == "acikgoz_pantilt"
    assert err["topic"] == f"{prefix}/entity_state/acikgoz_pantilt"
    assert err["waited_s"] >= 2.0 and "2." in err["message"]
    assert body["session"] is None and not any(service.paths.save_dir.iterdir())
    assert last_history(service)["error"]["type"] == "NoStateError"


@pytest.mark.parametrize("fault", ["status500", "timeout", "refused"])
def test_gateway_failure_fails_that_command_and_skips_the_rest(
    fault: str, sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    overrides: dict[str, Any] = {"http": {"read_timeout_s": 0.5, "connect_timeout_s": 0.5}}
    if fault == "status500":
        sim.faults.invoke_status = 500
    elif fault == "timeout":
        sim.faults.invoke_delay_s = 2.0
    else:
        overrides["invoke_url"] = f"http://127.0.0.1:{free_port()}/api/1.0/invoke"
    service = start_service("http", **overrides)
    body = post(service, batch(4500, -1000, seconds=1.0)).get_json()
    assert body["status"] == "failed"
    assert [r["status"] for r in body["results"]] == ["failed", "skipped", "skipped"]
    first = body["results"][0]
    expected = {"status500": "HTTP 500", "timeout": "timed out", "refused": "unreachable"}[fault]
    assert expected in first["error"], first
    if fault == "status500":
        assert first["status_code"] == 500
    assert expected in body["error"]["message"]
    assert body["session"] is None
    entry = last_history(service)
    assert entry["status"] == "failed" and [r["status"] for r in entry["results"]] == [
        "failed",
        "skipped",
        "skipped",
    ]
    # Nothing after the failed command reached the rig.
    assert [c["command"]["command_id"] for c in sim.commands_received()] in (
        [],
        ["set_pan_position_degree"],
    )


def test_malformed_stream_messages_are_counted_and_good_frames_still_saved(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    sim.faults.malformed_every = 2
    body = post(service, batch(0, 0, seconds=2.0)).get_json()
    assert body["status"] == "succeeded", body
    manifest = json.loads((Path(body["session"]["path"]) / "session.json").read_text())
    rejected = sum(manifest["cameras"][c]["rejected_frames"] for c in CAMS)
    assert rejected > 0 or manifest["unreadable_messages"] > 0
    assert rejected > 0, "wrong-size and unknown-format frames are counted per camera"
    assert all(manifest["cameras"][c]["frame_count"] > 0 for c in CAMS)
    reasons = [r for c in CAMS for r in manifest["cameras"][c]["rejection_reasons"]]
    assert reasons
    status = create_app(service).test_client().get("/status").get_json()
    assert sum(status["cameras"][c]["rejected_frames"] for c in CAMS) >= rejected
    assert status["unreadable_messages"] > 0


def test_cancel_a_queued_job_and_stop_a_running_recording_early(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    client = create_app(service).test_client()
    first = client.post("/process-request?wait=false", json=batch(0, 0, seconds=30)).get_json()
    second = client.post("/process-request?wait=false", json=batch(100, 0, seconds=1)).get_json()
    assert client.get(f"/jobs/{second['job_id']}").get_json()["status"] == "queued"
    resp = client.delete(f"/jobs/{second['job_id']}")
    assert resp.status_code == 202
    until(lambda: client.get(f"/jobs/{first['job_id']}").get_json()["phase"] == "recording", 20, "recording")
    time.sleep(1.0)
    assert client.delete(f"/jobs/{first['job_id']}").status_code == 202
    job = until(
        lambda: (j := client.get(f"/jobs/{first['job_id']}").get_json())["phase"] == "done" and j,
        20,
        "cancel",
    )
    assert job["status"] == "cancelled"
    session = job["session"]
    assert session["status"] == "cancelled"
    assert session["record_ended_at"] - session["record_started_at"] < 10
    manifest = json.loads((Path(session["path"]) / "session.json").read_text())
    assert manifest["status"] == "cancelled"
    assert all(manifest["cameras"][c]["frame_count"] > 0 for c in CAMS)
    queued = wait_job(client, second["job_id"], 10)
    assert queued["status"] == "cancelled"
    assert [r["status"] for r in queued["results"]] == ["skipped"] * 3
    # The cancelled queued job never moved the rig to pan 100.
    assert all(
        c["command"].get("args", {}).get("pan_position_deg_x100") != 100 for c in sim.commands_received()
    )

    # history.json is written off the loop, a moment after the job's own state.
    def statuses() -> dict[str, str]:
        return {e["id"]: e["status"] for e in json.loads(service.paths.history_file.read_text())["requests"]}

    until(lambda: statuses()[first["job_id"]] == statuses()[second["job_id"]] == "cancelled", 10, "history")
    assert client.delete(f"/jobs/{first['job_id']}").status_code == 409
    assert client.delete("/jobs/job-nope").status_code == 404


def test_unwritable_save_dir_fails_the_job_clearly_and_the_service_stays_up(
    sim: SimRig, start_service: Callable[..., CaptureService], tmp_path: Path
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the save folder should be")
    service = start_service("mqtt", save_dir=str(blocker / "save_images"))
    body = post(service, batch(0, 0, seconds=1.0)).get_json()
    assert body["status"] == "failed"
    assert body["error"]["type"] == "RecordingError"
    assert "not_a_folder" in body["error"]["message"]
    client = create_app(service).test_client()
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert "not_a_folder" in client.get("/status").get_json()["storage_warnings"][0]
    assert last_history(service)["status"] == "failed"
