"""Sessions copied to an S3-compatible store (service.uploads), against moto's S3 server on loopback.

The store is moto's standalone S3 server (``moto[server]``) run by tests/s3server.py on 127.0.0.1:
real HTTP, real S3 requests and error answers. "The store stopped and restarted" is its HTTP server
going down (listening socket and open connections closed) and coming back on the same port with its
data (moto keeps the data in this process); see tests/s3server.py.

Unit tests (unmarked) need no server.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from rigcore.atomic import write_json_atomic
from rigcore.config import REDACTED, Config, RemoteStorageConfig
from rigcore.config_policy import ConfigRefused
from service.capture import CaptureService
from service.uploads.s3_store import etag_of
from service.uploads.uploader import Uploader
from sessions.scan_manifest import ScanManifest, write_scan_manifest
from sessions.upload_queue import Journal, VerifiedObject, read_journal, read_record
from tests.conftest import batch, free_port, scaled, service_process
from tests.s3server import S3Server

MIB = 1024 * 1024


@pytest.fixture
def s3() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"rig-{uuid.uuid4().hex[:12]}"
    s3.make_bucket(name)
    return name


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _record(client: FlaskClient) -> str:
    done = client.post("/process-request", json=batch(4500, -1000, seconds=1.0)).get_json()
    assert done["status"] == "succeeded", done
    return str(done["session"]["session_id"])


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _synthetic_session(save_dir: Path, session_id: str, big_mib: int = 0, frames: int = 12) -> Path:
    folder = save_dir / session_id
    (folder / "cam").mkdir(parents=True)
    for i in range(frames):
        (folder / "cam" / f"{i:04d}.png").write_bytes(os.urandom(50_000 + i))
    if big_mib:
        (folder / "cam" / "big.raw").write_bytes(os.urandom(big_mib * MIB + 123))
    (folder / "session.json").write_text(json.dumps({"session_id": session_id, "status": "complete"}))
    return folder


# -- against the store ---------------------------------------------------------------------------------
@pytest.mark.integration
def test_recorded_session_is_uploaded_byte_identical_session_json_last(
    start_service: Callable[..., CaptureService], s3: S3Server, bucket: str
) -> None:
    service = start_service(storage={"remote": s3.remote_config(bucket, prefix="rig-a/")})
    client = create_app(service).test_client()
    sid = _record(client)
    assert service.aftercare.wait_idle(scaled(20))
    assert service.uploads.wait_idle(scaled(30)), service.uploads.status()

    folder = service.paths.save_dir / sid
    local = _local_files(folder)
    stored = s3.objects(bucket)
    assert stored == {f"rig-a/{sid}/{rel}": data for rel, data in local.items()}
    assert all(n == 1 for n in s3.writes.values()), s3.writes  # each object written once
    # session.json is written last: once it is in the store, the session is whole there.
    journal = read_journal(service.paths.images_data_dir, "session", sid)
    assert list(journal)[-1] == f"rig-a/{sid}/session.json"

    view = client.get(f"/sessions/{sid}").get_json()
    assert view["session_id"] == sid
    assert view["upload"]["state"] == "uploaded" and view["upload"]["objects"] == len(local)
    assert view["upload"]["location"] == f"s3://{bucket}/rig-a/{sid}/"
    queue = client.get("/status").get_json()["uploads"]
    assert queue["enabled"] and queue["sessions_pending"] == 0 and queue["bytes_pending"] == 0
    assert queue["last_error"] is None


@pytest.mark.integration
def test_store_down_mid_upload_resumes_without_duplicates(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """Multipart (a 12 MiB file in 5 MiB parts) and small files; the store goes down in the middle
    and comes back: everything arrives once, nothing is missing, no multipart upload is left open."""
    save_dir, images = tmp_path / "save", tmp_path / "images_data"
    folder = _synthetic_session(save_dir, "s-outage", big_mib=12, frames=30)
    remote = RemoteStorageConfig(
        **s3.remote_config(bucket, multipart_threshold_mb=5, part_size_mb=5, concurrency=2)
    )
    s3.delay_s = 0.05
    uploader = Uploader(remote, save_dir, images)
    uploader.start()
    try:
        _wait(lambda: s3.total_writes() >= 8, 30, "the first objects to arrive")
        s3.stop()
        _wait(
            lambda: (uploader.status()["last_error"] or {}).get("message", "").startswith("cannot reach"),
            30,
            "the outage to show",
        )
        state = uploader.session_state("s-outage")
        assert state is not None and state["state"] in ("failed", "uploading")
        assert folder.is_dir()
        s3.delay_s = 0.0
        s3.start()  # same port, same data
        assert uploader.wait_idle(scaled(60)), uploader.status()
    finally:
        uploader.stop()
    stored = s3.objects(bucket)
    assert stored == {f"s-outage/{rel}": data for rel, data in _local_files(folder).items()}
    assert set(s3.writes) == set(stored) and all(n == 1 for n in s3.writes.values()), s3.writes
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert uploader.status()["last_error"] is None
    record = read_record(images, "session", "s-outage")
    assert record is not None and record.state == "uploaded" and record.attempts >= 1


@pytest.mark.integration
def test_service_killed_mid_upload_resumes_after_restart(
    sim: Any,
    start_service: Callable[..., CaptureService],
    make_config: Callable[..., Config],
    s3: S3Server,
    bucket: str,
    tmp_path: Path,
) -> None:
    """kill -9 of the service process while it uploads; the next start finishes the session: every
    object verified before the kill is never sent again, and only the one in flight at the kill
    (concurrency 1) may be written twice — it was never verified, so sending it again is right."""
    recorder = start_service()  # no store configured: the session stays local
    sid = _record(create_app(recorder).test_client())
    assert recorder.aftercare.wait_idle(scaled(20))
    recorder.stop()
    folder = recorder.paths.save_dir / sid
    assert len(_local_files(folder)) > 6

    port = free_port()
    config = make_config(storage={"remote": s3.remote_config(bucket, concurrency=1)}).to_json()
    config["api"]["port"] = port
    cfg_path = tmp_path / "upload-config.json"
    write_json_atomic(cfg_path, config)
    s3.delay_s = 0.3  # slow enough to be killed in the middle
    with service_process(cfg_path, tmp_path, port) as proc:  # the queue is swept at start: it uploads
        _wait(lambda: s3.total_writes() >= 3, 30, "the upload to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert s3.total_writes() < len(_local_files(folder)), "the upload finished before the kill"
    record = read_record(recorder.paths.images_data_dir, "session", sid)
    assert record is not None and record.state == "uploading"
    verified_before = set(read_journal(recorder.paths.images_data_dir, "session", sid))
    assert verified_before, "nothing was verified before the kill"

    s3.delay_s = 0.0
    service = start_service(storage={"remote": s3.remote_config(bucket)})
    assert service.uploads.wait_idle(scaled(30)), service.uploads.status()
    stored = s3.objects(bucket)
    assert stored == {f"{sid}/{rel}": data for rel, data in _local_files(folder).items()}
    assert all(s3.writes[key] == 1 for key in verified_before), s3.writes
    twice = [key for key, n in s3.writes.items() if n > 1]
    assert len(twice) <= 1 and all(s3.writes[key] == 2 for key in twice), s3.writes


@pytest.mark.integration
def test_wrong_credentials_clear_error_and_session_kept(
    start_service: Callable[..., CaptureService], s3: S3Server, bucket: str
) -> None:
    remote = s3.remote_config(bucket, access_key="AKIANOTAKEY", delete_local_after_upload=True)
    s3.enforce_auth(True)
    try:
        service = start_service(storage={"remote": remote})
        client = create_app(service).test_client()
        sid = _record(client)

        def error() -> str:
            return str((client.get("/status").get_json()["uploads"]["last_error"] or {}).get("message", ""))

        _wait(lambda: "InvalidAccessKeyId" in error(), 30, "the credentials error in /status")
    finally:
        s3.enforce_auth(False)
    message = error()
    assert f"bucket {bucket}" in message and s3.url in message and "access_key" in message
    assert (service.paths.save_dir / sid / "session.json").is_file()  # kept: nothing was verified
    view = client.get(f"/sessions/{sid}").get_json()
    assert view["upload"]["state"] in ("failed", "uploading") and view["upload"]["state"] != "uploaded"
    assert "secret_key" not in json.dumps(client.get("/config").get_json()).replace('"secret_key": "***"', "")
    assert s3.writes == {}


@pytest.mark.integration
def test_missing_bucket_is_named_and_never_created(s3: S3Server, tmp_path: Path) -> None:
    save_dir = tmp_path / "save"
    _synthetic_session(save_dir, "s-nobucket", frames=2)
    uploader = Uploader(
        RemoteStorageConfig(**s3.remote_config("no-such-bucket-here")), save_dir, tmp_path / "i"
    )
    uploader.start()
    try:
        _wait(lambda: uploader.status()["last_error"] is not None, 20, "the error")
    finally:
        uploader.stop()
    message = uploader.status()["last_error"]["message"]
    assert "NoSuchBucket" in message and "no-such-bucket-here" in message
    assert "no-such-bucket-here" not in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]


@pytest.mark.integration
def test_delete_local_after_upload_only_after_verification(
    start_service: Callable[..., CaptureService], s3: S3Server, bucket: str
) -> None:
    service = start_service(storage={"remote": s3.remote_config(bucket, delete_local_after_upload=True)})
    client = create_app(service).test_client()
    sid = _record(client)
    folder = service.paths.save_dir / sid
    assert service.aftercare.wait_idle(scaled(20))
    assert service.uploads.wait_idle(scaled(30)), service.uploads.status()
    assert not folder.exists()
    journal = read_journal(service.paths.images_data_dir, "session", sid)
    stored = s3.objects(bucket)
    assert set(journal) == set(stored) and f"{sid}/session.json" in stored
    assert all(len(stored[k]) == v.size for k, v in journal.items())
    answer = client.get(f"/sessions/{sid}")
    assert answer.status_code == 404
    assert answer.get_json()["upload"]["state"] == "local-deleted"


@pytest.mark.integration
def test_uploads_wait_while_a_job_records(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    save_dir = tmp_path / "save"
    _synthetic_session(save_dir, "s-busy", frames=3)
    busy = threading.Event()
    busy.set()
    uploader = Uploader(
        RemoteStorageConfig(**s3.remote_config(bucket)), save_dir, tmp_path / "i", busy.is_set
    )
    uploader.start()
    try:
        _wait(lambda: uploader.status()["activity"] == "paused", 20, "the uploader to pause")
        time.sleep(0.3)
        assert s3.writes == {}
        busy.clear()
        assert uploader.wait_idle(scaled(20))
    finally:
        uploader.stop()
    assert len(s3.objects(bucket)) == 4


@pytest.mark.integration
def test_final_scan_manifest_is_uploaded_not_a_running_one(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    images = tmp_path / "images_data"
    uploader = Uploader(
        RemoteStorageConfig(**s3.remote_config(bucket, prefix="p/")), tmp_path / "save", images
    )
    uploader.start()
    try:
        scan_id = "scan-20261130-120000-abcdef"
        running = ScanManifest(scan_id=scan_id, status="running", created_at=1.0)
        uploader.scan_written(running, write_scan_manifest(images, running))
        done = running.model_copy(update={"status": "succeeded", "finished_at": 2.0})
        path = write_scan_manifest(images, done)
        uploader.scan_written(done, path)
        assert uploader.wait_idle(scaled(20))
    finally:
        uploader.stop()
    assert s3.objects(bucket) == {f"p/scans/{scan_id}.json": path.read_bytes()}
    assert s3.writes == {f"p/scans/{scan_id}.json": 1}


# -- unit ------------------------------------------------------------------------------------------------
def _remote(**extra: Any) -> dict[str, Any]:
    return {"bucket": "rig-bucket", "access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t", **extra}


def test_get_config_redacts_the_store_credentials_and_put_cannot_change_them(tmp_path: Path) -> None:
    cfg_path = tmp_path / "config.json"
    write_json_atomic(cfg_path, {"storage": {"remote": _remote(endpoint="http://127.0.0.1:9000")}})
    config = Config.load(cfg_path)
    shown = config.to_json(redact=True)["storage"]["remote"]
    assert shown["access_key"] == REDACTED and shown["secret_key"] == REDACTED
    assert shown["endpoint"] == "http://127.0.0.1:9000" and shown["bucket"] == "rig-bucket"
    service = CaptureService(config, base_dir=tmp_path, config_path=cfg_path)
    # Sent back as shown: unchanged, accepted.
    service.settings.update({"storage": config.to_json(redact=True)["storage"]})
    with pytest.raises(ConfigRefused) as refused:
        service.settings.update({"storage": {"remote": {"bucket": "elsewhere"}}})
    assert refused.value.status == 403 and "storage.remote" in str(refused.value)


def test_remote_config_is_checked() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        RemoteStorageConfig(**_remote(endpoint="minio.lab:9000"))
    with pytest.raises(ValueError, match="part_size_mb"):
        RemoteStorageConfig(**_remote(part_size_mb=1))


def test_etag_matches_s3_rule_for_single_and_multipart(tmp_path: Path) -> None:
    import hashlib

    remote = RemoteStorageConfig(**_remote(multipart_threshold_mb=5, part_size_mb=5))
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x" * 1000)
    data = os.urandom(11 * MIB)
    big.write_bytes(data)
    assert etag_of(small, 1000, remote) == hashlib.md5(b"x" * 1000).hexdigest()
    parts = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    assert etag_of(big, len(data), remote) == f"{hashlib.md5(joined).hexdigest()}-3"


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    with Journal(tmp_path, "session", "s1") as journal:
        journal.add(VerifiedObject(key="a", size=1, etag="e", at=1.0))
    path = tmp_path / "uploads" / "sessions" / "s1.verified.jsonl"
    with path.open("a") as fh:
        fh.write('{"key":"b","si')  # killed mid-line
    with Journal(tmp_path, "session", "s1") as journal:
        journal.add(VerifiedObject(key="c", size=3, etag="e", at=2.0))
    assert list(read_journal(tmp_path, "session", "s1")) == ["a", "c"]


def test_no_store_configured_means_no_queue(tmp_path: Path) -> None:
    uploader = Uploader(None, tmp_path / "save", tmp_path / "images")
    uploader.start()
    assert uploader.status() == {"enabled": False}
    assert uploader.session_state("anything") is None
    uploader.stop()
