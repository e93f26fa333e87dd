"""One vocabulary for operators, through the real command line against a live service (issue 25):
degrees with decimals on every angle option (hundredths only on the wire), camera short names and
one ``--cameras`` syntax on every command that takes cameras, ISO 8601 times and ages for
``--since``/``--until``, local ISO times in the tables, an error's reason never cut, errors that
speak of what was typed and of rigcli rather than the API, and where an export was written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from rigcli.client import EXIT_JOB_FAILED
from rigcli.common import outcome
from service.capture import CaptureService
from service.scans.run import ScanRun
from service.scans.spec import ScanPose, ScanSpec
from service.status import PoseStatus
from tests.conftest import free_port, rigcli, scaled, serve

pytestmark = pytest.mark.integration

ISO_SECOND = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\b")


def capture(url: str, *argv: str) -> dict[str, Any]:
    """``rigcli capture ... --json -q``: the job, which succeeded."""
    code, out, err = rigcli("capture", "--url", url, "--seconds", "0.5", "--json", "-q", *argv)
    assert code == 0, err
    job: dict[str, Any] = json.loads(out)
    assert job["status"] == "succeeded", job
    return job


def jobs_count(url: str) -> int:
    return len(json.loads(rigcli("jobs", "--url", url, "--json")[1])["jobs"])


def listed(url: str, *filters: str) -> tuple[int, str, str]:
    return rigcli("sessions", "--url", url, *filters)


# -- units ------------------------------------------------------------------------------------------
def test_every_angle_option_takes_degrees_and_refuses_hundredths_before_any_request(url: str) -> None:
    job = capture(url, "--pan", "10", "--tilt", "-2.5", "--cameras", "swir", "--zoom", "rgb=3")
    session_id = job["session"]["session_id"]
    assert job["results"][0]["request"]["args"] == {"pan_position_deg_x100": 1000}
    # rigcli sessions --pan-min 15 means 15 degrees (it was read as 0.15 and listed a session at 10).
    code, out, err = listed(url, "--pan-min", "15")
    assert code == 0 and session_id not in out and "0 of 0 sessions matching" in out, out + err
    code, out, err = listed(url, "--pan-min", "9.5", "--pan-max", "10.5", "--tilt-max", "-2")
    assert code == 0 and session_id in out and "1 of 1 sessions matching" in out, out + err
    # Beyond a full turn is hundredths typed as degrees: refused, speaking of what was typed.
    before = jobs_count(url)
    for argv, typed in (
        (["capture", "--pan", "4500", "--seconds", "1", "--cameras", "swir"], "--pan 4500"),
        (["capture", "--tilt", "-1000", "--seconds", "1", "--cameras", "swir"], "--tilt -1000"),
        (["sessions", "--pan-min", "1500"], "--pan-min 1500"),
        (["scan", "--pose", "4500,0", "--seconds", "1", "--cameras", "swir"], "--pose 4500,0"),
        (
            ["scan", "--pan", "0:4500:500", "--tilt", "0", "--seconds", "1", "--cameras", "swir"],
            "--pan 0:4500:500",
        ),
        (["presets", "set", "gate", "--pan", "4500", "--tilt", "0"], "--pan 4500"),
    ):
        code, out, err = rigcli(*argv, "--url", url)
        assert code == 2 and out == "", (argv, out)
        assert f"rigcli: {typed}: " in err and "looks like hundredths of a degree" in err, (argv, err)
        assert "deg_x100" not in err, err
    assert jobs_count(url) == before
    assert json.loads(rigcli("scan", "list", "--url", url, "--json")[1])["scans"] == []
    assert json.loads(rigcli("presets", "--url", url, "--json")[1])["presets"] == []
    # The zoom with its configured name: rgb's is a zoom_value.
    code, out, _ = rigcli("status", "--url", url)
    assert code == 0 and "zoom      rgb_1 zoom_value=3" in out, out


# -- names ------------------------------------------------------------------------------------------
def test_cameras_by_short_name_with_one_syntax_on_every_command(url: str) -> None:
    both = capture(url, "--cameras", "swir", "rgb")  # space separated, as scan takes them
    assert sorted(both["session"]["cameras"]) == ["cameradevice_rgb_1", "cameradevice_swir_1"]
    one = capture(url, "--cameras", "lw")  # a unique prefix
    assert list(one["session"]["cameras"]) == ["cameradevice_lwir_1"]
    code, out, err = listed(url, "--camera", "swir")
    assert code == 0 and both["session"]["session_id"] in out and "1 of 1 sessions matching" in out, out + err
    code, out, _ = listed(url, "--camera", "lwir")
    assert code == 0 and one["session"]["session_id"] in out and "1 of 1 sessions matching" in out, out
    code, _, err = listed(url, "--camera", "ir")
    assert code == 2 and "matches several cameras" in err, err
    code, _, err = rigcli("capture", "--url", url, "--seconds", "1", "--cameras", "swir", "sw")
    assert code == 2 and "more than once" in err, err
    code, out, err = rigcli(
        "scan", "--url", url, "--pose", "0,0", "--seconds", "0.5", "--cameras", "swir,rgb", "--json", "-q"
    )
    assert code == 0, err
    session_id = json.loads(out)["poses"][0]["session_id"]
    session = json.loads(rigcli("session", session_id, "--url", url, "--json")[1])
    assert sorted(session["cameras"]) == ["cameradevice_rgb_1", "cameradevice_swir_1"]


def test_event_takes_cameras_like_capture(start_service: Callable[..., CaptureService]) -> None:
    service = start_service("mqtt", events={"enabled": True, "pre_max_s": 2, "post_default_s": 0.5})
    with serve(service) as url:
        time.sleep(scaled(1.0))  # the ring fills
        code, out, err = rigcli(
            "event", "--url", url, "--pre", "0.3", "--post", "0.3", "--cameras", "lwir", "rgb", "--json", "-q"
        )
    assert code in (0, 1), err
    event = json.loads(out)
    assert sorted(event["frames"]) == ["cameradevice_lwir_1", "cameradevice_rgb_1"], event


# -- times ------------------------------------------------------------------------------------------
def test_since_and_until_take_local_iso_times_and_ages_and_tables_show_local_iso(url: str) -> None:
    job = capture(url, "--cameras", "swir")
    session_id, started = job["session"]["session_id"], job["session"]["record_started_at"]
    minute_before = dt.datetime.fromtimestamp(started - 60).isoformat(timespec="minutes")  # local, no zone
    minute_after = dt.datetime.fromtimestamp(started + 60).isoformat(timespec="minutes")
    tomorrow = dt.date.fromtimestamp(started + 86400).isoformat()
    for filters, found in (
        (["--since", "2h"], True),
        (["--since", "30m", "--until", "1m"], False),
        (["--since", minute_before], True),
        (["--since", minute_after], False),
        (["--until", minute_before], False),
        (["--since", minute_before, "--until", minute_after], True),
        (["--since", tomorrow], False),
        (["--since", f"{started - 1:.3f}"], True),  # epoch seconds still work
    ):
        code, out, err = listed(url, *filters)
        assert code == 0 and (session_id in out) is found, (filters, out, err)
    code, out, err = listed(url, "--since", "yesterday")
    assert code == 2 and "--since yesterday" in err and "ISO 8601" in err and "2h" in err, err
    # The tables show local ISO 8601 times.
    local = dt.datetime.fromtimestamp(started).isoformat(timespec="seconds")[:16]
    code, out, _ = listed(url)
    row = next(line for line in out.splitlines() if line.startswith(session_id))
    assert ISO_SECOND.search(row) and local in row, row
    for command in ("jobs", "history"):
        code, out, _ = rigcli(command, "--url", url)
        assert code == 0 and ISO_SECOND.search(out.splitlines()[1]), out


# -- messages ---------------------------------------------------------------------------------------
def test_a_jobs_error_is_shown_whole_in_the_tables(url: str) -> None:
    # A command id far from every configured one is passed through; the device refuses it.
    reboot: dict[str, Any] = {
        "target_id": "entity",
        "device_id": "acikgoz_pantilt",
        "command_id": "reboot_now",
        "args": {},
    }
    answer = requests.post(
        f"{url}/process-request", json={"requests": [reboot]}, params={"wait": "true"}, timeout=60
    )
    job_id = answer.json()["job_id"]
    job = json.loads(rigcli("jobs", "--url", url, "--json")[1])["jobs"][0]
    assert job["job_id"] == job_id and job["status"] == "failed"
    message = job["error"]["message"]
    assert len(message) > 70 and message.endswith("unknown command"), message
    for command in ("jobs", "history"):
        code, out, _ = rigcli(command, "--url", url)
        assert code == 0 and f"error: {message}" in out, (command, out)
    # A refused batch: the reason and its problems, whole, under the row.
    typo = {**reboot, "command_id": "set_pan_positon_degree", "args": {"pan_position_deg_x100": 0}}
    assert requests.post(f"{url}/process-request", json={"requests": [typo]}, timeout=30).status_code == 400
    code, out, _ = rigcli("history", "--url", url)
    assert "did you mean 'set_pan_position_degree'?" in out, out


def test_errors_speak_of_rigcli_and_say_how_to_start_the_service(url: str) -> None:
    code, _, err = rigcli("scan", "--url", url, "--preset", "nowhere", "--seconds", "1", "--cameras", "swir")
    assert code == 2 and "unknown preset 'nowhere'; rigcli presets lists them" in err, err
    assert "GET /presets" not in err
    code, out, err = rigcli("status", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert code == 3 and out == "" and "Connection refused" in err
    assert "python application.py --simulate" in err and "rigcapture" in err, err


def test_export_says_where_it_wrote(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = capture(url, "--cameras", "lwir")["session"]["session_id"]
    monkeypatch.chdir(tmp_path)
    code, out, err = rigcli("export", session_id, "--format", "zip", "--url", url)
    assert code == 0, err
    where = tmp_path.resolve() / f"{session_id}.zip"
    assert where.is_file() and out.startswith(f"wrote {where} ("), out
    code, out, err = rigcli("export", session_id, "--format", "zip", "-o", "take.zip", "--url", url, "--json")
    assert code == 0 and json.loads(out)["file"] == str(tmp_path.resolve() / "take.zip"), err


def test_a_failed_scan_names_its_poses_from_1() -> None:
    # The service's message counts poses from 1, as rigcli and the dashboard show them; the indices on
    # the wire stay the poses' own (from 0). rigcli prints the message as the service wrote it.
    spec = ScanSpec(cameras=("rgb",), duration_s=1.0, poses=tuple(ScanPose(i, 0, 0) for i in range(3)))
    run = ScanRun.new(spec, {})
    run.poses[1].status = PoseStatus.DONE.value
    status, error = run.outcome()
    assert status == "failed" and error is not None and error["pose_indices"] == [0, 2]
    assert error["message"] == "2 of 3 poses not done (pose 1, 3)"
    err = io.StringIO()
    assert outcome("scan", {"status": status, "error": error}, err) == EXIT_JOB_FAILED
    assert err.getvalue() == "rigcli: scan failed: 2 of 3 poses not done (pose 1, 3)\n"
