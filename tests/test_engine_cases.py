"""Acceptance tests of the capture engine: what a recording step records, and what a late failure keeps.

Each case runs a real batch (real Mosquitto, the simulated rig's real servers, the service in this
process) and checks every session frame by frame against the rig's own ground truth
(``SimRig.sent_frames()``: the true pose of every frame it sent, and when it sent it).

The rules checked (the engine's specification):

* A recording step records its full ``duration_second`` (``record_ended_at - record_started_at``
  within DURATION_TOL) from a start that is never before its own settle point, never before the
  previous recording's end in the batch, and never earlier than the pre-roll reaches back from the
  moment the step began (``stream_client.preroll_s``).
* Settling for a recording counts only state received after the latest of: the last positioning
  command to the device, the batch start, the previous recording's end. With the settle rule's
  window, the settle point is therefore at least ``settle.window_s`` after that moment.
* Two recordings in a batch are two sessions with disjoint windows and no frame in common.
* A camera that sends nothing fails the job; its session is ``partial`` and names it.
* A late failure (the start command's link, a frame write, ``images_data/<id>.json``) loses nothing
  held: ``session.json`` lists exactly the frames on disk, says what failed, and no recording marker
  or spill file is left behind.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from service.capture import CaptureService
from simulator.config import CameraSim, SimConfig
from simulator.rig import SentFrame, SimRig
from tests.conftest import (
    PrivateBroker,
    command,
    pan_command,
    record_command,
    scaled,
    tilt_command,
    until,
    wait_job,
)

pytestmark = pytest.mark.integration

PANTILT = "acikgoz_pantilt"
SWIR = "cameradevice_swir_1"
LWIR = "cameradevice_lwir_1"
RGB = "cameradevice_rgb_1"
VNIR = "cameradevice_vnir_playerone"
CAMS = (SWIR, LWIR, RGB)
RECORD = "start_recording_command"
MARKER = ".recording.json"

TOL = 5  # x100 units (0.05°): a frame's pose against the commanded pan/tilt
DURATION_TOL = 0.05  # s: recorded length against duration_second
EDGE = 0.05  # s: frames the rig sent this close to a window's edges are not counted either way
KEEP = 0.98  # share of the frames the rig sent inside a window that must be saved
# s: slack where a service timestamp is compared with the rig's receive time of a command (loopback
# MQTT latency); every bug these checks are after is off by 0.5 s or more.
CLOCK_TOL = 0.1
# s: slack where two of the service's own timestamps are compared (epoch times derived from monotonic
# ones at different moments differ by microseconds).
EPS = 1e-3


# -- batches -----------------------------------------------------------------------------------------


# pan_command, tilt_command and record_command (tests/conftest.py) send to PANTILT and RECORD.
def zoom_step_cmd(camera: str, step: int) -> dict[str, Any]:
    return command("camera_device", camera, "set_zoom_step", zoom_step=step)


def zoom_value_cmd(camera: str, value: float) -> dict[str, Any]:
    return command("camera_device", camera, "set_zoom_value", zoom_value=value)


def run_batch(service: CaptureService, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """POST the batch and wait for the job (the default ?wait=true); the job as answered."""
    resp = create_app(service).test_client().post("/process-request", json={"requests": requests})
    body: dict[str, Any] = resp.get_json()
    assert resp.status_code == 200, body
    assert body.get("phase") == "done", body
    return body


# -- reading what was written ------------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any]:
    manifest_file = path / "session.json"
    assert manifest_file.is_file(), f"no session.json in the session folder {path}: {sorted_listing(path)}"
    manifest: dict[str, Any] = json.loads(manifest_file.read_text())
    return manifest


def sorted_listing(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) if path.is_dir() else []


def job_sessions(job: dict[str, Any], count: int) -> list[tuple[dict[str, Any], Path, dict[str, Any]]]:
    """The job's sessions as (summary, folder, session.json); there must be ``count`` of them."""
    sessions = job.get("sessions") or []
    assert len(sessions) == count, f"expected {count} session(s) in the job, got {len(sessions)}: {job}"
    assert job.get("session") == sessions[-1], "the job's 'session' is not its last session"
    return [(s, Path(s["path"]), read_manifest(Path(s["path"]))) for s in sessions]


