"""The HTTP surface: bad input refused with the field named, token, config, jobs, OpenAPI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from rigcore.atomic import write_json_atomic
from rigcore.config import Config
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import batch

pytestmark = pytest.mark.integration

PAN = {
    "target_id": "entity",
    "device_id": "acikgoz_pantilt",
    "command_id": "set_pan_position_degree",
    "args": {"pan_position_deg_x100": 100},
}
REC = {
    "target_id": "camera_device",
    "device_id": "cameradevice_swir_1",
    "command_id": "start_recording_command",
    "args": {"duration_second": 1, "camera_ids": ["cameradevice_swir_1"]},
}


def with_args(cmd: dict[str, Any], **args: Any) -> dict[str, Any]:
    return {**cmd, "args": {**cmd["args"], **args}}


def without(cmd: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in cmd.items() if k != key}


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("no requests", {}, "requests"),
    ("requests not a list", {"requests": {"a": 1}}, "requests"),
    ("requests empty", {"requests": []}, "requests"),
    ("item not an object", {"requests": [5]}, "requests[0]"),
    ("missing target_id", {"requests": [without(PAN, "target_id")]}, "target_id"),
    ("missing device_id", {"requests": [without(PAN, "device_id")]}, "device_id"),
    ("missing command_id", {"requests": [without(PAN, "command_id")]}, "command_id"),
    ("unknown device", {"requests": [{**PAN, "device_id": "toaster"}]}, "device_id"),
    (
        "string pan",
        {"requests": [with_args(PAN, pan_position_deg_x100="4500")]},
        "args.pan_position_deg_x100",
    ),
    (
        "pan out of range",
        {"requests": [with_args(PAN, pan_position_deg_x100=20000)]},
        "args.pan_position_deg_x100",
    ),
    (
        "tilt out of range",
        {
            "requests": [
                {**PAN, "command_id": "set_tilt_position_degree", "args": {"tilt_position_deg_x100": -9001}}
            ]
        },
        "args.tilt_position_deg_x100",
    ),
    ("duration 0", {"requests": [with_args(REC, duration_second=0)]}, "args.duration_second"),
    ("duration negative", {"requests": [with_args(REC, duration_second=-2)]}, "args.duration_second"),
    ("duration not a number", {"requests": [with_args(REC, duration_second="3")]}, "args.duration_second"),
    ("duration above max", {"requests": [with_args(REC, duration_second=601)]}, "args.duration_second"),
    ("camera_ids empty", {"requests": [with_args(REC, camera_ids=[])]}, "args.camera_ids"),
    (
        "camera_ids not a list",
        {"requests": [with_args(REC, camera_ids="cameradevice_swir_1")]},
        "args.camera_ids",
    ),
    (
        "camera_ids duplicated",
        {"requests": [with_args(REC, camera_ids=["cameradevice_swir_1"] * 2)]},
        "args.camera_ids[1]",
    ),
    (
        "camera_ids unknown",
        {"requests": [with_args(REC, camera_ids=["cameradevice_x"])]},
        "args.camera_ids[0]",
    ),
    ("camera_ids path", {"requests": [with_args(REC, camera_ids=["../../etc"])]}, "args.camera_ids[0]"),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_batches_get_400_naming_the_field_and_execute_nothing(
    name: str, body: Any, field: str, sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    resp = client.post("/process-request", json=body)
    assert resp.status_code == 400, name
    err = resp.get_json()
    assert field in err["error"] and "nothing was executed" in err["error"]
    assert err["details"][0]["field"] == field
    assert sim.commands_received() == []
    assert service.history.entries()[-1]["status"] == "rejected"
    assert not any(service.paths.save_dir.iterdir())


def test_not_json_wrong_type_and_too_large(sim: SimRig, client: FlaskClient, service: CaptureService) -> None:
    resp = client.post("/process-request", data="{'requests': }", content_type="application/json")
    assert resp.status_code == 400 and "not valid JSON" in resp.get_json()["error"]
    resp = client.post("/process-request", data=json.dumps(batch()), content_type="text/plain")
    assert resp.status_code == 415 and "Content-Type" in resp.get_json()["error"]
    huge = {"requests": [with_args(PAN, padding="x" * 2_000_000)]}
    resp = client.post("/process-requests", json=huge)
    assert resp.status_code == 413 and "max_body_bytes" in resp.get_json()["error"]
    assert [e["http_status"] for e in service.history.entries()] == [400, 415, 413]
    assert sim.commands_received() == []


def test_token_guards_every_call_but_healthz(start_service: Callable[..., CaptureService]) -> None:
    service = start_service("mqtt", api={"token": "s3cret-token"})
    client = create_app(service).test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    for method, path in (
        ("get", "/status"),
        ("get", "/jobs"),
        ("get", "/history"),
        ("get", "/config"),
        ("post", "/process-request"),
        ("get", "/jobs/x"),
        ("delete", "/jobs/x"),
    ):
        resp = getattr(client, method)(path, json={})
        assert resp.status_code == 401, path
        assert "token" in resp.get_json()["error"]
    bad = client.get("/status", headers={"Authorization": "Bearer s3cret-tokeX"})
    assert bad.status_code == 401
    good = client.get("/status", headers={"Authorization": "Bearer s3cret-token"})
    assert good.status_code == 200 and good.get_json()["broker"]["connected"] is True
    redacted = client.get("/config", headers={"Authorization": "Bearer s3cret-token"}).get_json()
    assert redacted["api"]["token"] == "***"


def test_config_put_validates_saves_atomically_and_applies_to_the_next_job(
    sim: SimRig, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    cfg_path = tmp_path / "config.json"
    config = make_config("mqtt")
    write_json_atomic(cfg_path, config.to_json())
    service = CaptureService(config, base_dir=tmp_path, config_path=cfg_path)
    service.start()
    try:
        assert service.wait_ready(10)
        client = create_app(service).test_client()
        current = client.get("/config").get_json()
        bad = json.loads(json.dumps(current))
        bad["settle"]["windw_s"] = 1
        resp = client.put("/config", json=bad)
        assert resp.status_code == 400 and "settle.windw_s: unknown key" in resp.get_json()["error"]
        assert json.loads(cfg_path.read_text()) == config.to_json(), "nothing saved on a bad config"
        new = json.loads(json.dumps(current))
        new["command_transport"] = "http"
        new["mqtt"]["keepalive_s"] = 45
        resp = client.put("/config", json=new)
        assert resp.status_code == 200, resp.get_json()
        out = resp.get_json()
        assert out["changed"] == ["command_transport", "mqtt"] and out["restart_required"] == ["mqtt"]
        threads = json.loads(json.dumps(new))
        threads["recording"]["writer_threads"] = 3
        out = client.put("/config", json=threads).get_json()
        assert out["changed"] == ["recording"] and out["restart_required"] == ["recording.writer_threads"]
        assert json.loads(cfg_path.read_text())["command_transport"] == "http"
        assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".config.json.*"))
        body = client.post("/process-request", json=batch(0, 0, seconds=0.5)).get_json()
        assert body["status"] == "succeeded" and {r["transport"] for r in body["results"]} == {"http"}
    finally:
        service.stop()


def test_jobs_history_status_and_openapi(sim: SimRig, client: FlaskClient, service: CaptureService) -> None:
    job = client.post("/process-request?wait=false", json=batch(300, 0, seconds=0.5)).get_json()
    assert job["status_url"] == f"/jobs/{job['job_id']}"
    from tests.conftest import wait_job

    done = wait_job(client, job["job_id"], 30)
    assert done["status"] == "succeeded"
    assert client.get("/jobs").get_json()["jobs"][0]["job_id"] == job["job_id"]
    assert client.get("/history?limit=1").get_json()["requests"][0]["id"] == job["job_id"]
    assert client.get("/jobs/job-none").status_code == 404
    status = client.get("/status").get_json()
    assert status["devices"]["acikgoz_pantilt"]["state"]["pan_deg_x100"] == 300
    assert status["devices"]["acikgoz_pantilt"]["settled"] is True
    assert status["streams"][0]["connected"] is True
    assert status["cameras"]["cameradevice_swir_1"]["fps"] > 0
    spec = client.get("/openapi.json").get_json()
    # Flask writes <path:file>, OpenAPI {file}: compare without the converters.
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule)
        for r in client.application.url_map.iter_rules()
        if r.endpoint != "static"
    }
    documented = set(spec["paths"])
    assert routes <= documented, f"undocumented: {routes - documented}"
