"""The session catalog (sessions.catalog): filled as sessions are saved, rebuilt from the folders when
missing or damaged, refreshed incrementally at start, and GET /sessions's filters answered from it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from rigcli import main as rigcli_main
from rigcore.config import Config
from service.capture import CaptureService
from sessions import catalog_index
from sessions.catalog import (
    CATALOG_FILE,
    Catalog,
    FilterError,
    SessionQuery,
    query_from_params,
)
from sessions.folders import sort_key
from sessions.manifest import SessionManifest, SessionStatus, write_manifest
from sessions.scan_manifest import ScanManifest, write_scan_manifest
from sessions.upload_queue import UploadRecord, UploadState, read_record, write_record
from simulator.rig import SimRig
from tests.conftest import batch, scaled, serve, wait_job

LWIR, SWIR, RGB = "cameradevice_lwir_1", "cameradevice_swir_1", "cameradevice_rgb_1"
T0 = 1_780_000_000.0
SCAN = "scan-20260101-000000-abcdef"


def manifest(
    sid: str,
    *,
    status: str = "complete",
    cameras: tuple[str, ...] = (SWIR, RGB),
    started: float = T0,
    pan: float | None = 0,
    tilt: float | None = 0,
    scan_id: str | None = None,
    label: str | None = None,
) -> SessionManifest:
    frames = [
        {"file": f"{c}/f0.png", "received_at": started, "timestamp_ns": None, "frame_index": 0, "pose": None}
        for c in cameras
    ]
    data: dict[str, Any] = {
        "session_id": sid,
        "status": status,
        "record_started_at": started,
        "record_ended_at": started + 1,
        "pose_at_start": {"pan_deg_x100": pan, "tilt_deg_x100": tilt},
        "cameras": {
            c: {"frame_count": 1, "frames": [f for f in frames if f["file"].startswith(c)]} for c in cameras
        },
        "scan_id": scan_id,
        "pose_index": 0 if scan_id else None,
    }
    if label is not None:
        data["label"] = label
    return SessionManifest.model_validate(data)


def save(save_dir: Path, m: SessionManifest) -> Path:
    folder = save_dir / m.session_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f0.png").write_bytes(b"x" * 100)
    write_manifest(folder, m)
    return folder


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    save_dir, images = tmp_path / "save", tmp_path / "images_data"
    save_dir.mkdir()
    images.mkdir()
    return save_dir, images


@pytest.fixture
def open_catalog(dirs: tuple[Path, Path]) -> Iterator[Callable[[], Catalog]]:
    made: list[Catalog] = []

    def make() -> Catalog:
        catalog = Catalog(*dirs)
        made.append(catalog)
        return catalog

    yield make
    for catalog in made:
        catalog.close()


SESSIONS = [
    manifest("20260101-100000-001", cameras=(SWIR, RGB), started=T0, pan=-4500, tilt=-1000),
    manifest("20260101-100500-002", cameras=(LWIR,), started=T0 + 300, pan=0, tilt=500, status="partial"),
    manifest(
        "20260101-101000-003", cameras=(LWIR, SWIR), started=T0 + 600, pan=4500, tilt=1000, scan_id=SCAN
    ),
    manifest(
        "20260101-101500-004", cameras=(RGB,), started=T0 + 900, pan=9000, tilt=None, label="Roof survey"
    ),
    manifest(
        "20260101-102000-005", cameras=(SWIR,), started=T0 + 1200, pan=None, tilt=-1000, status="failed"
    ),
]


def ids(catalog: Catalog, **filters: Any) -> list[str]:
    page = catalog.query(SessionQuery(**filters), 100, 0)
    assert page.total == len(page.rows), (page.total, page.rows)
    return [r.session_id for r in page.rows]


def filled(dirs: tuple[Path, Path], make: Callable[[], Catalog]) -> Catalog:
    save_dir, _ = dirs
    catalog = make()
    catalog.refresh()
    for m in SESSIONS:
        catalog.add_session(m, save(save_dir, m))
    return catalog


def test_filters_each_and_combined(dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]) -> None:
    catalog = filled(dirs, open_catalog)
    newest_first = [m.session_id for m in reversed(SESSIONS)]
    assert ids(catalog) == newest_first
    assert ids(catalog, camera=LWIR) == [newest_first[2], newest_first[3]]
    assert ids(catalog, camera="cameradevice_never_seen") == []
    assert ids(catalog, status="partial") == ["20260101-100500-002"]
    assert ids(catalog, since=T0 + 300, until=T0 + 900) == ["20260101-101000-003", "20260101-100500-002"]
    assert ids(catalog, scan_id=SCAN) == ["20260101-101000-003"]
    assert ids(catalog, pan_min=0, pan_max=4500) == ["20260101-101000-003", "20260101-100500-002"]
    assert ids(catalog, tilt_min=-1000, tilt_max=0) == ["20260101-102000-005", "20260101-100000-001"]
    with_pan = [
        m.session_id for m in reversed(SESSIONS) if (m.pose_at_start or {})["pan_deg_x100"] is not None
    ]
    assert ids(catalog, pan_min=-100000) == with_pan  # a session without a pan matches no pan range
    assert ids(catalog, q="roof") == ["20260101-101500-004"]  # the label, case-insensitive
    assert ids(catalog, q="100500") == ["20260101-100500-002"]  # a part of the id
    assert ids(catalog, q="vE") == ["20260101-101500-004"]  # shorter than a trigram: matched row by row
    assert ids(catalog, q='roof"') == [] and ids(catalog, q='"Roof') == []  # quotes are text too
    assert ids(catalog, camera=SWIR, status="complete", pan_min=0) == ["20260101-101000-003"]
    # The filters are values, never SQL: LIKE's wildcards and quotes match themselves.
    assert ids(catalog, q="%") == [] and ids(catalog, q="_") == [] and ids(catalog, q="' OR 1=1 --") == []
    catalog.remove_session("20260101-100000-001")
    assert "20260101-100000-001" not in ids(catalog) and ids(catalog, q="100000-001") == []
    catalog.add_session(SESSIONS[0], dirs[0] / SESSIONS[0].session_id)
    row = catalog.get("20260101-101000-003")
    assert row is not None
    assert (row.pan_x100, row.tilt_x100, row.pose_index, row.frame_count) == (4500, 1000, 0, 2)
    assert set(row.cameras) == {LWIR, SWIR} and row.bytes and row.bytes > 100


def test_paging_and_total(dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]) -> None:
    catalog = filled(dirs, open_catalog)
    first = catalog.query(SessionQuery(), 2, 0)
    second = catalog.query(SessionQuery(), 2, 2)
    assert first.total == second.total == len(SESSIONS)
    assert [r.session_id for r in first.rows + second.rows] == [m.session_id for m in reversed(SESSIONS)][:4]
    # A remembered total follows a new session at once.
    new = manifest("20260101-103000-006", cameras=(LWIR,), started=T0 + 1800)
    catalog.add_session(new, save(dirs[0], new))
    assert catalog.query(SessionQuery(), 2, 0).total == len(SESSIONS) + 1
    assert catalog.query(SessionQuery(camera=LWIR), 1, 0).total == 3


def test_natural_order_of_folder_names() -> None:
    names = [
        "20260101-100000-001-10",
        "20260101-100000-001-9",
        "20260101-100000-001",
        "x",
        "20260101-100000-002",
    ]
    assert sorted(names, key=sort_key) == [
        "20260101-100000-001",
        "20260101-100000-001-9",
        "20260101-100000-001-10",
        "20260101-100000-002",
        "x",
    ]


def test_rebuilt_from_the_folders_when_missing(
    dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]
) -> None:
    save_dir, images = dirs
    for m in SESSIONS:
        save(save_dir, m)
    (save_dir / "20260101-110000-007").mkdir()  # a folder without session.json: interrupted or recording
    catalog = open_catalog()
    report = catalog.refresh()
    assert report.full and report.read == len(SESSIONS) + 1
    assert (images / CATALOG_FILE).is_file()
    assert ids(catalog, status="incomplete") == ["20260101-110000-007"]
    assert len(ids(catalog)) == len(SESSIONS) + 1


def test_damaged_file_is_rebuilt(dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]) -> None:
    save_dir, images = dirs
    for m in SESSIONS:
        save(save_dir, m)
    first = open_catalog()
    first.refresh()
    first.close()
    path = images / CATALOG_FILE
    data = bytearray(path.read_bytes())
    data[0:100] = b"\xff" * 100  # the header and the first page's start: not a database any more
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    catalog = open_catalog()
    report = catalog.refresh()
    assert report.full, "a damaged catalog was trusted"
    assert len(ids(catalog)) == len(SESSIONS)


def test_garbage_file_is_rebuilt(dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]) -> None:
    save_dir, images = dirs
    save(save_dir, SESSIONS[0])
    (images / CATALOG_FILE).write_bytes(b"not a database at all" * 100)
    catalog = open_catalog()
    assert catalog.refresh().full
    assert ids(catalog) == [SESSIONS[0].session_id]


def test_incremental_start_reads_only_what_changed(
    dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]
) -> None:
    save_dir, _ = dirs
    for m in SESSIONS:
        save(save_dir, m)
    first = open_catalog()
    assert first.refresh().full
    first.set_upload_state(SESSIONS[0].session_id, "uploaded", {"objects": 3})
    first.close()
    # While stopped: one session added, one removed, one rewritten (now partial).
    added = manifest("20260101-120000-008", cameras=(LWIR,), started=T0 + 7200)
    save(save_dir, added)
    removed = SESSIONS[1].session_id
    for f in (save_dir / removed).iterdir():
        f.unlink()
    (save_dir / removed).rmdir()
    changed = SESSIONS[2].model_copy(update={"status": SessionStatus.PARTIAL})
    time.sleep(0.01)  # a new mtime even on coarse clocks
    write_manifest(save_dir / changed.session_id, changed)
    catalog = open_catalog()
    report = catalog.refresh()
    assert not report.full
    assert (report.read, report.removed) == (2, 1), report
    listed = ids(catalog)
    assert added.session_id in listed and removed not in listed
    assert ids(catalog, status="partial") == [changed.session_id]
    row = catalog.get(SESSIONS[0].session_id)
    assert row is not None and row.upload_state == "uploaded" and row.upload_detail == {"objects": 3}
    # Nothing changed since: nothing read.
    again = open_catalog()
    assert again.refresh().read == 0


def test_background_refresh_and_aftercare_meet(
    dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]
) -> None:
    save_dir, _ = dirs
    for m in SESSIONS:
        save(save_dir, m)
    catalog = open_catalog()
    catalog.start_refresh()
    late = manifest("20260101-130000-009", cameras=(RGB,), started=T0 + 9000)
    catalog.add_session(late, save(save_dir, late))  # while the refresh runs (or before it opened)
    assert catalog.wait_ready(30)
    assert late.session_id in ids(catalog)
    assert len(ids(catalog)) == len(SESSIONS) + 1


def test_scan_label_is_searchable(dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]) -> None:
    _, images = dirs
    scan = ScanManifest(scan_id=SCAN, label="North facade", status="succeeded")
    path = write_scan_manifest(images, scan)
    catalog = filled(dirs, open_catalog)
    catalog.add_scan(scan, path)
    assert ids(catalog, q="facade") == ["20260101-101000-003"]
    # And from the files alone, in a rebuild.
    (images / CATALOG_FILE).unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{images / CATALOG_FILE}{suffix}").unlink(missing_ok=True)
    fresh = open_catalog()
    fresh.refresh()
    assert ids(fresh, q="facade") == ["20260101-101000-003"]
    assert fresh.status()["state"] == "ready" and fresh.status()["sessions"] == len(SESSIONS)


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "nan"}, "until"),
        ({"pan_min": "1.5"}, "pan_min"),
        ({"tilt_max": "ten"}, "tilt_max"),
        ({"status": "done"}, "status"),
        ({"pan_min": "100", "pan_max": "-100"}, "pan_min"),
        ({"since": "200", "until": "100"}, "since"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_filters_name_the_parameter(params: dict[str, str], bad: str) -> None:
    with pytest.raises(FilterError) as info:
        query_from_params(params)
    assert info.value.param == bad and bad in str(info.value)


def test_filters_parsed() -> None:
    q = query_from_params(
        {"camera": LWIR, "pan_min": "-1500", "since": "1780000000.5", "q": " roof ", "status": ""}
    )
    assert q == SessionQuery(camera=LWIR, pan_min=-1500, since=1780000000.5, q="roof")
    assert not query_from_params({}).filtered() and q.filtered()


# -- through the service and GET /sessions ------------------------------------------------------
@pytest.mark.integration
def test_get_sessions_filters_after_real_recordings(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service("mqtt")
    client = create_app(service).test_client()
    assert service.catalog.wait_ready(scaled(30))
    for pan, cams in ((-3000, (SWIR, RGB)), (3000, (LWIR,))):
        accepted = client.post(
            "/process-request?wait=false", json=batch(pan=pan, tilt=0, seconds=0.5, cameras=cams)
        )
        assert accepted.status_code == 202, accepted.get_json()
        job = wait_job(client, accepted.get_json()["job_id"], 60)
        assert job["status"] == "succeeded", job
    assert service.aftercare.wait_idle(scaled(30))
    everything = client.get("/sessions").get_json()
    assert everything["total"] == 2 and everything["catalog"] == "ready", everything
    assert {"strip", "frame_count"} <= set(
        everything["sessions"][0]["cameras"][next(iter(everything["sessions"][0]["cameras"]))]
    )
    lwir = client.get(f"/sessions?camera={LWIR}").get_json()
    assert lwir["total"] == 1 and list(lwir["sessions"][0]["cameras"]) == [LWIR], lwir
    east = client.get("/sessions", query_string={"pan_min": 1000, "status": "complete"}).get_json()
    assert east["total"] == 1 and east["sessions"][0]["session_id"] == lwir["sessions"][0]["session_id"]
    west = client.get(
        "/sessions", query_string={"pan_max": -1000, "tilt_min": -100, "tilt_max": 100}
    ).get_json()
    assert west["total"] == 1 and set(west["sessions"][0]["cameras"]) == {SWIR, RGB}
    recent = client.get("/sessions", query_string={"since": time.time() - 3600, "limit": 1}).get_json()
    assert recent["total"] == 2 and len(recent["sessions"]) == 1
    assert client.get("/sessions?until=1").get_json()["total"] == 0
    bad = client.get("/sessions?pan_min=east")
    assert bad.status_code == 400
    body = bad.get_json()
    assert "pan_min" in body["error"] and body["details"][0]["field"] == "pan_min", body
    status = client.get("/status").get_json()
    assert status["catalog"]["state"] == "ready" and status["catalog"]["sessions"] == 2, status["catalog"]
    # The command-line client's filters are the same.
    with serve(service) as url:
        out, err = io.StringIO(), io.StringIO()
        code = rigcli_main(
            ["sessions", "--url", url, "--camera", LWIR, "--pan-min", "10"], stdout=out, stderr=err
        )
        assert code == 0, err.getvalue()
        assert (
            lwir["sessions"][0]["session_id"] in out.getvalue()
            and "1 of 1 sessions matching" in out.getvalue()
        )
        code = rigcli_main(["sessions", "--url", url, "--pan-min", "east"], stdout=out, stderr=err)
        assert code != 0 and "--pan-min" in err.getvalue(), (code, err.getvalue())


def test_get_sessions_while_the_catalog_is_first_built(tmp_path: Path) -> None:
    """Before the first rebuild opened the index: an unfiltered page from the folders as before, a
    filtered one 503 (retry); once built, both from the index."""
    config = Config.from_dict(
        {"save_dir": str(tmp_path / "save"), "images_data_dir": str(tmp_path / "images_data")}
    )
    service = CaptureService(config, base_dir=tmp_path)
    for m in SESSIONS:
        save(service.paths.save_dir, m)
    client = create_app(service).test_client()
    try:
        assert service.catalog.state == "building"
        listed = client.get("/sessions?limit=2").get_json()
        assert listed["catalog"] == "building" and listed["total"] == len(SESSIONS)
        assert [s["session_id"] for s in listed["sessions"]] == [m.session_id for m in reversed(SESSIONS)][:2]
        waiting = client.get(f"/sessions?camera={LWIR}")
        assert waiting.status_code == 503 and waiting.headers["Retry-After"], waiting.get_json()
        service.catalog.refresh()
        built = client.get(f"/sessions?camera={LWIR}").get_json()
        assert built["catalog"] == "ready" and built["total"] == 2 and not built["partial"], built
        assert built["sessions"][0]["upload_state"] is None and built["sessions"][0]["bytes"] > 0
    finally:
        service.catalog.close()


def test_more_cameras_than_bits(
    dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_CAMERA_BITS cameras, a camera is matched through the cameras column, as exactly."""
    monkeypatch.setattr(catalog_index, "MAX_CAMERA_BITS", 1)
    catalog = filled(dirs, open_catalog)
    assert ids(catalog, camera=LWIR) == ["20260101-101000-003", "20260101-100500-002"]
    assert ids(catalog, camera=RGB) == ["20260101-101500-004", "20260101-100000-001"]
    assert ids(catalog, camera="cameradevice_lwir") == [] and ids(catalog, camera="%") == []


