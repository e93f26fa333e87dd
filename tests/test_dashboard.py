"""The dashboard's endpoints through Flask's test client, against a started service on the simulated
rig: the page, live thumbnails, the session gallery (list, manifest, files, thumbnails, zip), paths
that try to leave the save folder, and the token.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from api import create_app
from service.capture import CaptureService
from sessions.image_codecs import read_tiff
from tests import session_v3
from tests.conftest import batch, scaled

pytestmark = pytest.mark.integration

CAMS = ("cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1")
FRAME_MIMETYPES = {".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff"}  # by image_format


def image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()  # a truncated or corrupt file fails here
    return img


def is_error(resp: Any, status: int) -> bool:
    body = resp.get_json()
    return resp.status_code == status and set(body) == {"error", "details"} and body["error"]


def wait_for_frames(client: FlaskClient, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        cams = client.get("/status", headers=headers or {}).get_json()["cameras"]
        if all(c["frames"] > 0 for c in cams.values()):
            return
        time.sleep(0.05)
    raise AssertionError("no frames from every camera")


def test_page_and_static_files_are_served(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "/static/dashboard.css" in html
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and len(css.data) > 1000
    css.close()
    # The script is native ES modules: the page's import map gives each one its versioned URL (so a
    # browser never mixes old and new modules), and every module it imports is in the map.
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S)[1])["imports"]
    assert {"/static/js/main.js", "/static/js/api.js", "/static/js/scans.js"} <= set(imports)
    assert re.search(r'<script type="module" src="/static/js/main\.js\?v=\d+">', html)
    for plain, versioned in imports.items():
        assert versioned.startswith(f"{plain}?v="), versioned
        module = client.get(versioned)
        assert module.status_code == 200 and module.mimetype == "text/javascript", plain
        source = module.get_data(as_text=True)
        module.close()
        for name in re.findall(r'^import .* from "\./([a-z]+\.js)";$', source, re.M):
            assert f"/static/js/{name}" in imports, (plain, name)
    info = client.get("/cameras").get_json()
    by_id = {c["camera_id"]: c for c in info["cameras"]}
    assert by_id["cameradevice_rgb_1"]["zoom"]["command_id"] == "set_zoom_value"
    assert by_id["cameradevice_swir_1"]["zoom"] == {
        "command_id": "set_zoom_step",
        "arg": "zoom_step",
        "field": "zoom_lens_state.zoom_step",
        "min": 0.0,
        "max": None,
        "integer": True,
    }
    assert by_id["cameradevice_lwir_1"]["zoom"] is None
    assert info["pantilt"]["device_id"] == "acikgoz_pantilt"
    assert info["pantilt"]["pan"]["command_id"] == "set_pan_position_degree"
    assert info["pantilt"]["tilt"]["arg"] == "tilt_position_deg_x100"
    assert info["recording"]["max_duration_s"] == 600


def test_live_thumbnails(client: FlaskClient) -> None:
    wait_for_frames(client)
    # rgb and vnir are JPEGs on the wire: passed through when small enough, else scaled down.
    rgb = client.get("/cameras/cameradevice_rgb_1/live.jpg")
    assert rgb.status_code == 200 and rgb.mimetype == "image/jpeg"
    assert rgb.headers["Cache-Control"] == "no-store" and rgb.headers["X-Frame-Size"] == "640x360"
    assert image(rgb.data).size == (640, 360)
    small = client.get("/cameras/cameradevice_rgb_1/live.jpg?max=200")
    assert image(small.data).size == (200, 112)
    # mono8 and mono16: stretched to 8 bits, grey, scaled to fit.
    for cam in ("cameradevice_swir_1", "cameradevice_lwir_1"):
        for ext, mimetype in (("jpg", "image/jpeg"), ("png", "image/png")):
            resp = client.get(f"/cameras/{cam}/live.{ext}?max=160")
            assert resp.status_code == 200 and resp.mimetype == mimetype, cam
            img = image(resp.data)
            assert img.mode == "L" and img.size == (160, 128), (cam, img.mode, img.size)
            lo, hi = img.getextrema()
            assert hi - lo > 100, f"{cam}: not stretched ({lo}..{hi})"
    assert is_error(client.get("/cameras/nope/live.jpg"), 404)
    assert is_error(client.get("/cameras/cameradevice_rgb_1/live.gif"), 404)


def test_no_frame_yet_is_a_404_in_the_error_shape(
    start_service: Callable[..., CaptureService],
) -> None:
    service = start_service("mqtt", streams=[{"url": "ws://127.0.0.1:9"}], wait_ready=False)
    resp = create_app(service).test_client().get("/cameras/cameradevice_lwir_1/live.jpg")
    assert is_error(resp, 404) and "no frame" in resp.get_json()["error"]


def test_sessions_gallery_files_thumbs_and_zip(service: CaptureService, client: FlaskClient) -> None:
    empty = client.get("/sessions").get_json()
    assert (empty["sessions"], empty["total"], empty["offset"], empty["limit"]) == ([], 0, 0, 20)
    done = client.post("/process-request", json=batch(4500, -1000, seconds=1.0)).get_json()
    assert done["status"] == "succeeded", done
    sid = done["session"]["session_id"]
    # A folder without a manifest yet (a recording in progress) is listed as incomplete, newest first.
    (service.paths.save_dir / "99999999-000000-000").mkdir()
    # The session catalog indexes what the service writes; a folder made by hand, at its next refresh.
    service.catalog.refresh()

    listing = client.get("/sessions").get_json()
    assert listing["total"] == 2
    assert [s["session_id"] for s in listing["sessions"]] == ["99999999-000000-000", sid]
    assert listing["sessions"][0]["status"] == "incomplete" and not listing["sessions"][0]["manifest"]
    summary = listing["sessions"][1]
    assert summary["status"] == "complete" and summary["job_id"] == done["job_id"]
    assert summary["pose"]["pan_deg_x100"] == 4500 and summary["pose"]["tilt_deg_x100"] == -1000
    assert summary["record_started_at"] < summary["record_ended_at"]
    assert set(summary["cameras"]) == set(CAMS)
    for cam in CAMS:
        info = summary["cameras"][cam]
        assert info["frame_count"] == done["session"]["cameras"][cam]["frame_count"] > 0
        assert 0 < len(info["strip"]) <= 8 and info["strip"][0]["index"] == 0
    assert summary["frame_count"] == sum(c["frame_count"] for c in summary["cameras"].values())
    assert client.get("/sessions?limit=1&offset=1").get_json()["sessions"][0]["session_id"] == sid

    manifest = client.get(f"/sessions/{sid}")
    assert manifest.status_code == 200 and manifest.mimetype == "application/json"
    assert json.loads(manifest.data)["session_id"] == sid
    manifest.close()
    assert is_error(client.get("/sessions/99999999-000000-000"), 404)

    # The 16-bit LWIR file as written, and its 8-bit view; a thumbnail of each camera.
    lwir = summary["cameras"]["cameradevice_lwir_1"]["strip"][0]["file"]
    raw = client.get(f"/sessions/{sid}/files/{lwir}")
    assert raw.status_code == 200 and raw.mimetype == FRAME_MIMETYPES[Path(lwir).suffix]
    pixels = read_tiff(raw.data) if raw.mimetype == "image/tiff" else np.asarray(image(raw.data))
    assert pixels is not None and pixels.dtype == np.uint16, pixels.dtype  # 16 bits, as recorded
    assert raw.data == (service.paths.save_dir / sid / lwir).read_bytes()
    raw.close()
    view = client.get(f"/sessions/{sid}/files/{lwir}?view=1")
    assert view.status_code == 200 and image(view.data).mode == "L"
    for cam in CAMS:
        file = summary["cameras"][cam]["strip"][-1]["file"]
        thumb = client.get(f"/sessions/{sid}/thumbs/{file}?size=100")
        assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg", cam
        assert max(image(thumb.data).size) == 100
        again = client.get(f"/sessions/{sid}/thumbs/{file}?size=100")
        assert again.data == thumb.data  # served from the cache
    assert is_error(client.get(f"/sessions/{sid}/thumbs/session.json"), 404)

    check_the_zip(client, service.paths.save_dir / sid, lwir)


def check_the_zip(client: FlaskClient, folder: Path, lwir: str) -> None:
    """The zip: every file of the folder, stored, under the session's name."""
    sid = folder.name
    resp = client.get(f"/sessions/{sid}.zip")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{sid}.zip"'
    expected = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        assert zf.testzip() is None
        names = sorted(n.removeprefix(f"{sid}/") for n in zf.namelist())
        assert names == expected and "session.json" in names
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert zf.read(f"{sid}/{lwir}") == (folder / lwir).read_bytes()


