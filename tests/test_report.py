"""The session report (sessions.report): report.html written after each session, GET /sessions/<id>/report,
self-contained (no network), and drawn by a real browser."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.capture import CaptureService
from sessions.manifest import SessionManifest, read_manifest
from sessions.report import REPORT_NAME, build_report, refresh_report, report_data, write_report
from sessions.state_log import read_state_log
from tests import session_v3
from tests.conftest import batch, scaled

CAMERAS = ("cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1")
CHROMIUM = "/usr/bin/chromium"
# Any reference the browser would fetch: src=, href=, url(), @import with a scheme or "//".
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)\s*(?:[a-z]+:)?//""", re.I
)


def page_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)
    assert match, "the page carries its data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def record(client: FlaskClient, service: CaptureService, seconds: float = 2.0) -> tuple[str, Path]:
    resp = client.post("/process-request", json=batch(seconds=seconds, cameras=CAMERAS))
    assert resp.status_code == 200, resp.get_json()
    session = resp.get_json()["session"]
    assert service.aftercare.wait_idle(scaled(60)), "aftercare did not finish"
    return session["session_id"], Path(session["path"])


# -- unit: the data and the page from a manifest ---------------------------------------------------
def manifest(**extra: Any) -> SessionManifest:
    t0 = 1_800_000_000.0
    frames = [
        {
            "file": f"cam/{i + 1:06d}.png",
            "received_at": t0 + 0.01 + i * 0.1,
            "timestamp_ns": int((t0 + i * 0.1) * 1e9) if i != 3 else None,
            "frame_index": i if i < 5 else i + 2,
            "pose": {"pan_deg_x100": 4500, "tilt_deg_x100": -1000, "zoom": None, "distance_m": 70 + i},
        }
        for i in range(10)
    ]
    doc: dict[str, Any] = {
        "session_id": "s1",
        "status": "partial",
        "settled_at": t0,
        "record_started_at": t0,
        "record_ended_at": t0 + 1,
        "duration_second": 1,
        "settle": session_v3.settle_proof(
            t0, 1.5, range_m={"readings": 5, "min": 70, "max": 71, "mean": 70.5}
        ),
        "problems": [{"type": "StreamOutage", "message": "</script><script>alert(1)</script>"}],
        "gaps": [
            {
                "camera_id": "cam",
                "missing_frame_index": [5, 6],
                "missing_frames": 2,
                "from_received_at": t0 + 0.41,
                "to_received_at": t0 + 0.51,
            }
        ],
        "stream_outages": [
            {
                "url": "ws://user:pw@127.0.0.1:1/x",
                "from": t0 + 0.6,
                "to": t0 + 0.7,
                "duration_s": 0.1,
                "reason": "x",
            }
        ],
        "cameras": {
            "cam": {
                "frame_count": 10,
                "rejected_frames": 2,
                "rejection_reasons": ["bad size"],
                "frames": frames,
            }
        },
        **extra,
    }
    return SessionManifest.model_validate(doc)


def test_data_without_state_samples_falls_back_to_frame_poses_and_says_so() -> None:
    data = report_data(manifest())
    assert data["pose"]["source"] == "frames" and data["pose"]["pan"][0] == 45.0
    assert data["range"]["source"] == "frames" and data["range"]["distance_m"][:2] == [70, 71]
    assert "no state samples" in data["notes"]["pose"]
    assert data["targets"] == {"pan": 45.0, "tilt": -10.0}
    cam = data["cameras"]["cam"]
    assert cam["clock"] == "arrival"  # one frame lacks a camera timestamp
    assert len(cam["interval_ms"]) == 9 and cam["interval_ms"][0] == pytest.approx(100.0, abs=1e-3)
    assert cam["missing_frames"] == 2 and cam["gaps"][0]["from"] == pytest.approx(0.41)
    assert sum(cam["histogram"]["count"]) == 9
    assert data["settle"]["devices"]["acikgoz_pantilt"]["command"] == pytest.approx(-1.5)
    assert data["outages"][0]["url"] == "ws://***@127.0.0.1:1/x"  # credentials never reach the page
    assert sum(data["fps"]["cameras"]["cam"]) == 10


def test_data_of_an_older_session_uses_its_telemetry_and_camera_timestamps(tmp_path: Path) -> None:
    t0 = 1_800_000_000.0
    telemetry = [
        {
            "received_at": t0 + 0.05,
            "device_id": "acikgoz_pantilt",
            "pan_deg_x100": 4490,
            "tilt_deg_x100": -1000,
        },
        {"received_at": t0 + 0.06, "device_id": "acikgoz_lrf", "distance_m": 55.5},
        {"received_at": t0 + 0.07, "device_id": "acikgoz_lrf", "distance_m": -1},
    ]
    m = manifest(telemetry=telemetry)
    for i, frame in enumerate(m.cameras["cam"].frames):
        frame.timestamp_ns = int((t0 + i * 0.05) * 1e9)
    data = report_data(m, read_state_log(tmp_path, m.model_extra))  # no state.jsonl: the telemetry
    assert data["pose"] == {"source": "state", "t": [0.05], "pan": [44.9], "tilt": [-10.0]}
    assert data["range"]["distance_m"] == [55.5, None]  # no reading is shown as a hole, not as -1
    assert data["cameras"]["cam"]["clock"] == "camera"
    assert data["cameras"]["cam"]["interval_ms"][0] == pytest.approx(50.0, abs=1e-3)
    assert "pose" not in data["notes"]