def only_session_dir(service: CaptureService) -> Path:
    """The one session folder in save_dir (found on disk, whatever the job reports)."""
    save_dir = service.paths.save_dir
    folders = sorted(p for p in save_dir.iterdir() if p.is_dir()) if save_dir.is_dir() else []
    assert len(folders) == 1, f"expected one session folder in {save_dir}, found {folders}"
    return folders[0]


def rig_received_at(sim: SimRig, command_id: str, device_id: str | None = None) -> float:
    """When the rig received the last ``command_id`` (to ``device_id``), epoch seconds."""
    times = [
        c["received_at"]
        for c in sim.commands_received()
        if isinstance(c["command"], dict)
        and c["command"].get("command_id") == command_id
        and (device_id is None or c["device_id"] == device_id)
    ]
    assert times, f"the rig never received {command_id}"
    last: float = times[-1]
    return last


def rig_got(sim: SimRig, command_id: str) -> bool:
    return any(
        isinstance(c["command"], dict) and c["command"].get("command_id") == command_id
        for c in sim.commands_received()
    )


def status_info(manifest: dict[str, Any]) -> str:
    """Why a session has its status, for assertion messages."""
    keys = ("status", "problems", "gaps", "stream_outages", "write_error_count")
    return "; ".join(f"{k}: {manifest.get(k)}" for k in keys)


def problems_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    problems = manifest.get("problems")
    assert isinstance(problems, list), f"session.json has no problems list: {sorted(manifest)}"
    return problems


def problem_text(manifest: dict[str, Any]) -> str:
    return " | ".join(
        f"{p.get('type')}: {p.get('message')} ({p.get('camera_id')})" for p in problems_of(manifest)
    )


# -- checks ------------------------------------------------------------------------------------------


def near(value: Any, target: float, tol: float = TOL) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value - target) <= tol


def check_complete(sim: SimRig, manifest: dict[str, Any]) -> None:
    """The session is complete.

    One exception, which is not the service's doing: "partial" for frame_index gaps alone, every one
    of them frames the rig never sent (its frame clock lost the tick, or its one-deep buffer per
    camera skipped it). The service cannot save what it never got; check_frames still holds it to
    KEEP of what was sent. A gap of frames the rig did send, an outage or any other problem fails.
    """
    if manifest["status"] == "complete":
        return
    gaps = manifest.get("gaps") or []
    assert manifest["status"] == "partial" and gaps, status_info(manifest)
    assert not manifest.get("stream_outages") and not manifest.get("write_error_count"), status_info(manifest)
    for problem in problems_of(manifest):
        text = f"{problem.get('type')} {problem.get('message')}".lower()
        assert "gap" in text or "missing" in text, status_info(manifest)
    sent = {(s.camera_id, s.frame_index) for s in sim.sent_frames() if s.valid}
    for gap in gaps:
        lo, hi = gap["missing_frame_index"]
        was_sent = [i for i in range(lo, hi + 1) if (gap["camera_id"], i) in sent]
        assert not was_sent, f"partial for frames the rig did send ({was_sent}): {status_info(manifest)}"


def check_frames(
    sim: SimRig,
    path: Path,
    manifest: dict[str, Any],
    cameras: tuple[str, ...],
    pan: int,
    tilt: int,
    zooms: dict[str, float] | None = None,
) -> None:
    """check_session of test_capture, for any cameras and zooms.

    Every listed frame file exists, was received inside [record_started_at, record_ended_at), is at
    the commanded pose in the manifest and was captured there by the rig (its ground truth); at least
    KEEP of the frames the rig sent inside the window (EDGE in from each side) were saved.
    """
    start, end = manifest["record_started_at"], manifest["record_ended_at"]
    assert start is not None and end is not None and end > start, f"bad window [{start}, {end})"
    sent = [s for s in sim.sent_frames() if s.valid]
    for cam in cameras:
        info = manifest["cameras"].get(cam)
        assert info is not None, f"{cam} is not in session.json's cameras: {sorted(manifest['cameras'])}"
        frames = info["frames"]
        assert info["frame_count"] == len(frames) > 0, (
            f"{cam}: frame_count {info['frame_count']}, {len(frames)} frames listed"
        )
        indices = [f["frame_index"] for f in frames]
        assert indices == sorted(indices) and len(set(indices)) == len(indices), f"{cam}: order/duplicates"
        zoom = (zooms or {}).get(cam)
        for frame in frames:
            check_listed_frame(path, cam, frame, start, end, (pan, tilt, zoom))
        cam_sent = [s for s in sent if s.camera_id == cam]
        check_ground_truth(cam, indices, cam_sent, (pan, tilt, zoom))
        check_kept(cam, indices, cam_sent, start, end)


