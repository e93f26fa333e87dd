"""``python -m rigcli`` against the service on a real HTTP server on loopback (the simulated rig
behind it): exit codes, ``--json``, the summary table and the progress lines.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rigcli import main
from rigcli.progress import JobProgress
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import free_port, serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def rigcli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def url(service: CaptureService) -> Iterator[str]:
    with serve(service) as base:
        yield base


def test_capture_prints_progress_and_a_summary_then_the_lists_show_it(url: str) -> None:
    code, out, err = rigcli(
        "capture",
        "--url",
        url,
        "--pan",
        "45",
        "--tilt",
        "-10",
        "--seconds",
        "1",
        "--cameras",
        "swir,lwir,rgb",
    )
    assert code == 0, err
    # Progress on stderr, one line per phase (stderr is not a terminal here).
    phases = [line.split()[1] for line in err.splitlines() if line.startswith("[")]
    assert phases[0] in ("queued", "commanding", "settling") and phases[-1] == "done", err
    assert "recording" in phases, err
    assert "[6/6] done       [########################]  succeeded" in err
    # The summary on stdout: session path, frames and rejected per camera, duration.
    lines = out.splitlines()
    assert lines[0].startswith("job ") and lines[0].endswith("succeeded")
    session_id = next(line.split()[1] for line in lines if line.startswith("session "))
    path = next(line.split(maxsplit=1)[1] for line in lines if line.startswith("path "))
    assert Path(path).name == session_id and (Path(path) / "session.json").is_file()
    assert any(line.startswith("duration  1.00 s") for line in lines), out
    header = lines.index(next(line for line in lines if line.startswith("camera ")))
    rows = {r.split()[0]: r.split()[1:] for r in lines[header + 1 : header + 4]}
    assert set(rows) == {"cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1"}
    assert all(int(frames) > 0 and rejected == "0" for frames, rejected in rows.values()), rows

    # --json: the job's final JSON only, on stdout.
    code, out, err = rigcli("sessions", "--url", url, "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["sessions"][0]["session_id"] == session_id
    code, out, _ = rigcli("--url", url, "jobs", "--json")  # options before the command work too
    assert code == 0 and json.loads(out)["jobs"][0]["session"]["session_id"] == session_id
    code, out, _ = rigcli("history", "--url", url, "--json")
    assert code == 0 and json.loads(out)["requests"][0]["status"] == "succeeded"
    code, out, _ = rigcli("status", "--url", url, "--json")
    assert code == 0 and json.loads(out)["pose"]["pan_deg_x100"] == 4500

    # The human tables.
    code, out, _ = rigcli("status", "--url", url)
    assert code == 0 and "pan/tilt  45.00 deg / -10.00 deg  settled" in out
    assert "broker    127.0.0.1:1883 connected" in out
    code, out, _ = rigcli("sessions", "--url", url)
    assert code == 0 and session_id in out and "45.00 deg / -10.00 deg" in out
    code, out, _ = rigcli("jobs", "--url", url)
    assert code == 0 and "succeeded" in out and session_id in out
    code, out, _ = rigcli("history", "--url", url, "--limit", "5")
    assert code == 0 and "succeeded" in out


def test_capture_json_is_the_final_job(url: str) -> None:
    code, out, err = rigcli(
        "capture", "--url", url, "--seconds", "1", "--cameras", "lwir", "--zoom", "rgb=2", "--json", "-q"
    )
    assert code == 0, err
    job = json.loads(out)  # nothing but the JSON on stdout
    assert job["status"] == "succeeded" and job["phase"] == "done"
    assert [r["request"]["command_id"] for r in job["results"]] == [
        "set_zoom_value",
        "start_recording_command",
    ]
    assert job["results"][0]["request"]["args"] == {"zoom_value": 2}
    assert list(job["session"]["cameras"]) == ["cameradevice_lwir_1"]
    assert "[" not in err  # -q: no progress


def test_capture_takes_the_pan_and_tilt_commands_from_the_service(
    start_service: Callable[..., CaptureService],
) -> None:
    # A rig whose pan command has another name and argument, and which has no tilt command: the
    # batch follows GET /cameras. (The simulated rig knows only the standard names, so the job fails:
    # what matters is what the CLI sent.)
    service = start_service(
        "mqtt",
        settle={"timeout_s": 1.0},
        positioning_commands={
            "goto_pan": {"arg": "pan_deg", "field": "pan_deg_x100", "tolerance": 5, "integer": True},
        },
    )
    with serve(service) as url:
        code, _, err = rigcli("capture", "--url", url, "--tilt", "5", "--seconds", "1", "--cameras", "swir")
        assert code == 2 and "--tilt: the service has no tilt command configured" in err
        code, out, err = rigcli(
            "capture", "--url", url, "--pan", "12.5", "--seconds", "1", "--cameras", "swir", "--json", "-q"
        )
        history = json.loads(rigcli("history", "--url", url, "--json")[1])["requests"]
    job = json.loads(out)
    assert code in (0, 1), err
    sent = [r["request"] for r in job["results"]]
    assert sent[0] == {
        "target_id": "entity",
        "device_id": "acikgoz_pantilt",
        "command_id": "goto_pan",
        "args": {"pan_deg": 1250},
    }
    assert sent[-1]["command_id"] == "start_recording_command"
    assert history[0]["request"]["requests"][0] == sent[0]


def test_usage_and_refused_batches_exit_2(url: str) -> None:
    # The service refuses it (HTTP 400): its message is shown, and with --json its answer.
    code, out, err = rigcli("capture", "--url", url, "--tilt", "-100", "--seconds", "1", "--cameras", "swir")
    assert code == 2 and out == ""
    assert "400 invalid batch" in err and "tilt_position_deg_x100" in err and "out of range" in err
    code, out, err = rigcli(
        "capture", "--url", url, "--seconds", "1", "--cameras", "swir", "--json", "--pan", "999"
    )
    assert code == 2 and json.loads(out)["details"][0]["field"] == "args.pan_position_deg_x100"
    # Checked before anything is sent.
    for argv, message in (
        (["--cameras", "ir"], "matches several cameras"),
        (["--cameras", "thermal"], "no camera matches 'thermal'"),
        (["--cameras", "swir", "--zoom", "lwir=3"], "has no zoom lens"),
        (["--cameras", "swir", "--zoom", "swir=2.5"], "takes a whole zoom_step"),
        (["--cameras", "swir", "--zoom", "swir"], "write CAMERA=VALUE"),
    ):
        code, out, err = rigcli("capture", "--url", url, "--seconds", "1", *argv)
        assert code == 2 and message in err, (argv, err)
    code, _, err = rigcli("capture", "--url", url, "--seconds", "1")
    assert code == 2 and "--cameras" in err
    code, _, err = rigcli("frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = rigcli("capture", "--url", url, "--seconds", "soon", "--cameras", "swir")
    assert code == 2 and "invalid float value" in err


def test_unreachable_service_and_a_wrong_token_exit_3(
    start_service: Callable[..., CaptureService],
) -> None:
    code, out, err = rigcli("status", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert code == 3 and out == "" and "cannot reach the service" in err and "Connection refused" in err
    service = start_service("mqtt", api={"token": "s3cret"})
    with serve(service) as url:
        code, _, err = rigcli("status", "--url", url)
        assert code == 3 and "401 missing or wrong token" in err and "--token" in err
        code, _, err = rigcli("jobs", "--url", url, "--token", "wrong")
        assert code == 3
        code, out, _ = rigcli("jobs", "--url", url, "--token", "s3cret", "--json")
        assert code == 0 and json.loads(out) == {"jobs": []}


def test_a_failed_job_exits_1_with_its_error(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt", settle={"timeout_s": 1.0})
    sim.faults.never_settle = True
    with serve(service) as url:
        code, out, err = rigcli("capture", "--url", url, "--pan", "10", "--seconds", "1", "--cameras", "swir")
    assert code == 1
    assert "job failed:" in err and "acikgoz_pantilt" in err
    assert out.splitlines()[0].endswith("failed") and "session   none recorded" in out
    assert "start_recording_command to cameradevice_swir_1: failed" in out


def test_progress_line_and_module_entry_point(url: str) -> None:
    bar = JobProgress(io.StringIO(), duration_s=4.0)
    line = bar.line({"phase": "recording", "progress": {"frames": 12, "seconds_left": 1.0}})
    assert line == "[4/6] recording  [##################------]  12 frames, 1.0 s left"
    line = bar.line({"phase": "saving", "progress": {"saved": 5, "total": 20}})
    assert line == "[5/6] saving     [######------------------]  5/20 frames saved"
    result = subprocess.run(
        [sys.executable, "-m", "rigcli", "status", "--url", url, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["broker"]["connected"] is True
    helped = subprocess.run(
        [sys.executable, "-m", "rigcli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert helped.returncode == 0 and "exit codes:" in helped.stdout