def test_cameras_follow_the_configured_positioning_commands(
    start_service: Callable[..., CaptureService],
) -> None:
    # Commands are configuration: a pan command with another name and argument, no tilt command, and
    # only the rgb camera's zoom field driven by a command.
    service = start_service(
        "mqtt",
        positioning_commands={
            "goto_pan": {"arg": "pan_deg", "field": "pan_deg_x100", "min": -9000, "max": 9000},
            "set_zoom_value": {"arg": "zoom_value", "field": "zoom_value"},
        },
    )
    info = create_app(service).test_client().get("/cameras").get_json()
    pantilt = info["pantilt"]
    assert pantilt["pan"] == {
        "command_id": "goto_pan",
        "arg": "pan_deg",
        "field": "pan_deg_x100",
        "min": -9000,
        "max": 9000,
        "integer": False,
    }
    assert pantilt["pan_range_x100"] == [-9000, 9000]
    assert pantilt["tilt"] is None and pantilt["tilt_range_x100"] is None
    by_id = {c["camera_id"]: c for c in info["cameras"]}
    assert by_id["cameradevice_rgb_1"]["zoom"]["command_id"] == "set_zoom_value"
    assert by_id["cameradevice_swir_1"]["zoom"] is None  # its field has no command now


def write_manifest_file(folder: Path, data: Any) -> None:
    folder.mkdir()
    text = data if isinstance(data, str) else json.dumps(data)
    (folder / "session.json").write_text(text, encoding="utf-8")