def test_refresh_refills_upload_states_from_the_queue(
    dirs: tuple[Path, Path], open_catalog: Callable[[], Catalog]
) -> None:
    """The upload queue on disk is the record of truth: a rebuilt index (which starts with no upload
    states) and an incremental start (which missed changes while closed) take the states from it."""
    save_dir, images = dirs
    for m in SESSIONS[:3]:
        save(save_dir, m)
    states = {SESSIONS[0].session_id: UploadState.UPLOADED, SESSIONS[1].session_id: UploadState.FAILED}
    for sid, state in states.items():
        write_record(
            images,
            UploadRecord(
                kind="session",
                item_id=sid,
                source=str(save_dir / sid),
                target="http://127.0.0.1:1 bucket p/",
                state=state,
                queued_at=T0,
                attempts=1,
                last_error="boom" if state == UploadState.FAILED else None,
            ),
        )
    write_record(  # a scan's record is not a session's state
        images,
        UploadRecord(kind="scan", item_id=SCAN, source="x", target="t", state="uploaded", queued_at=T0),
    )
    (images / CATALOG_FILE).write_bytes(b"not a database at all" * 100)
    first = open_catalog()
    assert first.refresh().full
    rows = {m.session_id: first.get(m.session_id) for m in SESSIONS[:3]}
    assert {sid: r.upload_state if r else "?" for sid, r in rows.items()} == {
        SESSIONS[0].session_id: "uploaded",
        SESSIONS[1].session_id: "failed",
        SESSIONS[2].session_id: None,
    }
    failed = rows[SESSIONS[1].session_id]
    assert failed is not None and failed.upload_detail is not None
    assert failed.upload_detail["last_error"] == "boom" and failed.upload_detail["attempts"] == 1
    first.close()
    # While stopped, the uploader finished the failed one: an incremental start picks that up.
    record = read_record(images, "session", SESSIONS[1].session_id)
    assert record is not None
    write_record(images, record.model_copy(update={"state": UploadState.UPLOADED, "last_error": None}))
    again = open_catalog()
    assert not again.refresh().full
    row = again.get(SESSIONS[1].session_id)
    assert row is not None and row.upload_state == "uploaded"
    # A state set after the records were read is newer and kept by a later refresh.
    again.set_upload_state(SESSIONS[2].session_id, "uploading", {"attempts": 1})
    again.refresh()
    row = again.get(SESSIONS[2].session_id)
    assert row is not None and row.upload_state == "uploading"