def check_listed_frame(
    path: Path, cam: str, frame: dict[str, Any], start: float, end: float, want: tuple[int, int, float | None]
) -> None:
    pan, tilt, zoom = want
    idx = frame["frame_index"]
    assert start <= frame["captured_at"] < end, (
        f"{cam} frame {idx}: captured at {frame['captured_at']:.3f} (received {frame['received_at']:.3f}), "
        f"outside the window [{start:.3f}, {end:.3f})"
    )
    pose = frame["pose"] or {}
    assert near(pose.get("pan_deg_x100"), pan) and near(pose.get("tilt_deg_x100"), tilt), (
        f"{cam} frame {idx}: session.json pose {pose}, commanded pan {pan} tilt {tilt}"
    )
    if zoom is not None:
        assert pose.get("zoom") == zoom, (
            f"{cam} frame {idx}: session.json zoom {pose.get('zoom')}, target {zoom}"
        )
    assert (path / frame["file"]).is_file(), f"{cam} frame {idx}: {frame['file']} is listed but not on disk"


def check_ground_truth(
    cam: str, indices: list[int], cam_sent: list[SentFrame], want: tuple[int, int, float | None]
) -> None:
    pan, tilt, zoom = want
    by_index = {s.frame_index: s for s in cam_sent}
    for idx in indices:
        sent = by_index.get(idx)
        assert sent is not None, f"{cam} frame {idx} is listed but the rig never sent it"
        truth: dict[str, Any] = dict(sent.pose)
        assert near(truth["pan_deg_x100"], pan) and near(truth["tilt_deg_x100"], tilt), (
            f"{cam} frame {idx} was captured at pan {truth['pan_deg_x100']} tilt {truth['tilt_deg_x100']}, "
            f"not at the commanded {pan}/{tilt} (the rig was not there yet)"
        )
        if zoom is not None:
            assert truth["zooms"].get(cam) == zoom, (
                f"{cam} frame {idx} was captured at zoom {truth['zooms'].get(cam)}, target {zoom}"
            )


def check_kept(cam: str, indices: list[int], cam_sent: list[SentFrame], start: float, end: float) -> None:
    """At least KEEP of the frames the rig captured inside the window (by its true capture time, EDGE
    in from each side) were saved, and none captured outside it (EDGE out from each side)."""
    window = [s for s in cam_sent if start + EDGE <= s.captured_ns / 1e9 < end - EDGE]
    saved = set(indices)
    kept = sum(1 for s in window if s.frame_index in saved)
    assert window and kept / len(window) >= KEEP, (
        f"{cam}: kept {kept} of the {len(window)} frames the rig captured inside the recording window"
    )
    outside = [
        s.frame_index
        for s in cam_sent
        if s.frame_index in saved and not start - EDGE <= s.captured_ns / 1e9 < end + EDGE
    ]
    assert not outside, f"{cam}: frames captured outside the window were saved: {outside[:10]}"


