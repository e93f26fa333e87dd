"""Unit: the session format model (sessions.manifest) and crash recovery of a folder (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sessions.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MARKER_NAME,
    CameraRecord,
    FrameRecord,
    ManifestError,
    RecordingMarker,
    SessionKind,
    SessionManifest,
    SessionStatus,
    read_manifest,
    read_marker,
    write_manifest,
    write_marker,
)
from sessions.recovery import recover_sessions


def manifest(**kw: object) -> SessionManifest:
    frame = FrameRecord(
        file="cam/000001.png", received_at=1.5, timestamp_ns=None, frame_index=7, pose={"p": 1}
    )
    base: dict[str, object] = {
        "session_id": "20261130-010203-004",
        "job_id": "job-1",
        "status": SessionStatus.COMPLETE,
        "settled_at": 1.0,
        "record_started_at": 1.25,
        "record_ended_at": 3.25,
        "cameras": {"cam": CameraRecord(frame_count=1, frames=[frame])},
    }
    return SessionManifest.model_validate({**base, **kw})


def test_round_trip_keeps_every_field_and_the_version(tmp_path: Path) -> None:
    written = manifest(gaps=[{"missing_frames": 3}])
    write_manifest(tmp_path, written)
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert raw["format_version"] == FORMAT_VERSION == 3
    assert raw["settled_at"] == 1.0 and raw["record_started_at"] == 1.25
    back = read_manifest(tmp_path)
    assert back == written and back.missing_frames == 3
    summary = back.summary(tmp_path).to_json()
    assert summary["cameras"] == {"cam": {"frame_count": 1, "rejected_frames": 0}}
    assert summary["status"] == "complete" and summary["path"] == str(tmp_path)


def test_a_version_1_manifest_still_reads_and_unknown_keys_are_kept(tmp_path: Path) -> None:
    old = {"session_id": "s", "job_id": "j", "status": "complete", "cameras": {}, "later_key": {"x": 1}}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(old))
    back = read_manifest(tmp_path)
    assert back.format_version == 1 and back.settled_at is None
    assert back.to_json()["later_key"] == {"x": 1}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "cannot be read"),
        ("[1]", "not a JSON object"),
        ('{"session_id": "s", "status": "odd"}', "status"),
    ],
)
def test_a_bad_manifest_is_a_clear_error_naming_the_file(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(ManifestError, match=needle) as info:
        read_manifest(tmp_path)
    assert MANIFEST_NAME in str(info.value)


def test_a_symlinked_manifest_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"session_id": "s", "status": "complete"}))
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / MANIFEST_NAME).symlink_to(outside)
    with pytest.raises(ManifestError, match="symbolic link"):
        read_manifest(folder)


def test_recovery_lists_the_frames_on_disk_keeps_the_marker_facts_and_drops_spill(tmp_path: Path) -> None:
    save, spill = tmp_path / "save_images", tmp_path / "images_data" / "spill"
    folder = save / "20261130-010203-004"
    (folder / "cam").mkdir(parents=True)
    spill.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "cam" / "000001.png")
    (folder / "cam" / "000002.png").write_bytes(b"\x89PNG torn")
    (spill / f"{folder.name}.spill").write_bytes(b"x" * 100)
    marker = RecordingMarker(session_id=folder.name, job_id="job-9", settled_at=5.0, record_started_at=5.5)
    write_marker(folder, marker)
    assert read_marker(folder) == marker
    untouched = save / "finished"
    untouched.mkdir()
    write_manifest(untouched, manifest(session_id="finished"))

    recovered = recover_sessions(save, spill)
    assert [m.session_id for m in recovered] == [folder.name]
    back = read_manifest(folder)
    assert back.status is SessionStatus.INCOMPLETE and back.job_id == "job-9" and back.settled_at == 5.0
    assert [f.file for f in back.cameras["cam"].frames] == ["cam/000001.png"]
    types = [p.type for p in back.problems]
    assert types == ["Interrupted", "DamagedFiles", "SpillDropped"]
    assert not (folder / MARKER_NAME).exists() and not list(spill.iterdir())
    assert read_manifest(untouched).status is SessionStatus.COMPLETE


def test_an_event_cut_off_comes_back_as_an_event_of_its_node(tmp_path: Path) -> None:
    save, spill = tmp_path / "save_images", tmp_path / "images_data" / "spill"
    folder = save / "20261130-010203-005"
    folder.mkdir(parents=True)
    marker = RecordingMarker(
        session_id=folder.name,
        record_started_at=5.0,
        kind=SessionKind.EVENT,
        event_id="ev-1",
        trigger_at=7.0,
        node_id="rig-a",
    )
    write_marker(folder, marker)
    recover_sessions(save, spill)
    back = read_manifest(folder)
    assert back.kind is SessionKind.EVENT and back.event_id == "ev-1" and back.trigger_at == 7.0
    assert back.node_id == "rig-a" and back.status is SessionStatus.INCOMPLETE
    # An older marker (no kind) still comes back as a recording.
    old = save / "20261130-010203-006"
    old.mkdir()
    write_marker(old, RecordingMarker(session_id=old.name))
    recover_sessions(save, spill)
    assert read_manifest(old).kind is SessionKind.RECORDING and "event_id" not in read_manifest(old).to_json()
