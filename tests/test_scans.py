"""Scans end to end (POST /scans): real Mosquitto, the simulated rig, the service in this process.

Every pose's session is checked frame by frame against the rig's own record of where it pointed
(the helpers of test_engine_cases), and the rig's record of the commands it received shows the poses
were visited in the scan's order. A pose that cannot settle (an RGB zoom below the lens's range:
the rig's ``never_settle`` fault, on while that pose runs) fails alone with ``skip`` and ends the scan
with ``abort``; a cancel keeps the pose being recorded; a bad plan moves nothing.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from api import create_app
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import process_config, scaled
from tests.test_engine_cases import (
    RGB,
    SWIR,
    check_complete,
    check_folder,
    check_frames,
    read_manifest,
    status_info,
)

pytestmark = pytest.mark.integration


@contextmanager
def never_settles_at(sim: SimRig, service: CaptureService, index: int) -> Iterator[None]:
    """The rig's never_settle fault on while pose ``index`` of the scan runs (every attempt at it)."""
    stop = threading.Event()

    def pose_status() -> str | None:
        scans = service.scans.views()
        return scans[0]["poses"][index]["status"] if scans else None

    def watch() -> None:
        while not stop.is_set():
            sim.faults.never_settle = pose_status() == "running"
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        sim.faults.never_settle = False


def scan_client(start_service: Callable[..., CaptureService], settle_s: float = 20.0) -> FlaskClient:
    service = start_service("mqtt", settle={"timeout_s": scaled(settle_s)})
    return create_app(service).test_client()


