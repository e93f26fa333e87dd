"""``python -m rigcli`` against the service on a real HTTP server on loopback (the simulated rig
behind it): exit codes, ``--json``, the summary table and the progress lines.
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from rigcli.cli import storage_lines
from rigcli.progress import JobProgress, ScanProgress
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import free_port, rigcli, scaled, serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


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
    assert any(line.startswith("window    20") and " to " in line for line in lines), out
    header = lines.index(next(line for line in lines if line.startswith("camera ")))
    assert lines[header].split()[:4] == ["camera", "frames", "rejected", "time"], out
    rows = {r.split()[0]: r.split()[1:] for r in lines[header + 1 : header + 4]}
    assert set(rows) == {"cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1"}
    assert all(int(cells[0]) > 0 and cells[1] == "0" for cells in rows.values()), rows

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

    # One session in detail: its window, and per camera how its capture times were known.
    code, out, err = rigcli("session", session_id, "--url", url)
    assert code == 0, err
    assert out.startswith(f"session   {session_id}  complete") and "\nwindow    " in out, out
    manifest = json.loads((Path(path) / "session.json").read_text())
    for cam, record in manifest["cameras"].items():
        row = next(line for line in out.splitlines() if line.startswith(cam))
        assert str(record["frame_count"]) in row
        for source in record.get("time_sources") or {}:
            assert source in row, (row, record["time_sources"])
    code, out, _ = rigcli("session", session_id, "--url", url, "--json")
    assert code == 0 and json.loads(out)["session_id"] == session_id
    code, _, err = rigcli("session", "20990101-000000-000", "--url", url)
    assert code == 2 and "no session" in err

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
    code, out, err = rigcli("capture", "--url", url, "--seconds", "9999", "--cameras", "swir")
    assert code == 2 and out == ""
    assert "400 invalid batch" in err and "duration_second" in err and "above the maximum" in err
    code, out, err = rigcli("capture", "--url", url, "--seconds", "9999", "--cameras", "swir", "--json")
    assert code == 2 and json.loads(out)["details"][0]["field"] == "args.duration_second"
    # Checked before anything is sent: an angle beyond the rig's range is refused in degrees.
    code, out, err = rigcli("capture", "--url", url, "--tilt", "-100", "--seconds", "1", "--cameras", "swir")
    assert code == 2 and out == "" and "--tilt -100: -100 degrees is beyond the rig's tilt range" in err
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


# -- scan, presets, schedules ----------------------------------------------------------------------
def test_scan_follows_a_grid_pose_by_pose_and_prints_the_table(url: str) -> None:
    code, out, err = rigcli(
        "scan", "--url", url, "--pan", "0:10:10", "--tilt", "-5", "--seconds", "1", "--cameras", "swir",
        "--label", "cli grid",
    )  # fmt: skip
    assert code == 0, err
    # Progress on stderr: each pose's status as it changes, with the pose's target, then the end.
    # Poses are counted from 1, as the progress counter counts them.
    assert "pose 1 (pan 0.00 tilt -5.00 deg) running" in err, err
    assert "pose 2 (pan 10.00 tilt -5.00 deg) running" in err, err
    done = [line for line in err.splitlines() if ") done: settled in " in line]
    assert [line.split()[1] for line in done] == ["pose", "pose"] and "[2/2]" in done[-1], err
    assert err.splitlines()[-1].startswith("[2/2] scan scan-") and "succeeded" in err.splitlines()[-1]
    # The table on stdout: every pose done, with its session and settle time.
    lines = out.splitlines()
    scan_id = lines[0].split()[1]
    assert (
        lines[0].endswith("succeeded") and "label     cli grid" in lines and "poses     2 of 2 done" in lines
    )
    header = next(i for i, line in enumerate(lines) if line.startswith("pose "))
    assert lines[header].split() == ["pose", "target", "status", "tries", "session", "settle"]
    rows = lines[header + 1 : header + 3]
    assert ["pan 0.00 tilt -5.00 deg" in rows[0], "pan 10.00 tilt -5.00 deg" in rows[1]] == [True, True]
    assert [row.split()[0] for row in rows] == ["1", "2"], rows
    for row in rows:
        cells = row.split()
        assert cells[-5:-3] == ["done", "1"] and cells[-1] == "s" and float(cells[-2]) >= 0, row

    # The same scan from the other commands.
    code, out, _ = rigcli("scan", "status", scan_id, "--url", url, "--json")
    scan = json.loads(out)
    assert code == 0 and scan["status"] == "succeeded" and scan["progress"] == {"done": 2, "total": 2}
    assert [p["target"]["pan_deg_x100"] for p in scan["poses"]] == [0, 1000]
    assert all(p["session_id"] and p["settle"] for p in scan["poses"])
    code, out, _ = rigcli("--url", url, "scan", "list")
    assert code == 0 and scan_id in out and "2/2" in out and "cli grid" in out
    # Nothing left to resume or cancel: the service says why (409), exit 2.
    code, _, err = rigcli("scan", "resume", scan_id, "--url", url)
    assert code == 2 and "nothing to resume" in err
    code, _, err = rigcli("scan", "cancel", scan_id, "--url", url)
    assert code == 2 and "already succeeded" in err
    code, _, err = rigcli("scan", "status", "scan-20000101-000000-000000", "--url", url)
    assert code == 2 and "no scan" in err


def test_a_bad_scan_plan_exits_2_naming_the_fields(url: str) -> None:
    code, out, err = rigcli(
        "scan", "--url", url, "--pan", "0:10:0", "--tilt", "0:-10:-10", "--seconds", "1", "--cameras", "swir"
    )
    assert code == 2 and out == "", err
    assert "400 invalid scan" in err
    assert "  - grid.pan_deg_x100.step: must be greater than 0" in err
    assert "  - grid.tilt_deg_x100.step:" in err
    code, out, err = rigcli(
        "scan", "--url", url, "--pan", "0:10:5", "--tilt", "0:-100:10", "--seconds", "1", "--cameras", "swir"
    )
    assert code == 2 and "--tilt 0:-100:10: -100 degrees is beyond the rig's tilt range" in err, err
    code, _, err = rigcli(
        "scan", "--url", url, "--pose", "0,0", "--preset", "nowhere", "--seconds", "1", "--cameras", "swir"
    )
    assert code == 2 and "  - poses[1].preset: unknown preset 'nowhere'" in err, err
    assert "rigcli presets lists them" in err and "GET /presets" not in err, err
    # Checked before anything is sent.
    for argv, message in (
        (["--pan", "0:10", "--tilt", "0"], "write FROM:TO:STEP"),
        (["--pan", "0:10:5"], "a grid needs --pan and --tilt"),
        (["--pan", "0:10:5", "--tilt", "0", "--pose", "1,1"], "not both"),
        (["--pose", "1"], "write PAN,TILT"),
        ([], "say where"),
    ):
        code, _, err = rigcli("scan", "--url", url, "--seconds", "1", "--cameras", "swir", *argv)
        assert code == 2 and message in err, (argv, err)
    code, _, err = rigcli("scan", "--url", url, "--pose", "1,1", "--cameras", "swir")
    assert code == 2 and "--seconds" in err
    assert json.loads(rigcli("scan", "list", "--url", url, "--json")[1]) == {"scans": []}


def test_ctrl_c_while_following_a_scan_cancels_it(url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rigcli", "scan", "--url", url, "--pose", "0,0", "--pose", "5,0",
         "--seconds", "2", "--cameras", "swir"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    watchdog = threading.Timer(scaled(60), proc.kill)  # a hung client fails the test, not the run
    watchdog.start()
    seen = []
    try:
        for line in proc.stderr:  # wait until the first pose runs
            seen.append(line)
            if "pose 1 (" in line and "running" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=scaled(60))
    finally:
        watchdog.cancel()
        proc.kill()
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "Ctrl-C: cancelling scan scan-" in err and "cancel requested" in err
    assert out.splitlines()[0].endswith("cancelled"), out
    assert "skipped" in out and "scan resume" in err


def test_scan_no_wait_cancel_then_resume(url: str) -> None:
    code, out, err = rigcli(
        "scan",
        "--url",
        url,
        "--pose",
        "0,0",
        "--pose",
        "5,0",
        "--seconds",
        "1",
        "--cameras",
        "swir",
        "--no-wait",
    )
    assert code == 0 and err == "", err
    scan_id = out.strip()
    code, out, err = rigcli("scan", "cancel", scan_id, "--url", url)
    assert code == 0 and out.startswith(f"cancel requested: scan {scan_id} ("), err
    deadline = time.monotonic() + scaled(60)
    while (scan := json.loads(rigcli("scan", "status", scan_id, "--url", url, "--json")[1]))["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, scan
        time.sleep(0.2)
    assert scan["status"] == "cancelled" and scan["progress"]["done"] < 2
    code, out, err = rigcli("scan", "resume", scan_id, "--url", url)
    assert code == 0, err
    assert out.splitlines()[0] == f"scan      {scan_id}  succeeded" and "poses     2 of 2 done" in out
    assert "pose 2 (pan 5.00 tilt 0.00 deg) done: settled in " in err


def test_presets_set_list_go_delete(url: str) -> None:
    code, out, err = rigcli("presets", "--url", url)
    assert code == 0 and out.startswith("no presets"), err
    code, out, err = rigcli(
        "presets", "set", "gate", "--url", url, "--pan", "-20", "--tilt", "5.5", "--zoom", "swir=200"
    )
    assert code == 0 and "preset gate created" in out, err
    code, out, _ = rigcli("presets", "show", "gate", "--url", url, "--json")
    preset = json.loads(out)
    assert (preset["pan_deg_x100"], preset["tilt_deg_x100"], preset["zoom"]) == (
        -2000,
        550,
        {"cameradevice_swir_1": 200},
    )
    code, out, _ = rigcli("presets", "list", "--url", url)
    row = next(line for line in out.splitlines() if line.startswith("gate"))
    # The zoom with its configured name: swir's zoom is a zoom_step.
    assert code == 0 and "-20.00 deg" in row and "5.50 deg" in row and "swir_1 zoom_step=200" in row
    code, out, err = rigcli("presets", "go", "gate", "--url", url)
    assert code == 0, err
    assert "at preset gate: pan -20.00 deg, tilt 5.50 deg" in out and "succeeded" in err
    code, out, _ = rigcli("status", "--url", url, "--json")
    assert json.loads(out)["pose"]["pan_deg_x100"] == -2000
    code, out, err = rigcli("presets", "save", "here", "--url", url)
    assert code == 0 and "preset here created" in out and "-20.00 deg" in out, err
    # Refused: a pan beyond the limits, an unknown preset; exit 2 naming the field.
    code, _, err = rigcli("presets", "set", "far", "--url", url, "--pan", "200", "--tilt", "0")
    assert code == 2 and "--pan 200: 200 degrees is beyond the rig's pan range, -180 to 180 degrees" in err
    code, _, err = rigcli("presets", "go", "nowhere", "--url", url)
    assert code == 2 and "requests[0].args.preset" in err
    for name in ("gate", "here"):
        code, out, _ = rigcli("presets", "delete", name, "--url", url)
        assert code == 0 and f"preset {name} deleted" in out
    code, _, err = rigcli("presets", "show", "gate", "--url", url)
    assert code == 2 and "no preset 'gate'" in err
    assert json.loads(rigcli("presets", "--url", url, "--json")[1])["presets"] == []


def test_schedules_add_list_delete(url: str, tmp_path: Path) -> None:
    scan = {
        "cameras": ["cameradevice_swir_1"],
        "duration_second": 0.5,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}],
    }
    (tmp_path / "scan.json").write_text(json.dumps(scan))
    code, out, err = rigcli(
        "schedules", "add", "--url", url, "--every", "3600", "--scan-file", str(tmp_path / "scan.json"),
        "--label", "hourly",
    )  # fmt: skip
    assert code == 0 and out.startswith("schedule ") and "added; next run " in out and "(in " in out, err
    schedule_id = out.split()[1]
    code, out, _ = rigcli("schedules", "--url", url)
    row = next(line for line in out.splitlines() if line.startswith(schedule_id))
    assert code == 0 and "hourly" in row and "scan" in row and "every 3600 s" in row and "never" in row
    listing = json.loads(rigcli("schedules", "list", "--url", url, "--json")[1])["schedules"]
    assert [(s["schedule_id"], s["kind"], s["every_s"]) for s in listing] == [(schedule_id, "scan", 3600)]
    code, out, _ = rigcli("schedules", "show", schedule_id, "--url", url)
    assert code == 0 and "when      every 3600 s" in out and "last run  never" in out
    assert json.loads(out.split("request   ", 1)[1]) == scan
    # A bad file is refused before anything is sent; a bad schedule by the service.
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = rigcli(
        "schedules", "add", "--url", url, "--cron", "*/5 * * * *", "--batch-file", str(tmp_path / "bad.json")
    )
    assert code == 2 and "not JSON" in err
    code, _, err = rigcli(
        "schedules", "add", "--url", url, "--cron", "not a cron", "--scan-file", str(tmp_path / "scan.json")
    )
    assert code == 2 and "cron" in err, err
    code, _, err = rigcli("schedules", "add", "--url", url, "--scan-file", str(tmp_path / "scan.json"))
    assert code == 2 and "--every" in err
    code, out, _ = rigcli("schedules", "delete", schedule_id, "--url", url)
    assert code == 0 and f"schedule {schedule_id} deleted" in out
    assert json.loads(rigcli("schedules", "--url", url, "--json")[1])["schedules"] == []
    code, _, err = rigcli("schedules", "delete", schedule_id, "--url", url)
    assert code == 2, err


def test_scan_progress_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ScanProgress(stream)
    poses = [
        {"index": 0, "status": "running", "target": {"pan_deg_x100": -1000, "tilt_deg_x100": 0}},
        {
            "index": 1,
            "status": "pending",
            "target": {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {"x": 2}},
        },
    ]
    scan = {"scan_id": "scan-1", "status": "running", "progress": {"done": 0, "total": 2}, "poses": poses}
    bar.update(scan)
    assert bar.line(scan).startswith(
        "[0/2] [------------------------]  pose 1 running: pan -10.00 tilt 0.00 deg ("
    )
    poses[0].update(status="done", session_id="S0", settle={"devices": {"pt": {"time_to_settle_s": 0.42}}})
    poses[1].update(status="failed", error={"message": "did not settle"})
    scan.update(status="failed", progress={"done": 1, "total": 2})
    bar.update(scan)
    bar.close()
    text = stream.getvalue()
    assert "[0/2] pose 1 (pan -10.00 tilt 0.00 deg) running  (+" in text
    assert "[1/2] pose 1 (pan -10.00 tilt 0.00 deg) done: settled in 0.42 s, session S0  (+" in text
    assert "[1/2] pose 2 (pan 0.00 tilt 0.00 deg zoom x=2) failed: did not settle  (+" in text
    assert text.endswith("\r[1/2] [############------------]  scan failed\n")


def test_status_shows_the_disk_sessions_the_upload_column_and_export_writes_a_zip(
    url: str, tmp_path: Path
) -> None:
    code, out, err = rigcli("capture", "--url", url, "--seconds", "0.5", "--cameras", "lwir", "-q")
    assert code == 0, err
    session_id = next(line.split()[1] for line in out.splitlines() if line.startswith("session "))
    code, out, _ = rigcli("status", "--url", url)
    assert code == 0
    disk = next(line for line in out.splitlines() if line.startswith("disk "))
    assert re.search(r"\d+ MB free of \d+ MB, reserve [\d.]+ MB$", disk), disk
    assert "uploads " not in out  # no object store configured
    code, out, _ = rigcli("sessions", "--url", url)
    assert code == 0
    header, row = out.splitlines()[0], next(line for line in out.splitlines() if session_id in line)
    assert header.split()[-1] == "upload" and row.split()[-1] == "-", out
    target = tmp_path / "session.zip"
    code, out, err = rigcli("export", session_id, "--format", "zip", "-o", str(target), "--url", url)
    assert code == 0, err
    with zipfile.ZipFile(target) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
    assert any(n.endswith("session.json") for n in names) and any("cameradevice_lwir_1/" in n for n in names)


def test_status_lines_for_a_low_disk_and_the_upload_queue() -> None:
    st = {
        "disk": {
            "folder": "/data",
            "free_mb": 900.4,
            "total_mb": 100000.0,
            "min_free_mb": 1000,
            "warning": "/data has 900.4 MB free, below the 1000 MB reserve",
        },
        "uploads": {
            "enabled": True,
            "target": "s3://bucket/rig/",
            "activity": "waiting",
            "sessions_pending": 3,
            "scans_pending": 1,
            "bytes_pending": 2_500_000_000,
            "rate_mb_s": 1.5,
            "last_error": {"message": "the store cannot be reached", "item": "S1", "kind": "session"},
        },
    }
    assert storage_lines(st) == [
        "disk      /data: 900 MB free of 100000 MB, reserve 1000 MB",
        "WARNING   /data has 900.4 MB free, below the 1000 MB reserve",
        "uploads   s3://bucket/rig/ waiting: 3 sessions and 1 scans pending (2.50 GB), 1.5 MB/s",
        "upload error  S1: the store cannot be reached",
    ]
    assert storage_lines({"uploads": {"enabled": False}}) == []


def test_a_download_shows_its_bytes_and_rate_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from rigcli.progress import ByteProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = iter([0.0, 1.0, 1.1, 2.0])
    monkeypatch.setattr("rigcli.progress.time.monotonic", lambda: next(clock, 9.0))
    tty = Tty()
    shown = ByteProgress(tty, "downloading take1", total=4_000_000)
    shown.update(2_000_000)  # at 1.0 s
    shown.update(2_500_000)  # at 1.1 s: too soon to redraw
    shown.update(4_000_000)  # at 2.0 s
    shown.close()
    text = tty.getvalue()
    assert "downloading take1: 2.0 of 4.0 MB (2.0 MB/s)" in text and "2.5" not in text
    assert "4.0 of 4.0 MB (2.0 MB/s)" in text and text.endswith("\r")
    piped = io.StringIO()
    ByteProgress(piped, "x").update(10**9)
    assert piped.getvalue() == ""
