"""Bounded everything: what a request may hold, what an error answer repeats, what history keeps of a
refused request — none of it grows with what a client sends. And no request leaves a job half made."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.errors import error_body
from rigcore.checks import MAX_DETAIL_CHARS, MAX_DETAILS, MAX_ERROR_CHARS
from rigcore.config import Config
from rigcore.config_policy import ConfigRefused, Place, plan_change
from service.batches.validation import MAX_ITEMS, MAX_JSON_DEPTH, json_depth, validate_batch
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import batch, wait_job

integration = pytest.mark.integration
CFG = Config()
CAMERAS = sorted(CFG.cameras)


def nested(depth: int) -> dict[str, Any]:
    """A command passed through to the rig whose body nests arrays and objects ``depth`` deep."""
    inner: Any = 1
    for level in range(depth - 4):  # the body, requests, the command and args are the first 4 levels
        inner = [inner] if level % 2 else {"x": inner}
    command = {"target_id": "entity", "device_id": "acikgoz_lrf", "command_id": "measure_once"}
    return {"requests": [{**command, "args": {"x": inner}}]}


def cameras_batch(count: int) -> dict[str, Any]:
    cams = [f"cam_{i}" for i in range(count)]
    return {
        "requests": [
            {
                "target_id": "camera_device",
                "device_id": "cameradevice_swir_1",
                "command_id": "start_recording_command",
                "args": {"duration_second": 1, "camera_ids": cams},
            }
        ]
    }


def bad_device(name: str) -> dict[str, Any]:
    return {"target_id": "entity", "device_id": name, "command_id": "c", "args": {}}


def post_raw(client: FlaskClient, data: bytes | str, content_type: str = "application/json") -> Any:
    return client.post("/process-request?wait=false", data=data, content_type=content_type)


# -- pure: the checks themselves ---------------------------------------------------------------------
def test_depth_is_measured_without_parsing() -> None:
    assert json_depth(json.dumps(nested(MAX_JSON_DEPTH)).encode()) == MAX_JSON_DEPTH
    assert json_depth(b'{"a": "[[[[\\"[[", "b": [[]]}') == 3  # brackets in strings do not count
    assert json_depth(b"[" * 100_000) == 100_000  # unbalanced: counted, not parsed
    assert json_depth(b'{"requests": [') == 2  # a torn body is left to the parser to name


def test_every_list_is_bounded_and_unknown_names_list_the_known_once() -> None:
    problems = validate_batch({"requests": [{"args": {"values": list(range(MAX_ITEMS + 1))}}]}, CFG)
    assert problems == [
        {
            "index": 0,
            "field": "args.values",
            "message": f"{MAX_ITEMS + 1} items; at most {MAX_ITEMS} allowed",
        }
    ]
    too_many = validate_batch(cameras_batch(len(CAMERAS) + 1), CFG)
    assert len(too_many) == 1 and f"at most {len(CAMERAS)}" in too_many[0]["message"]
    unknown = validate_batch(cameras_batch(2), CFG)
    assert [p["message"] for p in unknown] == [
        f"unknown camera 'cam_0'; configured: {', '.join(CAMERAS)}",
        "unknown camera 'cam_1'",
    ]
    devices = validate_batch({"requests": [bad_device("a"), bad_device("b")]}, CFG)
    assert "known: " in devices[0]["message"] and devices[1]["message"] == "unknown device 'b'"


def test_echoed_values_are_cut() -> None:
    long = "z" * 5000
    (device,) = validate_batch({"requests": [bad_device(long)]}, CFG)
    assert device["message"].startswith("unknown device 'zzz") and "…" in device["message"]
    assert len(device["message"]) < 400
    (key,) = validate_batch({"requests": [{**bad_device("acikgoz_lrf"), long: 1}]}, CFG)
    assert key["field"] == "z" * 80 + "…" and key["message"] == "unknown key"
    pan = {
        "target_id": "entity",
        "device_id": "acikgoz_pantilt",
        "command_id": "set_pan_position_degree",
        "args": {"pan_position_deg_x100": 10**4000},
    }
    (big,) = validate_batch({"requests": [pan]}, CFG)
    assert "out of range" in big["message"] and len(big["message"]) < 200


# -- over HTTP -----------------------------------------------------------------------------------------
@integration
def test_a_body_nested_too_deep_is_refused_before_parsing_and_nothing_runs(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    resp = post_raw(client, "[" * 600 + "]" * 600)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert f"the limit is {MAX_JSON_DEPTH} levels" in error and "600 deep" in error
    resp = client.post("/process-request?wait=false", json=nested(MAX_JSON_DEPTH + 1))
    assert resp.status_code == 400 and f"{MAX_JSON_DEPTH + 1} deep" in resp.get_json()["error"]
    assert client.get("/jobs").get_json()["jobs"] == []
    assert [e["status"] for e in service.history.entries()] == ["rejected", "rejected"]
    assert sim.commands_received() == []


@integration
def test_a_body_as_deep_as_allowed_runs_to_the_end(client: FlaskClient, service: CaptureService) -> None:
    body = nested(MAX_JSON_DEPTH)
    resp = client.post("/process-request?wait=false", json=body)
    assert resp.status_code == 202, resp.get_json()
    done = wait_job(client, resp.get_json()["job_id"], 30)
    assert done["status"] in ("succeeded", "failed")  # the rig's answer decides; what matters: it ran
    entry = service.history.get(done["job_id"])
    assert entry is not None and entry["request"] == body and entry["status"] == done["status"]


@integration
def test_sixty_thousand_unknown_cameras_get_a_small_answer_and_a_small_record(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    raw = json.dumps(cameras_batch(60_000)).encode()
    assert 600_000 < len(raw) < service.config.api.max_body_bytes
    resp = post_raw(client, raw)
    assert resp.status_code == 400 and len(resp.data) < 10_000
    answer = resp.get_json()
    assert "requests[0].args.camera_ids" in answer["error"] and "nothing was executed" in answer["error"]
    entry = service.history.get(answer["history_id"])
    assert entry is not None and entry["status"] == "rejected" and "request" not in entry
    assert entry["request_bytes"] == len(raw)
    assert entry["request_sha256"] == hashlib.sha256(raw).hexdigest()
    assert entry["request_excerpt"] == raw.decode()[:2000] + "…"
    assert len(json.dumps(entry)) < 10_000
    assert service.paths.history_file.stat().st_size < 20_000
    assert sim.commands_received() == []


@integration
def test_error_details_are_capped_and_the_rest_counted(client: FlaskClient, service: CaptureService) -> None:
    body = {"requests": [bad_device(f"toaster_{i}") for i in range(100)]}
    answer = client.post("/process-request", json=body).get_json()
    assert len(answer["details"]) == MAX_DETAILS and answer["details_omitted"] == 100 - MAX_DETAILS
    assert "(and 99 more)" in answer["error"]
    assert sum("known:" in d["message"] for d in answer["details"]) == 1
    assert service.history.get(answer["history_id"])["error"]["details_omitted"] == 80  # type: ignore[index]
    one = client.post("/process-request", json={"requests": [bad_device("x")]}).get_json()
    assert "details_omitted" not in one


@integration
def test_refused_413_415_and_non_json_bodies_are_recorded_bounded(
    client: FlaskClient, service: CaptureService
) -> None:
    limit = service.config.api.max_body_bytes
    resp = post_raw(client, b'{"requests": "' + b"x" * limit + b'"}')
    assert resp.status_code == 413 and "api.max_body_bytes" in resp.get_json()["error"]
    entry = service.history.get(resp.get_json()["history_id"])
    assert entry is not None and entry["http_status"] == 413
    assert entry == {**entry, "request_bytes": limit + 16, "request_sha256": None, "request_excerpt": None}
    text = b"y" * 500_000
    resp = post_raw(client, text, "text/plain")
    assert resp.status_code == 415
    entry = service.history.get(resp.get_json()["history_id"])
    assert entry is not None and entry["request_sha256"] == hashlib.sha256(text).hexdigest()
    assert len(entry["request_excerpt"]) == 2001
    resp = post_raw(client, '{"requests": NaN}')
    assert resp.status_code == 400 and "NaN is not a JSON value" in resp.get_json()["error"]
    assert service.paths.history_file.stat().st_size < 30_000


@integration
def test_a_full_queue_refuses_with_503_and_registers_nothing(
    start_service: Callable[..., CaptureService], sim: SimRig
) -> None:
    service = start_service(api={"queue_size": 1})
    client = create_app(service).test_client()
    running = client.post("/process-request?wait=false", json=batch(0, 0, seconds=30)).get_json()
    wait_job(client, running["job_id"], 30, phase="recording")
    queued = client.post("/process-request?wait=false", json=batch(100, 0, seconds=1)).get_json()
    assert queued["status"] == "queued"
    refused = client.post("/process-request?wait=false", json=batch(200, 0, seconds=1))
    assert refused.status_code == 503 and "nothing was executed" in refused.get_json()["error"]
    listed = [j["job_id"] for j in client.get("/jobs").get_json()["jobs"]]
    assert listed == [queued["job_id"], running["job_id"]]
    assert service.history.get(refused.get_json()["history_id"])["http_status"] == 503  # type: ignore[index]
    for job_id in (queued["job_id"], running["job_id"]):
        client.delete(f"/jobs/{job_id}")
    assert wait_job(client, running["job_id"], 30)["status"] == "cancelled"


@integration
def test_a_history_that_cannot_be_written_refuses_the_batch_and_runs_nothing(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    journal = service.history.journal_path
    kept = journal.with_name("kept")
    journal.rename(kept)
    journal.mkdir()  # the journal cannot be opened: a real OSError on the history thread
    try:
        resp = client.post("/process-request?wait=false", json=batch(0, 0, seconds=1))
        assert resp.status_code == 500
        assert "history could not be written" in resp.get_json()["error"]
        assert client.get("/jobs").get_json()["jobs"] == []
    finally:
        journal.rmdir()
        kept.rename(journal)
    assert sim.commands_received() == []
    resp = client.post("/process-request?wait=false", json=batch(0, 0, seconds=0.5))
    assert resp.status_code == 202  # its place in the queue was given back


@integration
def test_history_pages_from_the_newest(client: FlaskClient) -> None:
    ids = [client.post("/process-request", json={}).get_json()["history_id"] for _ in range(5)]
    page = client.get("/history?limit=2&offset=1").get_json()
    assert [e["id"] for e in page["requests"]] == ids[2:4]
    assert page["total"] == 5 and page["next_offset"] == 3
    last = client.get(f"/history?limit=2&offset={page['next_offset']}").get_json()
    assert [e["id"] for e in last["requests"]] == ids[0:2] and last["next_offset"] is None
    assert client.get("/history?limit=100000").get_json()["limit"] == 1000


# -- every error answer and every history record, bounded (issue 21, item 5) -----------------------------
UNKNOWN_KEYS = {f"{i:02d}{'k' * 45_000}": 1 for i in range(20)}  # 20 unknown keys of 45 kB


def test_one_helper_bounds_every_error_answer() -> None:
    details = [{"index": i, "field": "f" * 50_000, "message": "m" * 50_000} for i in range(500)]
    body = error_body("e" * 1_000_000, details, host="h" * 100_000, job={"kept": "whole"})
    assert len(body["error"]) == MAX_ERROR_CHARS + 1 and body["details_omitted"] == 500 - MAX_DETAILS
    assert all(
        len(d["field"]) <= MAX_DETAIL_CHARS + 1 and len(d["message"]) <= MAX_DETAIL_CHARS + 1
        for d in body["details"]
    )
    assert len(body["host"]) == MAX_DETAIL_CHARS + 1 and body["job"] == {"kept": "whole"}
    assert len(json.dumps(body)) < 20_000
    assert "details_omitted" not in error_body("one", [{"index": None, "field": "x", "message": "y"}])


def test_put_config_echoes_unknown_keys_bounded(tmp_path: Path) -> None:
    config = Config()
    place = Place(tmp_path / "config.json", tmp_path, config.resolve(tmp_path))
    try:
        plan_change(config, {"settle": UNKNOWN_KEYS}, place)
    except ConfigRefused as exc:
        answer = error_body(str(exc), [{"index": None, **d} for d in exc.details])
    assert len(json.dumps(answer)) < 20_000 and "unknown key" in answer["error"]


@integration
def test_a_schedule_with_twenty_huge_unknown_keys_answers_small_and_records_little(
    client: FlaskClient, service: CaptureService
) -> None:
    history = service.paths.history_file
    before = history.stat().st_size if history.exists() else 0
    body = {"batch": batch(), "every_s": 60, **UNKNOWN_KEYS}
    resp = client.post("/schedules", json=body)
    assert resp.status_code == 400 and len(resp.data) < 10_000, len(resp.data)
    entry = service.history.get(resp.get_json()["history_id"])
    assert entry is not None and len(json.dumps(entry)) < 10_000
    assert history.stat().st_size - before < 20_000
    assert client.get("/schedules").get_json()["schedules"] == []


@integration
def test_put_config_with_huge_unknown_keys_answers_small(
    sim: SimRig, start_configured: Callable[..., CaptureService]
) -> None:
    client = create_app(start_configured()).test_client()
    resp = client.put("/config", json={"settle": UNKNOWN_KEYS})
    assert resp.status_code == 400 and len(resp.data) < 20_000, len(resp.data)
    assert "unknown key" in resp.get_json()["error"]


@integration
def test_a_huge_user_agent_is_clipped_in_history(client: FlaskClient, service: CaptureService) -> None:
    agent = {"User-Agent": "u" * 200_000}
    refused = client.post("/process-request", json={"requests": []}, headers=agent).get_json()
    accepted = client.post(
        "/process-request?wait=false", json=batch(0, 0, seconds=0.2), headers=agent
    ).get_json()
    for entry_id in (refused["history_id"], accepted["job_id"]):
        entry = service.history.get(entry_id)
        assert entry is not None and 0 < len(entry["client"]["user_agent"]) <= 257, entry_id
        assert len(json.dumps(entry["client"])) < 1_000
    wait_job(client, accepted["job_id"], 30)
    assert service.paths.history_file.stat().st_size < 30_000