def run_scan(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/scans?wait=true", json=body)
    scan: dict[str, Any] = resp.get_json()
    assert resp.status_code == 200, scan
    return scan


def wait_scan(
    client: FlaskClient, scan_id: str, ok: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(timeout)
    scan: dict[str, Any] = {}
    while time.monotonic() < deadline:
        scan = client.get(f"/scans/{scan_id}").get_json()
        if ok(scan):
            return scan
        time.sleep(0.05)
    raise AssertionError(f"scan {scan_id} never got there; last seen {scan}")


def moves_received(sim: SimRig) -> list[tuple[str, Any]]:
    """The positioning commands the rig received, in order: (command_id, value)."""
    out = []
    for c in sim.commands_received():
        cmd = c["command"]
        if isinstance(cmd, dict) and str(cmd.get("command_id", "")).startswith("set_"):
            out.append((cmd["command_id"], next(iter(cmd["args"].values()))))
    return out


def pose_session(pose: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    assert pose["session_id"] and pose["path"], pose
    path = Path(pose["path"])
    return path, read_manifest(path)


def test_serpentine_grid_records_every_pose_at_its_target_in_order(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    client = scan_client(start_service)
    grid = {
        "pan_deg_x100": {"from": 0, "to": 1000, "step": 500},
        "tilt_deg_x100": {"from": 0, "to": 500, "step": 500},
        "order": "serpentine",
    }
    scan = run_scan(client, {"cameras": [SWIR], "duration_second": 0.6, "grid": grid, "label": "g"})
    want = [(0, 0), (500, 0), (1000, 0), (1000, 500), (500, 500), (0, 500)]
    assert scan["status"] == "succeeded", scan
    assert scan["label"] == "g" and scan["progress"] == {"done": 6, "total": 6}
    got = [(p["target"]["pan_deg_x100"], p["target"]["tilt_deg_x100"]) for p in scan["poses"]]
    assert got == want
    expected_moves = []
    for pan, tilt in want:
        expected_moves += [("set_pan_position_degree", pan), ("set_tilt_position_degree", tilt)]
    assert moves_received(sim) == expected_moves
    for pose, (pan, tilt) in zip(scan["poses"], want, strict=True):
        assert pose["status"] == "done" and pose["error"] is None, pose
        path, manifest = pose_session(pose)
        assert manifest["scan_id"] == scan["scan_id"] and manifest["pose_index"] == pose["index"]
        assert pose["settle"] == manifest["settle"] and pose["settle"]["devices"], pose
        check_complete(sim, manifest)
        check_frames(sim, path, manifest, (SWIR,), pan, tilt)
        check_folder(client.application.extensions["capture"], path, manifest)
    service: CaptureService = client.application.extensions["capture"]
    on_disk = json.loads((service.paths.images_data_dir / "scans" / f"{scan['scan_id']}.json").read_text())
    assert on_disk["format_version"] == 1 and on_disk["status"] == "succeeded"
    assert [p["session_id"] for p in on_disk["poses"]] == [p["session_id"] for p in scan["poses"]]
    listed = client.get("/scans").get_json()["scans"]
    assert [s["scan_id"] for s in listed] == [scan["scan_id"]]
    assert client.post(f"/scans/{scan['scan_id']}/resume").status_code == 409  # every pose done
    xml = client.get(f"/scans/{scan['scan_id']}/papywizard.xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    picts = ET.fromstring(xml.data).findall("./shoot/pict")
    shots = [
        (float(p.find("position").attrib["yaw"]), float(p.find("position").attrib["pitch"])) for p in picts
    ]  # type: ignore[union-attr]
    assert shots == [(pan / 100, tilt / 100) for pan, tilt in want]


def three_poses(failure: str) -> dict[str, Any]:
    return {
        "cameras": [RGB],
        "duration_second": 0.5,
        "on_pose_failure": failure,
        "poses": [{"pan_deg_x100": p, "tilt_deg_x100": 0} for p in (0, 300, 600)],
    }


def test_a_pose_that_never_settles_fails_alone_with_skip(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    client = scan_client(start_service, settle_s=2.0)
    with never_settles_at(sim, client.application.extensions["capture"], 1):
        scan = run_scan(client, three_poses("skip"))
    assert [p["status"] for p in scan["poses"]] == ["done", "failed", "done"], scan
    assert scan["status"] == "failed" and scan["error"]["pose_indices"] == [1], scan
    assert scan["poses"][1]["error"]["type"] == "SettleTimeout", scan["poses"][1]
    assert scan["poses"][1]["session_id"] is None
    for pose, pan in ((scan["poses"][0], 0), (scan["poses"][2], 600)):
        path, manifest = pose_session(pose)
        check_frames(sim, path, manifest, (RGB,), pan, 0)
    # Resume runs the pose not done, under the same scan id; the others keep their sessions.
    moves_before = len(moves_received(sim))
    resp = client.post(f"/scans/{scan['scan_id']}/resume?wait=true")
    again = resp.get_json()
    assert resp.status_code == 200 and again["scan_id"] == scan["scan_id"], again
    assert again["status"] == "succeeded" and again["progress"] == {"done": 3, "total": 3}, again["poses"][1][
        "error"
    ]
    assert [p["session_id"] for p in again["poses"][::2]] == [p["session_id"] for p in scan["poses"][::2]]
    assert moves_received(sim)[moves_before:] == [
        ("set_pan_position_degree", 300),
        ("set_tilt_position_degree", 0),
    ]
    path, manifest = pose_session(again["poses"][1])
    assert manifest["pose_index"] == 1 and manifest["scan_id"] == scan["scan_id"]
    check_frames(sim, path, manifest, (RGB,), 300, 0)
    assert client.post(f"/scans/{scan['scan_id']}/resume").status_code == 409


def test_a_pose_that_never_settles_ends_the_scan_with_abort(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    client = scan_client(start_service, settle_s=2.0)
    with never_settles_at(sim, client.application.extensions["capture"], 1):
        scan = run_scan(client, {**three_poses("abort"), "retries": 1})
    assert scan["status"] == "failed", scan
    assert [p["status"] for p in scan["poses"]] == ["done", "failed", "skipped"], scan
    assert scan["poses"][1]["attempts"] == 2, scan["poses"][1]
    assert ("set_pan_position_degree", 600) not in moves_received(sim)


def test_cancel_mid_scan_keeps_the_pose_being_recorded(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    client = scan_client(start_service)
    poses = [{"pan_deg_x100": p, "tilt_deg_x100": 0} for p in (0, 300, 600)]
    resp = client.post("/scans", json={"cameras": [SWIR], "duration_second": 2.0, "poses": poses})
    assert resp.status_code == 202, resp.get_json()
    scan_id = resp.get_json()["scan_id"]
    service: CaptureService = client.application.extensions["capture"]

    def recording_pose_1(scan: dict[str, Any]) -> bool:
        job = service.job_view(scan["job_id"]) or {}
        recording = scan["poses"][1]["status"] == "running" and job.get("phase") == "recording"
        progress = job.get("progress") or {}  # seconds_left: this recording's window is open
        return bool(recording and "seconds_left" in progress and progress.get("frames", 0) >= 3)

    wait_scan(client, scan_id, recording_pose_1, 30)
    assert client.delete(f"/scans/{scan_id}").status_code == 202
    scan = wait_scan(client, scan_id, lambda s: s["status"] not in ("queued", "running"), 30)
    assert scan["status"] == "cancelled", scan
    assert [p["status"] for p in scan["poses"]] == ["done", "failed", "skipped"], scan
    _path, manifest = pose_session(scan["poses"][1])
    assert manifest["status"] == "cancelled", status_info(manifest)
    assert manifest["cameras"][SWIR]["frame_count"] > 0, manifest["cameras"][SWIR]
    assert client.delete(f"/scans/{scan_id}").status_code == 409


def test_a_bad_plan_is_refused_whole_and_nothing_moves(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    client = scan_client(start_service)
    body = {
        "cameras": [SWIR],
        "duration_second": 0.5,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}, {"pan_deg_x100": 99999, "tilt_deg_x100": 0}],
    }
    resp = client.post("/scans", json=body)
    err = resp.get_json()
    assert resp.status_code == 400, err
    assert "poses[1].pan_deg_x100" in err["error"] and "nothing was executed" in err["error"]
    assert err["details"][0]["index"] == 1 and err["details"][0]["field"] == "poses[1].pan_deg_x100"
    for bad in ({**body, "poses": []}, {**body, "grid": {}}, {**body, "on_pose_failure": "x"}, [1]):
        assert client.post("/scans", json=bad).status_code == 400, bad
    time.sleep(scaled(0.3))
    assert client.get("/jobs").get_json()["jobs"] == []
    assert client.get("/scans").get_json()["scans"] == []
    assert sim.commands_received() == []
    assert client.get("/scans/scan-20000101-000000-abcdef").status_code == 404
    assert client.get("/scans/..%2Fhistory").status_code == 404


def test_a_scan_running_when_the_service_died_is_interrupted_at_the_next_start(
    sim: SimRig, start_service: Callable[..., CaptureService], tmp_path: Path
) -> None:
    scan_id = "scan-20250101-120000-abcdef"
    folder = tmp_path / "images_data" / "scans"
    folder.mkdir(parents=True)
    target = {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": {}}
    poses = [
        {"index": i, "target": target, "status": s} for i, s in enumerate(("done", "running", "pending"))
    ]
    left = {"format_version": 1, "scan_id": scan_id, "status": "running", "created_at": 1.0, "poses": poses}
    (folder / f"{scan_id}.json").write_text(json.dumps(left))
    client = scan_client(start_service)
    scan = client.get(f"/scans/{scan_id}").get_json()
    assert scan["status"] == "interrupted" and scan["error"]["type"] == "Interrupted", scan
    assert [p["status"] for p in scan["poses"]] == ["done", "failed", "skipped"]
    assert [s["scan_id"] for s in client.get("/scans").get_json()["scans"]] == [scan_id]


def test_kill_9_mid_scan_then_resume_keeps_done_poses_and_gives_each_pose_one_session(
    sim: SimRig, prefix: str, tmp_path: Path
) -> None:
    """The service process killed with SIGKILL while pose 2 of 4 records; restarted, the scan is
    ``interrupted``; resumed, it runs only the poses not done, under the same scan id."""
    cfg = process_config(tmp_path / "config.json", sim, prefix)
    url = cfg.url
    poses = [{"pan_deg_x100": 1000 * i, "tilt_deg_x100": -200 * i} for i in range(4)]
    body = {"cameras": [SWIR], "duration_second": 1.5, "poses": poses, "label": "killed"}
    with cfg.process() as proc:
        scan_id = requests.post(f"{url}/scans", json=body, timeout=10).json()["scan_id"]
        deadline = time.monotonic() + scaled(60)
        while True:
            scan = requests.get(f"{url}/scans/{scan_id}", timeout=5).json()
            job = requests.get(f"{url}/jobs/{scan['job_id']}", timeout=5).json()
            if scan["poses"][2]["status"] == "running" and job["phase"] == "recording":
                break
            assert time.monotonic() < deadline, scan
            time.sleep(0.05)
        time.sleep(0.4)  # well into pose 2's recording
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    before = {p["index"]: p["session_id"] for p in scan["poses"] if p["status"] == "done"}
    assert sorted(before) == [0, 1], scan

    with cfg.process():
        left = requests.get(f"{url}/scans/{scan_id}", timeout=5).json()
        assert left["status"] == "interrupted", left
        assert [p["status"] for p in left["poses"]] == ["done", "done", "failed", "skipped"], left
        cut = left["poses"][2]  # points at the partial session it was recording when killed
        assert cut["session_id"] and Path(cut["path"]).name == cut["session_id"], cut
        resp = requests.post(f"{url}/scans/{scan_id}/resume?wait=true", timeout=scaled(120))
        resumed = resp.json()
        assert resp.status_code == 200 and resumed["status"] == "succeeded", resumed
        assert resumed["scan_id"] == scan_id

    assert [p["status"] for p in resumed["poses"]] == ["done"] * 4
    for index, session_id in before.items():  # the poses done before keep their sessions
        assert resumed["poses"][index]["session_id"] == session_id
    # Every complete session of this scan on disk belongs to one pose, and each pose has exactly one;
    # the pose killed mid-recording also left its partial session, recovered as incomplete.
    by_pose: dict[int, list[str]] = {}
    incomplete = []
    for manifest_path in (tmp_path / "save_images").glob("*/session.json"):
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("scan_id") != scan_id:
            continue
        if manifest["status"] != "incomplete":  # complete, or partial on a loaded machine
            by_pose.setdefault(manifest["pose_index"], []).append(manifest["session_id"])
        else:
            incomplete.append((manifest["pose_index"], manifest["status"], manifest["session_id"]))
    assert by_pose == {p["index"]: [p["session_id"]] for p in resumed["poses"]}, by_pose
    assert incomplete == [(2, "incomplete", cut["session_id"])], incomplete
    folders = SimpleNamespace(paths=SimpleNamespace(images_data_dir=tmp_path / "images_data"))
    for pose in resumed["poses"]:
        path, manifest = pose_session(pose)
        check_folder(folders, path, manifest)  # type: ignore[arg-type]