def test_session_summaries_are_read_through_the_manifest_model(
    service: CaptureService, client: FlaskClient
) -> None:
    done = client.post("/process-request", json=batch(1000, 0, seconds=0.5)).get_json()
    assert done["status"] == "succeeded", done
    sid = done["session"]["session_id"]
    save = service.paths.save_dir
    frame = {"received_at": 100.6, "timestamp_ns": None, "frame_index": None, "pose": None}
    # Version 2, as written now: the settle point and the problems.
    write_manifest_file(
        save / "20000101-000000-002",
        {
            "format_version": 2,
            "session_id": "20000101-000000-002",
            "status": "partial",
            "settled_at": 100.0,
            "record_started_at": 100.5,
            "record_ended_at": 101.5,
            "problems": [
                {"type": "NoFrames", "message": "no frames", "camera_id": "cameradevice_lwir_1"},
                {"type": "StreamOutage", "message": "the stream dropped"},
            ],
            "cameras": {
                "cameradevice_lwir_1": {"frame_count": 0},
                "cameradevice_swir_1": {
                    "frame_count": 2,
                    "frames": [{**frame, "file": "swir/0.png"}, {**frame, "file": "swir/1.png"}],
                },
            },
        },
    )
    session_v3.write_session(save / session_v3.manifest_doc()["session_id"])
    # Version 1 (no format_version, no settled_at, no problems) still reads.
    write_manifest_file(
        save / "20000101-000000-001",
        {"session_id": "20000101-000000-001", "status": "complete", "record_started_at": 50.0},
    )
    # Not in the session format, and not JSON at all: "unreadable", saying why and naming the file.
    write_manifest_file(save / "20000101-000000-000", {"session_id": "20000101-000000-000"})
    write_manifest_file(save / "20000101-000000-003", "{not json")
    service.catalog.refresh()  # folders made by hand are indexed at the catalog's next refresh

    summaries = {s["session_id"]: s for s in client.get("/sessions").get_json()["sessions"]}
    real = summaries[sid]
    # Both times are wall-clock readings derived from monotonic ones; allow their float rounding.
    assert isinstance(real["settled_at"], float) and real["settled_at"] <= real["record_started_at"] + 1e-3
    assert real["problems"] == [] and real["status"] == "complete"

    v2 = summaries["20000101-000000-002"]
    assert v2["manifest"] is True and v2["status"] == "partial"
    assert (v2["settled_at"], v2["record_started_at"], v2["record_ended_at"]) == (100.0, 100.5, 101.5)
    assert v2["problems"] == [
        {"type": "NoFrames", "message": "no frames", "camera_id": "cameradevice_lwir_1"},
        {"type": "StreamOutage", "message": "the stream dropped", "camera_id": None},
    ]
    assert v2["frame_count"] == 2
    assert v2["cameras"]["cameradevice_swir_1"] == {
        "frame_count": 2,
        "rejected_frames": 0,
        "strip": [{"index": 0, "file": "swir/0.png"}, {"index": 1, "file": "swir/1.png"}],
        # Saved before capture times were kept: no time sources, delay or clock verdict.
        "time_sources": {},
        "delay_s": None,
        "clock": None,
    }
    assert v2["capture"] is None
    assert v2["cameras"]["cameradevice_lwir_1"]["strip"] == []

    # Version 3: how each camera's capture times were known, its delay, the wait for late frames.
    v3 = summaries[session_v3.manifest_doc()["session_id"]]
    lwir = v3["cameras"][session_v3.LWIR]
    assert lwir["time_sources"] == {"arrival": 10} and lwir["clock"]["status"] == "no_stamps"
    assert lwir["delay_s"] == {"median": 1.3, "p99": 1.38, "max": 1.41, "frames": 10}
    assert v3["capture"]["unconfirmed"] == [session_v3.LWIR] and v3["capture"]["waited_s"] == 1.35
    assert (v3["record_started_at"], v3["record_ended_at"]) == (session_v3.T0, session_v3.T0 + 1)

    v1 = summaries["20000101-000000-001"]
    assert v1["status"] == "complete" and v1["settled_at"] is None and v1["problems"] == []
    assert v1["frame_count"] == 0 and v1["cameras"] == {}

    invalid = summaries["20000101-000000-000"]
    assert invalid["status"] == "unreadable" and invalid["manifest"] is False
    assert "session.json is not a session manifest" in invalid["error"] and "status" in invalid["error"]
    assert invalid["problems"] == [] and invalid["settled_at"] is None
    garbled = summaries["20000101-000000-003"]
    assert garbled["status"] == "unreadable" and "session.json cannot be read" in garbled["error"]
    # Fixed in place: the next listing reads it again (the cache follows the file's mtime and size).
    (save / "20000101-000000-003" / "session.json").write_text(
        json.dumps({"session_id": "20000101-000000-003", "status": "failed"}), encoding="utf-8"
    )
    again = {s["session_id"]: s for s in client.get("/sessions").get_json()["sessions"]}
    assert again["20000101-000000-003"]["status"] == "failed" and "error" not in again["20000101-000000-003"]

    # A session.json that is a symbolic link is never followed: listed as having no manifest.
    linked = save / "20000101-000000-004"
    linked.mkdir()
    (linked / "session.json").symlink_to(save / "20000101-000000-002" / "session.json")
    service.catalog.refresh()
    listed = {s["session_id"]: s for s in client.get("/sessions").get_json()["sessions"]}
    assert listed["20000101-000000-004"]["status"] == "incomplete"
    assert is_error(client.get("/sessions/20000101-000000-004"), 404)


