"""One vocabulary for operators, over the API (issue 25): an angle that is not whole hundredths of a
degree, or is out of range, is refused saying the unit and the value meant, the same way for a batch,
a preset and a scan; a command id a typo away from a configured one is refused before anything runs
("did you mean"), another unknown id is passed through and, refused by the device, its own answer
is the job's error; ``GET /sessions`` reads ISO 8601 times, ages and short camera names.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from rigcore.config import Config
from service.capture import CaptureService
from sessions.catalog_filters import FilterError, parse_time, query_from_params
from simulator.rig import SimRig
from tests.conftest import batch, scaled, wait_job

pytestmark = pytest.mark.integration

PAN = "set_pan_position_degree"
SWIR = "cameradevice_swir_1"


def command(command_id: str, device_id: str = "acikgoz_pantilt", **args: Any) -> dict[str, Any]:
    return {"target_id": "entity", "device_id": device_id, "command_id": command_id, "args": args}


def refusal(resp: Any) -> list[str]:
    assert resp.status_code == 400, resp.get_json()
    return [d["message"] for d in resp.get_json()["details"]]


# -- units ------------------------------------------------------------------------------------------
def test_an_angle_not_in_hundredths_is_refused_naming_the_unit_and_the_value_meant(
    sim: SimRig, client: FlaskClient
) -> None:
    resp = client.post("/process-request", json={"requests": [command(PAN, pan_position_deg_x100=45.5)]})
    assert refusal(resp) == [
        "45.5 looks like degrees: pan_position_deg_x100 takes hundredths of a degree, e.g. 4550"
    ]
    resp = client.post("/process-request", json={"requests": [command(PAN, pan_position_deg_x100=4500.0)]})
    assert refusal(resp) == [
        "4500.0 is not an integer: pan_position_deg_x100 takes whole hundredths of a degree, "
        "e.g. 4500 for 45°"
    ]
    resp = client.post("/process-request", json={"requests": [command(PAN, pan_position_deg_x100=450000)]})
    assert refusal(resp) == [
        "450000 is out of range [-18000, 18000]: pan_position_deg_x100 takes hundredths of a degree "
        "(-180° to 180°), so 450000 is 4500°"
    ]
    # A preset and a scan are checked by the same rule, in the same words.
    resp = client.put("/presets/gate", json={"pan_deg_x100": 45.5, "tilt_deg_x100": 0})
    assert any(m.startswith("45.5 looks like degrees: ") and "e.g. 4550" in m for m in refusal(resp))
    scan = {"cameras": [SWIR], "duration_second": 0.5, "poses": [{"pan_deg_x100": 45.5, "tilt_deg_x100": 0}]}
    assert any(
        "looks like degrees" in m and "e.g. 4550" in m for m in refusal(client.post("/scans", json=scan))
    )
    grid = {
        "pan_deg_x100": {"from": 0, "to": 45.5, "step": 1500},
        "tilt_deg_x100": {"from": 0, "to": 0, "step": 100},
        "order": "rows",
    }
    resp = client.post("/scans", json={"cameras": [SWIR], "duration_second": 0.5, "grid": grid})
    assert any("looks like degrees" in m and "e.g. 4550" in m for m in refusal(resp))
    assert sim.commands_received() == []  # refused: nothing ran


# -- mistakes caught early ----------------------------------------------------------------------------
def test_a_command_id_a_typo_away_is_refused_before_anything_runs(
    sim: SimRig, client: FlaskClient, service: CaptureService
) -> None:
    body = {"requests": [command("set_pan_positon_degree", pan_position_deg_x100=4500), *batch()["requests"]]}
    resp = client.post("/process-request", json=body)
    assert resp.status_code == 400
    detail = resp.get_json()["details"][0]
    assert detail["index"] == 0 and detail["field"] == "command_id"
    assert "did you mean 'set_pan_position_degree'?" in detail["message"], detail
    assert sim.commands_received() == [] and client.get("/jobs").get_json()["jobs"] == []
    assert service.history.entries()[-1]["status"] == "rejected"
    # The recording's id (to any device), goto_preset to the pan-tilt.
    typo = {"duration_second": 1, "camera_ids": [SWIR]}
    resp = client.post(
        "/process-request", json={"requests": [command("start_recording_comand", SWIR, **typo)]}
    )
    assert "did you mean 'start_recording_command'?" in refusal(resp)[0]
    resp = client.post("/process-request", json={"requests": [command("goto_prest", preset="gate")]})
    assert "did you mean 'goto_preset'?" in refusal(resp)[0]
    assert sim.commands_received() == []


@pytest.mark.parametrize("transport", ["mqtt", "http"])
def test_a_passed_through_command_the_device_refuses_fails_the_job_with_the_devices_words(
    transport: str, sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    client = create_app(start_service(transport)).test_client()
    resp = client.post(
        "/process-request", json={"requests": [command("reboot_now")]}, query_string={"wait": "false"}
    )
    assert resp.status_code == 202, resp.get_json()  # far from every configured id: passed through
    job = wait_job(client, resp.get_json()["job_id"], scaled(30))
    assert job["status"] == "failed"
    message = job["error"]["message"]
    assert message.startswith("command 0 (reboot_now to acikgoz_pantilt) failed: ")
    assert message.endswith(": unknown command"), message  # the device's own answer
    assert job["results"][0]["response"] == {"error": "unknown command"}


# -- times and names in GET /sessions ---------------------------------------------------------------------
def test_session_times_read_iso_8601_ages_and_epoch_seconds() -> None:
    now = 1_800_000_000.0
    local = dt.datetime(2026, 12, 6, 14, 30).astimezone().timestamp()  # the service host's zone
    assert parse_time("2026-12-06T14:30", now) == local
    assert parse_time("2026-12-06", now) == dt.datetime(2026, 12, 6).astimezone().timestamp()
    assert (
        parse_time("2026-12-06T14:30:00+00:00", now)
        == dt.datetime(2026, 12, 6, 14, 30, tzinfo=dt.UTC).timestamp()
    )
    assert parse_time("2026-12-06T14:30Z", now) == dt.datetime(2026, 12, 6, 14, 30, tzinfo=dt.UTC).timestamp()
    assert [parse_time(t, now) for t in ("30m", "2h", "3d", "1w", "45s")] == [
        now - 1800,
        now - 7200,
        now - 3 * 86400,
        now - 7 * 86400,
        now - 45,
    ]
    assert parse_time("1796515200", now) == 1796515200.0
    assert [parse_time(t, now) for t in ("yesterday", "-5", "nan", "2h ago", "")] == [None] * 5
    with pytest.raises(FilterError) as info:
        query_from_params({"since": "yesterday"})
    assert info.value.param == "since" and "ISO 8601" in str(info.value) and "2h" in str(info.value)


def test_a_short_camera_name_stands_for_the_one_id_that_holds_it() -> None:
    cameras = list(Config().cameras)
    assert query_from_params({"camera": "swir"}, cameras).camera == SWIR
    assert query_from_params({"camera": "LW"}, cameras).camera == "cameradevice_lwir_1"
    assert query_from_params({"camera": SWIR}, cameras).camera == SWIR
    assert query_from_params({"camera": "retired_cam"}, cameras).camera == "retired_cam"  # kept as given
    with pytest.raises(FilterError, match="matches several cameras"):
        query_from_params({"camera": "ir"}, cameras)


def test_get_sessions_filters_by_iso_times_ages_and_short_camera_names(
    client: FlaskClient, service: CaptureService
) -> None:
    resp = client.post(
        "/process-request", json=batch(seconds=0.5, cameras=(SWIR,)), query_string={"wait": "false"}
    )
    job = wait_job(client, resp.get_json()["job_id"], scaled(60))
    assert job["status"] == "succeeded", job
    assert service.aftercare.wait_idle(scaled(30))
    started = job["session"]["record_started_at"]
    before = dt.datetime.fromtimestamp(started - 60).isoformat(timespec="minutes")  # host-local, no zone
    after = dt.datetime.fromtimestamp(started + 60).isoformat(timespec="minutes")

    def total(**params: Any) -> int:
        resp = client.get("/sessions", query_string=params)
        assert resp.status_code == 200, resp.get_json()
        return int(resp.get_json()["total"])

    assert total(since=before) == 1 and total(since=after) == 0
    assert total(until=after) == 1 and total(until=before) == 0
    assert total(since="2h") == 1 and total(until="2h") == 0
    assert (
        total(since=str(started - 1)) == 1
        and total(since=time.strftime("%Y-%m-%d", time.localtime(started + 86400))) == 0
    )
    bad = client.get("/sessions?since=yesterday")
    assert bad.status_code == 400 and "ISO 8601" in bad.get_json()["error"]


def test_get_sessions_takes_a_short_camera_name(client: FlaskClient, service: CaptureService) -> None:
    resp = client.post(
        "/process-request", json=batch(seconds=0.5, cameras=(SWIR,)), query_string={"wait": "false"}
    )
    assert wait_job(client, resp.get_json()["job_id"], scaled(60))["status"] == "succeeded"
    assert service.aftercare.wait_idle(scaled(30))
    listed = {
        name: client.get("/sessions", query_string={"camera": name}).get_json() for name in ("swir", "rgb")
    }
    assert listed["swir"]["total"] == 1 and listed["rgb"]["total"] == 0, listed
    ambiguous = client.get("/sessions?camera=ir")
    assert ambiguous.status_code == 400 and "matches several cameras" in ambiguous.get_json()["error"]


def test_the_openapi_document_describes_the_time_forms(client: FlaskClient) -> None:
    params = {
        p["name"]: p
        for p in client.get("/openapi.json").get_json()["paths"]["/sessions"]["get"]["parameters"]
    }
    for name in ("since", "until"):
        schema = params[name]["schema"]
        assert "string" in str(schema), schema
    assert "ISO 8601" in params["since"]["description"] and "2h" in params["since"]["description"]
    assert "lwir" in params["camera"]["description"]