def check_timing(
    service: CaptureService,
    manifest: dict[str, Any],
    duration: float,
    settle_since: float,
    step_began: float,
) -> None:
    """The recording window against the spec.

    ``settle_since``: a lower bound of the moment after which state may count for this settle (the
    latest of the last positioning command, the batch start, the previous recording's end).
    ``step_began``: a lower bound of when this recording step began.
    """
    start, end, settled = (
        manifest["record_started_at"],
        manifest["record_ended_at"],
        manifest.get("settled_at"),
    )
    assert start is not None and end is not None, f"window [{start}, {end})"
    assert abs((end - start) - duration) <= DURATION_TOL, (
        f"recorded {end - start:.3f} s, asked for {duration} s (record_started_at {start:.3f}, "
        f"record_ended_at {end:.3f})"
    )
    preroll = service.config.stream_client.preroll_s
    assert start >= step_began - preroll - CLOCK_TOL, (
        f"the recording starts {step_began - start:.3f} s before its step began, the pre-roll reaches "
        f"back {preroll} s only: the first frames of the window cannot have been kept"
    )
    assert settled is not None, "session.json has no settled_at"
    assert start >= settled - EPS, f"the recording starts {settled - start:.3f} s before its settle point"
    window = service.config.settle.window_s
    assert settled >= settle_since + window - CLOCK_TOL, (
        f"the settle point is {settled - settle_since:.3f} s after the moment from which state may count "
        f"(the settle window alone is {window} s): it counted state received before"
    )


def check_folder(service: CaptureService, path: Path, manifest: dict[str, Any]) -> None:
    """Every listed file exists, every frame file on disk is listed, no marker, no spill file."""
    listed: set[str] = set()
    for info in manifest["cameras"].values():
        for frame in info["frames"]:
            listed.add(frame["file"])
            if frame.get("preview"):
                listed.add(frame["preview"])
    missing = sorted(name for name in listed if not (path / name).is_file())
    assert not missing, f"listed in session.json but not on disk: {missing[:5]} ({len(missing)})"
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and p.parent != path}
    unlisted = sorted(on_disk - listed)
    assert not unlisted, f"on disk but not in session.json: {unlisted[:5]} ({len(unlisted)})"
    assert not (path / MARKER).exists(), f"the recording marker {MARKER} is still in {path}"
    spill = service.paths.images_data_dir / "spill"
    leftovers = sorted(spill.glob("*.spill")) if spill.is_dir() else []
    assert not leftovers, f"spill files left behind: {leftovers}"


def check_summary(summary: dict[str, Any], path: Path, manifest: dict[str, Any]) -> None:
    """The job's session summary says what session.json says."""
    keys = ("session_id", "path", "status", "settled_at", "record_started_at", "record_ended_at", "problems")
    missing = [k for k in (*keys, "cameras") if k not in summary]
    assert not missing, f"the job's session summary lacks {missing}: {summary}"
    assert Path(summary["path"]) == path
    assert summary["session_id"] == manifest["session_id"] == path.name
    assert summary["status"] == manifest["status"]
    for key in ("settled_at", "record_started_at", "record_ended_at"):
        assert summary[key] == pytest.approx(manifest[key], abs=EPS), key
    assert len(summary["problems"]) == len(problems_of(manifest))
    for cam, info in manifest["cameras"].items():
        assert summary["cameras"][cam]["frame_count"] == info["frame_count"], cam


def check_format(manifest: dict[str, Any], job: dict[str, Any], cameras: tuple[str, ...]) -> None:
    assert manifest.get("format_version") == 3, manifest.get("format_version")
    assert manifest["job_id"] == job["job_id"]
    assert manifest["command"]["command_id"] == RECORD
    assert manifest["command"]["args"]["camera_ids"] == list(cameras)
    assert manifest["duration_second"] == manifest["command"]["args"]["duration_second"]


# -- 1. two recordings, no moves ---------------------------------------------------------------------


