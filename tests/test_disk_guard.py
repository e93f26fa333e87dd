"""The disk guard (service.disk_guard): a recording's size estimated from the cameras' byte rates, a
recording that would not leave storage.min_free_mb free refused before the rig records, /status
showing the save folder's free space."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from api import create_app
from camera.router import FPS_WINDOW_S, CameraStats
from rigcore.config import CameraConfig, Config, ConfigError
from rigcore.config_policy import change_report
from rigcore.memory import MIB
from service.capture import CaptureService
from service.disk_guard import (
    ENCODED_RATIO,
    FORMAT_RATIO,
    MANIFEST_BYTES_PER_S,
    PREVIEW_RATIO,
    UNKNOWN_FORMAT_RATIO,
    InsufficientStorage,
    PlannedRecording,
    check_space,
    estimate_bytes,
    format_ratio,
    free_bytes,
    shortfall,
    storage_status,
)
from simulator.config import CameraSim, SimConfig
from simulator.rig import SimRig
from tests.conftest import batch, process_config, scaled, until, wait_job

RECORD = "start_recording_command"
LWIR = "cameradevice_lwir_1"
HUGE_MB = 1e12  # more than any disk: every recording is refused


# -- estimation (pure) ---------------------------------------------------------------------------
def test_format_ratio_per_format() -> None:
    assert format_ratio(CameraConfig(pixel_format="encoded", image_format="tiff")) == ENCODED_RATIO
    assert format_ratio(CameraConfig(pixel_format="mono16", image_format="png")) == FORMAT_RATIO["png"]
    assert format_ratio(CameraConfig(pixel_format="mono16", image_format="tiff")) == FORMAT_RATIO["tiff"]
    with_previews = CameraConfig(pixel_format="mono16", image_format="tiff", previews=True)
    assert format_ratio(with_previews) == FORMAT_RATIO["tiff"] + PREVIEW_RATIO
    # A format the table does not know yet (a newer writer's): the conservative default.
    newer = CameraConfig.model_construct(pixel_format="mono16", image_format="future-format", previews=False)
    assert format_ratio(newer) == UNKNOWN_FORMAT_RATIO >= 1.0
    assert format_ratio(None) == UNKNOWN_FORMAT_RATIO


def test_estimate_is_rate_times_duration_times_ratio() -> None:
    cameras = {
        "lwir": CameraConfig(pixel_format="mono16", image_format="tiff"),
        "rgb": CameraConfig(pixel_format="encoded"),
    }
    rates = {"lwir": 10 * MIB, "rgb": 2 * MIB}
    one = estimate_bytes([PlannedRecording(("lwir", "rgb"), 3.0)], rates, cameras)
    expected = 10 * MIB * 3 * 1.0 + 2 * MIB * 3 * 1.0 + 2 * MANIFEST_BYTES_PER_S * 3
    assert one == pytest.approx(expected, abs=1)
    # Every recording of a batch counts; a camera not recorded does not; a silent camera adds only its
    # manifest share.
    two = estimate_bytes(
        [PlannedRecording(("lwir",), 3.0), PlannedRecording(("silent",), 2.0)], rates, cameras
    )
    assert two == pytest.approx(10 * MIB * 3 + MANIFEST_BYTES_PER_S * 5, abs=1)


def test_shortfall_against_the_reserve() -> None:
    assert not shortfall(needed=100 * MIB, free=1000 * MIB, min_free_mb=0)  # 0 turns the guard off
    assert not shortfall(needed=100 * MIB, free=1000 * MIB, min_free_mb=900)  # exactly the reserve left
    assert shortfall(needed=100 * MIB + 1, free=1000 * MIB, min_free_mb=900)
    assert shortfall(needed=0, free=10 * MIB, min_free_mb=500)  # below the reserve already


def test_refusal_names_needed_free_and_folder(tmp_path: Path) -> None:
    cameras = {"lwir": CameraConfig(pixel_format="mono16", image_format="tiff")}
    with pytest.raises(InsufficientStorage) as info:
        check_space([PlannedRecording(("lwir",), 10.0)], {"lwir": 5 * MIB}, cameras, tmp_path, HUGE_MB)
    err = info.value
    text = str(err)
    assert err.http_status == 507
    assert "needs about 50.2 MB" in text, text  # 5 MiB/s x 10 s + the manifest's share
    assert str(tmp_path) in text and "MB free" in text and "storage.min_free_mb" in text
    data = err.to_dict()
    assert data["type"] == "InsufficientStorage" and data["folder"] == str(tmp_path)
    assert data["needed_mb"] == 50.2 and data["free_mb"] > 0 and data["min_free_mb"] == HUGE_MB
    # Reserve 0: never refused. A reserve the disk has: passes.
    check_space([PlannedRecording(("lwir",), 10.0)], {"lwir": 5 * MIB}, cameras, tmp_path, 0)
    check_space([PlannedRecording(("lwir",), 1.0)], {"lwir": 1.0}, cameras, tmp_path, 1)


def test_free_space_of_a_folder_not_made_yet(tmp_path: Path) -> None:
    assert free_bytes(tmp_path / "not" / "yet") == free_bytes(tmp_path) > 0
    status = storage_status(tmp_path / "not" / "yet", HUGE_MB)
    assert (
        status["free_mb"] > 0 and "below" in status["warning"] and "storage.min_free_mb" in status["warning"]
    )
    assert storage_status(tmp_path, 1)["warning"] is None


def test_camera_byte_rate_keeps_the_full_rate_measure() -> None:
    stats = CameraStats()
    t = 1000.0
    # Full rate for a whole window: 20 frames of 1 MiB a second.
    for i in range(int(FPS_WINDOW_S * 20) + 1):
        stats.count_bytes(t + i / 20, MIB, full_rate_for_s=FPS_WINDOW_S + i / 20)
    full = stats.byte_rate(t + FPS_WINDOW_S)
    assert full == pytest.approx(20 * MIB, rel=0.1)
    # Then idle (the stream slowed on purpose): 2 frames a second; the full-rate figure stays.
    t += 10
    for i in range(10):
        stats.count_bytes(t + i / 2, MIB, full_rate_for_s=None)
    assert stats.byte_rate(t + 5) == pytest.approx(full)
    # Never at full rate for a whole window: only what is measured now.
    fresh = CameraStats()
    fresh.count_bytes(t, MIB, full_rate_for_s=0.5)
    assert fresh.byte_rate(t) == pytest.approx(MIB / FPS_WINDOW_S)


# -- through the service ----------------------------------------------------------------------------
def recorded(sim: SimRig) -> list[dict[str, Any]]:
    return [c for c in sim.commands_received() if c.get("command", {}).get("command_id") == RECORD]


def session_folders(service: CaptureService) -> list[Path]:
    save_dir = service.paths.save_dir
    return [p for p in save_dir.iterdir() if p.is_dir()] if save_dir.is_dir() else []


@pytest.mark.integration
def test_a_batch_that_cannot_fit_is_refused_with_nothing_executed(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt", storage={"min_free_mb": HUGE_MB})
    client = create_app(service).test_client()
    time.sleep(scaled(0.5))  # some frames, so the cameras have a byte rate
    before = len(sim.commands_received())
    resp = client.post("/process-request", json=batch(pan=1000, tilt=0, seconds=2.0))
    body = resp.get_json()
    assert resp.status_code == 507, body
    message = body["error"]
    assert "nothing was executed" in message and "needs about" in message, message
    assert "MB free" in message and str(service.paths.save_dir) in message, message
    assert len(sim.commands_received()) == before, "the rig was commanded"
    assert session_folders(service) == []
    assert service.history.entries()[-1]["http_status"] == 507
    # A scan: every pose's recording counted, refused the same way.
    poses = [{"pan_deg_x100": p, "tilt_deg_x100": 0} for p in (0, 1000)]
    scan = client.post("/scans", json={"cameras": [LWIR], "duration_second": 1.0, "poses": poses})
    assert scan.status_code == 507 and "nothing was executed" in scan.get_json()["error"], scan.get_json()
    assert len(sim.commands_received()) == before, "the rig was commanded"
    # /status: the free space, the reserve and the warning.
    status = client.get("/status").get_json()
    disk = status["disk"]
    assert disk["folder"] == str(service.paths.save_dir) and disk["free_mb"] > 0, disk
    assert disk["min_free_mb"] == HUGE_MB and "below" in disk["warning"], disk
    assert disk["warning"] in status["storage_warnings"]


@pytest.mark.integration
def test_the_check_right_before_recording_fails_the_job_before_the_rig_records(
    sim: SimRig, start_service: Callable[..., CaptureService], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = start_service("mqtt", storage={"min_free_mb": HUGE_MB})
    # Pass the check at accept time (as when the disk fills between accepting and recording).
    monkeypatch.setattr(service, "check_disk", lambda plan, scan=None: None)
    client = create_app(service).test_client()
    accepted = client.post("/process-request?wait=false", json=batch(pan=None, tilt=None, seconds=1.0))
    assert accepted.status_code == 202, accepted.get_json()
    job = wait_job(client, accepted.get_json()["job_id"], 30)
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["type"] == "InsufficientStorage", error
    assert error["folder"] == str(service.paths.save_dir) and error["needed_mb"] >= 0, error
    assert "MB free" in error["message"], error
    assert recorded(sim) == [], "the rig was told to record"
    assert session_folders(service) == []


@pytest.mark.integration
def test_a_recording_that_fits_is_not_refused(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt", storage={"min_free_mb": 1})
    client = create_app(service).test_client()
    resp = client.post("/process-request", json=batch(pan=None, tilt=None, seconds=0.5))
    assert resp.status_code == 200 and resp.get_json()["status"] == "succeeded", resp.get_json()
    status = client.get("/status").get_json()
    assert status["disk"]["warning"] is None and status["disk"]["free_mb"] > 1


# -- a disk that fills anyway ----------------------------------------------------------------------
SMALL_FS = "3m"  # a tmpfs this size fills within the first second of noisy 640x512 mono16 frames


def tmpfs_possible(where: Path) -> str | None:
    """None when this user can mount a tmpfs in a new user+mount namespace (no root), else why not."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    where.mkdir(exist_ok=True)
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=1m none "$1"', "sh", str(where)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return None if probe.returncode == 0 else f"unshare -rm + mount tmpfs refused: {probe.stderr.strip()}"