def test_paths_never_leave_the_save_folder(
    service: CaptureService, client: FlaskClient, tmp_path: Path
) -> None:
    save = service.paths.save_dir
    session = save / "20260101-000000-000"
    (session / "cam").mkdir(parents=True)
    (session / "cam" / "000001.png").write_bytes(b"not really a png")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    os.symlink(secret, session / "cam" / "link.png")  # a symlink pointing out of the session
    os.symlink(tmp_path, save / "20260101-000000-001")  # a session that is a symlink out
    linked = save / "20260101-000000-002"  # a real session whose session.json links out
    linked.mkdir()
    os.symlink(secret, linked / "session.json")
    sid = session.name

    assert client.get(f"/sessions/{sid}/files/cam/000001.png").status_code == 200
    refused = [
        f"/sessions/{sid}/files/../../secret.txt",
        f"/sessions/{sid}/files/..%2F..%2Fsecret.txt",
        f"/sessions/{sid}/files/%2e%2e/%2e%2e/secret.txt",
        f"/sessions/{sid}/files/cam/../../../secret.txt",
        f"/sessions/{sid}/files/C:/secret.txt",
        f"/sessions/{sid}/files/cam\\..\\..\\secret.txt",
        f"/sessions/{sid}/files/cam/link.png",
        f"/sessions/{sid}/thumbs/cam/link.png",
        f"/sessions/{sid}/files/cam",  # a folder, not a file
        "/sessions/20260101-000000-001/files/secret.txt",
        "/sessions/20260101-000000-001",
        "/sessions/20260101-000000-001.zip",
        "/sessions/20260101-000000-002",
        "/sessions/..",
        "/sessions/..%2F..%2Fsecret.txt",
        "/sessions/nope/files/x.png",
    ]
    for url in refused:
        resp = client.get(url, follow_redirects=True)
        assert resp.status_code in (400, 404), (url, resp.status_code)
        assert resp.data.strip() != b"secret", url
        if resp.is_json:
            assert set(resp.get_json()) == {"error", "details"}, url
    # An absolute path: werkzeug merges the double slash and redirects inside the session; still 404.
    resp = client.get(f"/sessions/{sid}/files/{secret}", follow_redirects=True)
    assert resp.status_code == 404 and resp.get_data() != b"secret"
    # The listing skips the symlinked folder, and the zip skips the symlinked file.
    service.catalog.refresh()  # folders made by hand are indexed at the catalog's next refresh
    listed = {s["session_id"]: s for s in client.get("/sessions").get_json()["sessions"]}
    assert sorted(listed) == [sid, linked.name] and "secret" not in json.dumps(listed[linked.name])
    with zipfile.ZipFile(io.BytesIO(client.get(f"/sessions/{sid}.zip").data)) as zf:
        assert zf.namelist() == [f"{sid}/cam/000001.png"]
    # An unreadable image is a clear error, not a crash.
    assert is_error(client.get(f"/sessions/{sid}/files/cam/000001.png?view=1"), 415)


def test_token_is_needed_everywhere_but_the_page(start_service: Callable[..., CaptureService]) -> None:
    token = "s3cret"
    service = start_service("mqtt", api={"token": token})
    client = create_app(service).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/static/js/main.js").status_code == 200
    auth = {"Authorization": f"Bearer {token}"}
    wait_for_frames(client, auth)
    for url in ("/cameras", "/cameras/cameradevice_swir_1/live.jpg", "/sessions", "/sessions/x.zip"):
        resp = client.get(url)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer"), url
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401, url
    assert client.get("/cameras", headers=auth).status_code == 200
    assert client.get("/cameras/cameradevice_swir_1/live.jpg", headers=auth).status_code == 200
    assert client.get("/sessions", headers=auth).status_code == 200