def page_text(page: str) -> str:
    """The page's static HTML as text: tags dropped, whitespace collapsed."""
    body = page.split('<script id="report-data"')[0]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_a_session_with_capture_times_draws_the_kept_state_samples(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    session_v3.write_session(folder)
    page = write_report(folder).read_text(encoding="utf-8")
    data = page_data(page)
    kept = session_v3.samples()
    # The settle trace: every pan-tilt sample, from the move before the settle to the window's end.
    pose = data["pose"]
    pantilt = [s for s in kept if s.device_id == session_v3.PANTILT]
    assert pose["source"] == "state" and len(pose["t"]) == len(pantilt)
    assert pose["t"][0] == pytest.approx(-3.2) and pose["pan"][0] == 0 and pose["pan"][-1] == 45.0
    assert pose["tilt"][0] is None and pose["tilt"][1] == -10.0  # the retained sample says no tilt
    assert data["targets"] == {"pan": 45.0, "tilt": -10.0} and data["settle_point"] == pytest.approx(-0.2)
    assert data["settle"]["samples"] is True
    assert "pose" not in data["notes"] and "range" not in data["notes"]
    assert "no state samples from before the settle point" not in page
    # The range finder: its samples, a reading without a valid distance as a hole.
    assert data["range"]["source"] == "state" and data["range"]["distance_m"][:4] == [70.0, 70.5, None, 71.0]
    # Intervals and frames per second on capture times (arrivals are 0.4 s and 1.3 s later).
    for cam in (session_v3.SWIR, session_v3.LWIR):
        c = data["cameras"][cam]
        assert c["clock"] == "capture"
        assert c["t"][0] == pytest.approx(0.15) and c["interval_ms"] == pytest.approx([100.0] * 9, abs=1e-3)
        assert data["fps"]["cameras"][cam][0] == session_v3.FRAMES  # all captured in the first second
    assert data["fps"]["clock"] == "capture"
    assert data["capture"]["cameras"][session_v3.LWIR]["delay_s"]["p99"] == 1.38


def test_the_capture_time_section_shows_sources_delays_clock_and_the_wait(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    m = session_v3.write_session(folder)
    text = page_text(write_report(folder).read_text(encoding="utf-8"))
    assert "swir_1 stamp 10 0.400 s 0.430 s 0.450 s ok" in text
    assert "lwir_1 arrival 10 1.300 s 1.380 s 1.410 s no stamps: the camera sends no timestamp_ns" in text
    assert "Dropped: 12 frame(s) captured before it, 3 after." in text
    assert "waited 1.35 s (at most 3 s) for late frames" in text
    assert "Not confirmed: lwir_1" in text
    # People read local ISO times, degrees and short camera names.
    start = dt.datetime.fromtimestamp(session_v3.T0).astimezone().isoformat(timespec="milliseconds")
    assert f"Window in capture time: {start} → " in text
    edge = dt.datetime.fromtimestamp(session_v3.T0 - 0.05).astimezone().isoformat(timespec="milliseconds")
    assert f"the latest dropped as captured before it was captured at {edge}." in text
    assert f"recording {start} → " in text
    assert "pan 45.00°, tilt -10.00°, 70.5 m, zoom swir_1 4, lwir_1 —" in text
    assert "pan 45.00°, tilt -10.00°" in text.split("values at settle")[1]
    assert "cameradevice_" not in text and "deg_x100" not in text
    assert m.capture is not None and m.capture.unconfirmed == [session_v3.LWIR]


def test_tables_show_degrees_with_the_hundredths_in_tooltips_and_a_zoom_with_its_field() -> None:
    settle = manifest().settle or {}
    settle["devices"]["cameradevice_swir_1"] = {
        "time_to_settle_s": 0.6,
        "values": {"zoom_lens_state.zoom_step": 3},
        "targets": {"zoom_lens_state.zoom_step": 3},
        "residual": {"zoom_lens_state.zoom_step": 0},
        "steady_messages": 5,
        "steady_window_s": 0.5,
    }
    pose = {
        "pan_deg_x100": 4500,
        "tilt_deg_x100": -1000,
        "distance_m": 74.0,
        "zooms": {"cameradevice_swir_1": 3, "cameradevice_rgb_1": 1.5},
    }
    m = manifest(settle=settle, pose_at_start=pose, scan_id="scan-x", pose_index=0)
    page = build_report(m, zoom_fields={"cameradevice_rgb_1": "zoom_value"})
    text = page_text(page)
    # The zoom's unit is its field's name: from the configuration (rgb), or the settle proof (swir).
    assert "pan 45.00°, tilt -10.00°, 74 m, zoom swir_1 3 (zoom_step), rgb_1 1.5 (zoom_value)" in text
    assert "scan-x, pose 1" in text  # people count poses from 1; the index stays in the tooltip
    assert '<td title="pose_index 0">scan-x, pose 1</td>' in page
    # Degrees in the cells, the hundredths as the session keeps them in the tooltips.
    raw = "pan_deg_x100 4500, tilt_deg_x100 -1000"
    assert f'<td title="{raw}">pan 45.00°, tilt -10.00°</td>' in page  # target and value at settle
    assert '<td title="pan_deg_x100 0, tilt_deg_x100 0">pan +0.00°, tilt +0.00°</td>' in page  # residual
    assert '<td title="zoom_lens_state.zoom_step 3">zoom_step 3</td>' in page
    assert '<td title="cameradevice_swir_1">swir_1</td>' in page
    assert "deg_x100" not in text and "cameradevice_" not in text


def test_an_older_session_says_what_it_lacks(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    session_v3.old_session(folder, telemetry=True)
    page = write_report(folder).read_text(encoding="utf-8")
    data = page_data(page)
    # Its telemetry (the window only): the trace, but nothing from before the settle point.
    assert data["pose"]["source"] == "state" and data["pose"]["t"][0] >= 0
    assert data["settle"]["samples"] is False
    assert "no state samples from before the settle point" in page
    assert "saved before capture times were kept" in page
    assert {c["clock"] for c in data["cameras"].values()} == {"camera", "arrival"}
    assert data["fps"]["clock"] == "arrival"


def test_a_gap_sits_at_the_capture_times_of_the_frames_around_it(tmp_path: Path) -> None:
    doc = session_v3.manifest_doc()
    frames = doc["cameras"][session_v3.LWIR]["frames"]
    doc["gaps"] = [
        {
            "camera_id": session_v3.LWIR,
            "missing_frame_index": [4, 5],
            "missing_frames": 2,
            "from_received_at": frames[2]["received_at"],
            "to_received_at": frames[3]["received_at"],
        }
    ]
    m = SessionManifest.model_validate(doc)
    (gap,) = report_data(m)["cameras"][session_v3.LWIR]["gaps"]
    assert (gap["from"], gap["to"]) == (pytest.approx(0.25), pytest.approx(0.35))


def test_the_page_is_self_contained_and_escapes_what_the_session_says() -> None:
    page = build_report(manifest())
    assert not EXTERNAL.search(page)
    assert "<script>alert(1)" not in page
    assert "uPlot" in page and "1.6.32" in page
    assert page_data(page)["session_id"] == "s1"
    assert "pw@" not in page


def test_an_empty_session_still_gets_a_report() -> None:
    m = SessionManifest.model_validate({"session_id": "e", "status": "failed", "cameras": {}})
    data = page_data(build_report(m))
    assert data["cameras"] == {} and data["pose"]["t"] == [] and data["range"]["t"] == []


def test_refresh_rebuilds_only_when_the_manifest_is_newer(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text(json.dumps(manifest().to_json()))
    assert refresh_report(tmp_path) is not None and (tmp_path / REPORT_NAME).is_file()
    assert refresh_report(tmp_path) is None  # current: the file is served as it is
    later = time.time() + 5
    os.utime(tmp_path / "session.json", (later, later))
    assert refresh_report(tmp_path) is not None


# -- integration: a recorded session ---------------------------------------------------------------
@pytest.mark.integration
def test_report_is_written_after_each_session_and_served(
    client: FlaskClient, service: CaptureService
) -> None:
    session_id, folder = record(client, service)
    report = folder / REPORT_NAME
    assert report.is_file(), "the aftercare hook writes report.html"
    page = report.read_text(encoding="utf-8")
    assert not EXTERNAL.search(page), "the report must open with no network"
    data = page_data(page)
    manifest = read_manifest(folder)
    assert data["session_id"] == session_id
    for cam in CAMERAS:
        c, kept = data["cameras"][cam], manifest.cameras[cam]
        assert c["frame_count"] == kept.frame_count > 0
        assert len(c["interval_ms"]) == len(c["t"]) == len(kept.frames) - 1
        assert sum(c["histogram"]["count"]) == len(kept.frames) - 1
        assert sum(data["fps"]["cameras"][cam]) == len(kept.frames)
        assert c["stats"]["fps"] and c["rejected_frames"] == kept.rejected_frames
    assert data["pose"]["source"] == "state" and data["pose"]["t"]
    assert data["targets"] == {"pan": 45.0, "tilt": -10.0}
    assert data["range"]["t"] and data["settle"]["devices"]

    resp = client.get(f"/sessions/{session_id}/report")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.get_data(as_text=True) == page

    report.unlink()  # an older session without one: made on demand, and kept
    resp = client.get(f"/sessions/{session_id}/report")
    assert resp.status_code == 200 and page_data(resp.get_data(as_text=True))["session_id"] == session_id
    assert report.is_file()
    assert client.get("/sessions/no-such-session/report").status_code == 404


@pytest.mark.integration
def test_a_recorded_report_shows_the_zoom_with_its_configured_field(
    client: FlaskClient, service: CaptureService
) -> None:
    body = batch(seconds=1, cameras=CAMERAS)
    zoom = {
        "target_id": "camera_device",
        "device_id": "cameradevice_swir_1",
        "command_id": "set_zoom_step",
        "args": {"zoom_step": 2},
    }
    body["requests"].insert(0, zoom)
    done = client.post("/process-request", json=body).get_json()
    assert done["status"] == "succeeded", done
    assert service.aftercare.wait_idle(scaled(60))
    text = page_text((Path(done["session"]["path"]) / REPORT_NAME).read_text(encoding="utf-8"))
    assert "swir_1 2 (zoom_step)" in text and "rgb_1 1.0 (zoom_value)" in text  # pose at start
    assert "zoom_step 2" in text.split("values at settle")[1]
    assert "pan 45.00°, tilt -10.00°" in text.split("values at settle")[1]
    assert "deg_x100" not in text and "cameradevice_" not in text


@pytest.mark.integration
def test_the_range_finder_over_the_steady_run_reads_the_one_pose_it_settled_at(
    client: FlaskClient, service: CaptureService
) -> None:
    """The issue's "74–400 m at one fixed pose": the simulator is right (400 m, its limit, level;
    74 m at -10°); the summary took the range finder from the earliest device's steady run, so a
    zoom already at its target (steady at once) pulled in the readings of the tilt still moving."""
    zoom = {
        "target_id": "camera_device",
        "device_id": "cameradevice_swir_1",
        "command_id": "set_zoom_step",
        "args": {"zoom_step": 3},
    }
    level = batch(pan=4500, tilt=0, seconds=0.5, cameras=("cameradevice_swir_1",))
    level["requests"].insert(0, zoom)
    assert client.post("/process-request", json=level).get_json()["status"] == "succeeded"
    down = batch(pan=4500, tilt=-1000, seconds=0.5, cameras=("cameradevice_swir_1",))
    down["requests"].insert(0, zoom)  # the zoom is there already: steady from its first message
    done = client.post("/process-request", json=down).get_json()
    assert done["status"] == "succeeded", done
    settle = read_manifest(Path(done["session"]["path"])).settle or {}
    devices = settle["devices"]
    assert devices["cameradevice_swir_1"]["time_to_settle_s"] < devices["acikgoz_pantilt"]["time_to_settle_s"]
    spread = settle["range_m"]
    assert spread["readings"] > 0 and spread["min"] == spread["max"] == pytest.approx(74.0, abs=0.5), spread


@pytest.mark.integration
@pytest.mark.solo  # Chromium takes the machine (tests/solo.py)
def test_report_renders_its_charts_in_chromium(
    client: FlaskClient, service: CaptureService, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")
    _, folder = record(client, service, seconds=3.0)
    report = folder / REPORT_NAME
    # Opened from disk, as someone who received the folder would: no server, no network.
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1050, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on(
                "console", lambda msg: errors.append(msg.text) if msg.type in ("error", "warning") else None
            )
            page.on("request", lambda req: requests.append(req.url))
            page.goto(report.as_uri())
            page.wait_for_selector("body[data-charts]", timeout=scaled(10) * 1000)
            charts = int(page.get_attribute("body", "data-charts") or 0)
            canvases = page.locator("canvas").count()
            svg = page.locator("svg.settle rect").count()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requests == [report.as_uri()], "the page fetched something besides itself"
    # pan/tilt, an interval chart and a histogram per camera, frames per second, range finder.
    assert charts == canvases == 3 + 2 * len(CAMERAS)
    assert svg >= 2, "the settle trace is drawn"
    assert shot.stat().st_size > 50_000, "the screenshot looks empty"
    if extra := os.environ.get("RIGCAPTURE_SCREENSHOTS"):
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(extra) / "session-report.png")


def test_write_report_reads_the_folder_when_not_given_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text(json.dumps(manifest().to_json()))
    path = write_report(tmp_path)
    assert page_data(path.read_text(encoding="utf-8"))["cameras"]["cam"]["frame_count"] == 10