@pytest.mark.integration
def test_a_disk_that_fills_mid_recording_still_saves_the_session(
    sim_config: SimConfig, prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    small = tmp_path / "small_disk"
    problem = tmpfs_possible(small)
    if problem is not None:
        pytest.skip(problem)
    sim_config.cameras[LWIR] = CameraSim("mono16", 640, 512, 15.0, noise_sigma=300.0)  # ~0.5 MB a frame
    sim: SimRig = request.getfixturevalue("sim")
    cfg = process_config(
        tmp_path / "config.json",
        sim,
        prefix,
        save_dir=str(small),  # the small file system, seen by the service only
        images_data_dir=str(tmp_path / "images_data"),
        storage={"min_free_mb": 0},  # the guard off: the disk really fills
    )
    url = cfg.url
    # The service in its own user and mount namespace, with a tmpfs of SMALL_FS mounted on save_dir.
    script = f'mount -t tmpfs -o size={SMALL_FS} none "$1" && shift && exec "$@"'
    with cfg.process(wrapper=("unshare", "-rm", "sh", "-c", script, "sh", str(small))):
        cams = (LWIR, "cameradevice_swir_1")
        body = requests.post(
            f"{url}/process-request", json=batch(None, None, seconds=2.0, cameras=cams), timeout=120
        )
        job = body.json()
        assert job["status"] == "failed", job
        [summary] = job["sessions"]
        sid = summary["session_id"]
        manifest = requests.get(f"{url}/sessions/{sid}", timeout=10).json()
        # Saved, not lost: session.json is there, says the writes failed, and lists only files on disk.
        # "partial": the disk filled, the frames before it are saved (docs/architecture.md, "Recording").
        assert manifest["status"] == "partial", manifest["status"]
        assert any(p["type"] == "DiskFull" for p in manifest["problems"]), manifest["problems"]
        assert manifest["write_error_count"] > 0
        enospc = os.strerror(errno.ENOSPC)
        assert any(enospc in e["error"] for e in manifest["write_errors"]), manifest["write_errors"][:3]
        listed = [f["file"] for cam in manifest["cameras"].values() for f in cam["frames"]]
        assert listed, "no frame was written before the disk filled"
        for file in listed[:: max(1, len(listed) // 10)]:
            assert requests.get(f"{url}/sessions/{sid}/files/{file}", timeout=10).status_code == 200, file

        # And in the catalog once aftercare has run (it follows the job's answer).
        def catalog_ids() -> list[str]:
            return [s["session_id"] for s in requests.get(f"{url}/sessions", timeout=10).json()["sessions"]]

        until(lambda: sid in catalog_ids(), 20, f"{sid} in the catalog", poll=0.2)


def test_the_reserve_changes_over_the_api_without_a_restart() -> None:
    old = Config()
    new = Config.from_dict({"storage": {"min_free_mb": 2000}})
    assert old.storage.min_free_mb == 500 and new.storage.min_free_mb == 2000
    assert change_report(old, new) == {"changed": ["storage"], "restart_required": []}
    with pytest.raises(ConfigError, match="min_free_mb"):
        Config.from_dict({"storage": {"min_free_mb": -1}})