def test_two_recordings_in_one_batch_are_two_full_disjoint_sessions(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    home = sim.pose()
    t_post = time.time()
    job = run_batch(service, [record_command(2.0, SWIR), record_command(2.0, SWIR)])
    assert job["status"] == "succeeded", job
    (sum1, path1, m1), (sum2, path2, m2) = job_sessions(job, 2)
    assert path1 != path2
    check_complete(sim, m1)
    check_complete(sim, m2)
    assert m2["record_started_at"] >= m1["record_ended_at"] - EPS, (
        f"the second recording starts {m1['record_ended_at'] - m2['record_started_at']:.3f} s before the "
        "first one ended: the windows overlap"
    )
    shared = {f["frame_index"] for f in m1["cameras"][SWIR]["frames"]} & {
        f["frame_index"] for f in m2["cameras"][SWIR]["frames"]
    }
    assert not shared, f"frames saved in both sessions: {sorted(shared)[:10]}"
    for path, manifest in ((path1, m1), (path2, m2)):
        check_frames(sim, path, manifest, (SWIR,), home["pan_deg_x100"], home["tilt_deg_x100"])
        check_folder(service, path, manifest)
    check_timing(service, m1, 2.0, settle_since=t_post, step_began=t_post)
    # The second settle counts only state received after the first recording ended.
    end1 = m1["record_ended_at"]
    check_timing(service, m2, 2.0, settle_since=end1, step_began=end1)
    for summary, path, manifest in ((sum1, path1, m1), (sum2, path2, m2)):
        check_format(manifest, job, (SWIR,))
        check_summary(summary, path, manifest)


# -- 2. a rig that never answers on entity_response --------------------------------------------------


def test_unanswered_commands_still_record_the_full_window_at_the_pose(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    sim.faults.mqtt_respond = False  # read on every command; the same object as sim_config.faults
    response_timeout = 2.0
    service = start_service("mqtt", mqtt={"response_timeout_s": response_timeout})
    job = run_batch(service, [pan_command(4500), tilt_command(-1000), record_command(2.0, *CAMS)])
    assert job["status"] == "succeeded", job
    assert [c["answered"] for c in sim.commands_received()] == [False, False, False]
    [(summary, path, manifest)] = job_sessions(job, 1)
    check_complete(sim, manifest)
    # Commands run in order and each waits out its response time: the recording step begins no
    # earlier than that after the tilt command reached the rig.
    tilt_at = rig_received_at(sim, "set_tilt_position_degree")
    check_timing(service, manifest, 2.0, settle_since=tilt_at, step_began=tilt_at + response_timeout)
    check_frames(sim, path, manifest, CAMS, 4500, -1000)
    check_folder(service, path, manifest)
    check_format(manifest, job, CAMS)
    check_summary(summary, path, manifest)


# -- 3. record, move, record -------------------------------------------------------------------------


def test_record_move_record_gives_one_session_per_pose(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    home = sim.pose()
    pan0, tilt0 = home["pan_deg_x100"], home["tilt_deg_x100"]
    assert not home["moving"] and pan0 != 3000
    t_post = time.time()
    job = run_batch(service, [record_command(1.5, *CAMS), pan_command(3000), record_command(1.5, *CAMS)])
    assert job["status"] == "succeeded", job
    (sum1, path1, m1), (sum2, path2, m2) = job_sessions(job, 2)
    check_complete(sim, m1)
    check_complete(sim, m2)
    pan_at = rig_received_at(sim, "set_pan_position_degree")
    assert pan_at >= m1["record_ended_at"] - CLOCK_TOL, "the pan command went out during the first recording"
    assert m2["record_started_at"] >= m1["record_ended_at"] - EPS, "the windows overlap"
    check_frames(sim, path1, m1, CAMS, pan0, tilt0)
    check_frames(sim, path2, m2, CAMS, 3000, tilt0)
    for cam in CAMS:
        first = {f["frame_index"] for f in m1["cameras"][cam]["frames"]}
        second = {f["frame_index"] for f in m2["cameras"][cam]["frames"]}
        assert not first & second, f"{cam}: frames saved in both sessions"
    check_timing(service, m1, 1.5, settle_since=t_post, step_began=t_post)
    check_timing(service, m2, 1.5, settle_since=max(pan_at, m1["record_ended_at"]), step_began=pan_at)
    for summary, path, manifest in ((sum1, path1, m1), (sum2, path2, m2)):
        check_folder(service, path, manifest)
        check_format(manifest, job, CAMS)
        check_summary(summary, path, manifest)


# -- 4. zoom moves before a recording ----------------------------------------------------------------


def test_zoom_moves_settle_before_the_recording(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    home = sim.pose()
    t_post = time.time()
    job = run_batch(
        service, [zoom_step_cmd(SWIR, 400), zoom_value_cmd(RGB, 12.0), record_command(2.0, SWIR, RGB)]
    )
    assert job["status"] == "succeeded", job
    [(summary, path, manifest)] = job_sessions(job, 1)
    check_complete(sim, manifest)
    zooms = {SWIR: 400, RGB: 12.0}
    check_frames(sim, path, manifest, (SWIR, RGB), home["pan_deg_x100"], home["tilt_deg_x100"], zooms)
    step_at = rig_received_at(sim, "set_zoom_step", SWIR)
    value_at = rig_received_at(sim, "set_zoom_value", RGB)
    check_timing(service, manifest, 2.0, settle_since=max(t_post, step_at, value_at), step_began=value_at)
    check_folder(service, path, manifest)
    check_format(manifest, job, (SWIR, RGB))
    check_summary(summary, path, manifest)


# -- 5. a requested camera that sends nothing --------------------------------------------------------


def test_silent_camera_fails_the_job_and_keeps_the_other_cameras(
    sim_config: SimConfig, request: pytest.FixtureRequest
) -> None:
    # The rig has no VNIR camera; the service (default configuration) knows it and records it.
    sim_config.cameras = {cid: cam for cid, cam in sim_config.cameras.items() if cid != VNIR}
    sim: SimRig = request.getfixturevalue("sim")
    service: CaptureService = request.getfixturevalue("start_service")("mqtt")
    assert VNIR in service.config.cameras
    home = sim.pose()
    t_post = time.time()
    job = run_batch(service, [record_command(1.5, SWIR, VNIR)])
    assert job["status"] == "failed", f"a requested camera sent no frame, yet the job {job['status']}"
    assert job.get("error"), job
    [(summary, path, manifest)] = job_sessions(job, 1)
    assert manifest["status"] == "partial", status_info(manifest)
    named = [p for p in problems_of(manifest) if p.get("camera_id") == VNIR]
    assert named, f"no problem names {VNIR}: {manifest['problems']}"
    assert manifest["cameras"].get(VNIR, {"frame_count": 0})["frame_count"] == 0
    check_frames(sim, path, manifest, (SWIR,), home["pan_deg_x100"], home["tilt_deg_x100"])
    check_timing(service, manifest, 1.5, settle_since=t_post, step_began=t_post)
    check_folder(service, path, manifest)
    check_format(manifest, job, (SWIR, VNIR))
    check_summary(summary, path, manifest)


# -- 6. the MQTT link is lost while the start command waits for its answer ---------------------------


def test_link_lost_during_the_recording_command_keeps_every_frame(
    private_broker: PrivateBroker, sim_config: SimConfig, request: pytest.FixtureRequest
) -> None:
    private_broker.start()
    sim_config.mqtt_port = private_broker.port
    sim_config.faults.mqtt_respond = False  # the start command waits its whole response time
    sim: SimRig = request.getfixturevalue("sim")
    service: CaptureService = request.getfixturevalue("start_service")(
        "mqtt", mqtt={"port": private_broker.port, "response_timeout_s": scaled(3.0), "reconnect_max_s": 1}
    )
    home = sim.pose()
    client = create_app(service).test_client()
    t_post = time.time()
    accepted = client.post("/process-request?wait=false", json={"requests": [record_command(2.0, *CAMS)]})
    assert accepted.status_code == 202, accepted.get_json()
    until(lambda: rig_got(sim, RECORD), 30, f"the rig to receive {RECORD}", poll=0.01)
    private_broker.kill()
    job = wait_job(client, accepted.get_json()["job_id"], 30)
    assert job["status"] == "failed", f"the link was lost while {RECORD} waited for its answer: job {job}"
    assert job["results"][-1]["status"] == "failed", job["results"]
    path = only_session_dir(service)
    manifest = read_manifest(path)
    assert manifest["status"] == "failed", status_info(manifest)
    text = problem_text(manifest).lower()
    assert any(word in text for word in (RECORD, "broker", "link", "mqtt", "connect")), (
        f"the problems do not say the command or its link failed: {manifest['problems']}"
    )
    check_folder(service, path, manifest)
    check_frames(sim, path, manifest, CAMS, home["pan_deg_x100"], home["tilt_deg_x100"])
    # A failed start command is no cancel: the recording still runs its full duration.
    check_timing(service, manifest, 2.0, settle_since=t_post, step_began=t_post)
    [(summary, listed_path, _)] = job_sessions(job, 1)
    assert listed_path == path
    check_format(manifest, job, CAMS)
    check_summary(summary, path, manifest)


# -- 7. frame files that fail to write ---------------------------------------------------------------

FSIZE_LIMIT = 256 * 1024  # bytes: above every SWIR/RGB file and session.json, below every LWIR file


def probe_fsize_limit(folder: Path) -> None:
    """Under the limit, a larger write fails with EFBIG in this process (CPython ignores SIGXFSZ)."""
    probe = folder / "fsize_probe.bin"
    try:
        with pytest.raises(OSError) as info, open(probe, "wb") as fh:
            fh.write(b"\0" * (FSIZE_LIMIT + 1))
        assert info.value.errno == errno.EFBIG, info.value
    finally:
        probe.unlink(missing_ok=True)


def test_failed_frame_writes_still_leave_a_true_session_json(
    sim_config: SimConfig, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # LWIR frames big and noisy enough that no PNG of theirs fits under FSIZE_LIMIT (~0.5 MB each).
    sim_config.cameras[LWIR] = CameraSim("mono16", 640, 512, 15.0, noise_sigma=300.0)
    sim: SimRig = request.getfixturevalue("sim")
    # start_service builds the CaptureService in this process: its writer threads share our rlimits.
    service: CaptureService = request.getfixturevalue("start_service")("mqtt")
    home = sim.pose()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    t_post = time.time()
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, hard))
    try:
        probe_fsize_limit(tmp_path)
        job = run_batch(service, [record_command(2.0, *CAMS)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert job["status"] == "failed", f"LWIR frames failed to write, yet the job {job['status']}"
    path = only_session_dir(service)
    manifest = read_manifest(path)
    # Out of room (EFBIG, like ENOSPC): the recording was cut short, every frame before is kept.
    assert manifest["status"] == "partial", status_info(manifest)
    assert {p["type"] for p in manifest["problems"]} >= {"DiskFull"}, manifest["problems"]
    errors = manifest.get("write_errors") or []
    assert manifest.get("write_error_count", 0) > 0 and errors, f"no write errors recorded: {errors}"
    assert {e["camera_id"] for e in errors} == {LWIR}, errors
    efbig = os.strerror(errno.EFBIG)
    assert all(efbig in e["error"] for e in errors), f"not the EFBIG of our RLIMIT_FSIZE: {errors}"
    assert LWIR in problem_text(manifest), f"the problems do not name {LWIR}: {manifest['problems']}"
    check_folder(service, path, manifest)
    check_frames(sim, path, manifest, (SWIR, RGB), home["pan_deg_x100"], home["tilt_deg_x100"])
    check_timing(service, manifest, 2.0, settle_since=t_post, step_began=t_post)
    [(summary, listed_path, _)] = job_sessions(job, 1)
    assert listed_path == path
    check_format(manifest, job, CAMS)
    check_summary(summary, path, manifest)


# -- 8. images_data/<id>.json cannot be written ------------------------------------------------------


def test_unwritable_images_data_fails_the_job_but_keeps_the_session(
    sim: SimRig, start_service: Callable[..., CaptureService], tmp_path: Path
) -> None:
    blocker = tmp_path / "images_data"  # the configured images_data_dir (conftest.make_config)
    blocker.write_text("a file where the images_data folder should be")
    service = start_service("mqtt")
    assert service.paths.images_data_dir == blocker
    assert any("images_data" in w for w in service.storage_warnings), service.storage_warnings
    home = sim.pose()
    t_post = time.time()
    job = run_batch(service, [record_command(1.5, *CAMS)])
    assert job["status"] == "failed", f"images_data/<id>.json cannot be written, yet the job {job['status']}"
    error = job.get("error") or {}
    message = str(error.get("message", ""))
    assert "images_data" in message, error
    assert not message.startswith("internal error"), f"an unhandled error, not a reported one: {error}"
    [(summary, path, manifest)] = job_sessions(job, 1)
    check_complete(sim, manifest)
    check_frames(sim, path, manifest, CAMS, home["pan_deg_x100"], home["tilt_deg_x100"])
    check_timing(service, manifest, 1.5, settle_since=t_post, step_began=t_post)
    check_folder(service, path, manifest)
    check_format(manifest, job, CAMS)
    check_summary(summary, path, manifest)
    assert blocker.is_file(), "the file in the way was replaced"
