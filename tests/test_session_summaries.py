"""The dashboard's session summaries (api.session_summaries) read from session folders, without a
server: capture times per camera, the wait for late frames, older sessions, the cache."""

from __future__ import annotations

import json
from pathlib import Path

from api.session_summaries import SummaryCache
from tests import session_v3


def test_a_session_with_capture_times_summarises_them_per_camera(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    session_v3.write_session(folder)
    summary = SummaryCache().summary(folder)
    assert summary["manifest"] is True and summary["frame_count"] == 2 * session_v3.FRAMES
    swir = summary["cameras"][session_v3.SWIR]
    assert swir["time_sources"] == {"stamp": 10}
    assert swir["delay_s"] == {"median": 0.4, "p99": 0.43, "max": 0.45, "frames": 10}
    assert swir["clock"] == {"status": "ok", "reasons": []}
    assert len(swir["strip"]) == 8 and swir["strip"][0] == {
        "index": 0,
        "file": f"{session_v3.SWIR}/000001.png",
    }
    assert summary["capture"] == {
        "dropped_before": 12,
        "dropped_after": 3,
        "late_wait_s": 3.0,
        "waited_s": 1.35,
        "unconfirmed": [session_v3.LWIR],
    }


def test_an_older_session_has_no_capture_times_to_show(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    session_v3.old_session(folder)
    summary = SummaryCache().summary(folder)
    assert summary["capture"] is None
    for camera in summary["cameras"].values():
        assert (camera["time_sources"], camera["delay_s"], camera["clock"]) == ({}, None, None)


def test_a_delay_that_is_not_an_object_is_left_out(tmp_path: Path) -> None:
    doc = session_v3.manifest_doc()
    doc["settle"]["delay_s"] = {session_v3.SWIR: 0.4, session_v3.LWIR: None}
    folder = tmp_path / "odd"
    session_v3.write_session(folder, doc)
    summary = SummaryCache().summary(folder)
    assert {c["delay_s"] for c in summary["cameras"].values()} == {None}
    doc["settle"]["delay_s"] = "not a mapping"
    (folder / "session.json").write_text(json.dumps(doc), encoding="utf-8")
    assert {c["delay_s"] for c in SummaryCache().summary(folder)["cameras"].values()} == {None}


def test_folders_without_a_manifest_have_the_same_keys(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    session_v3.write_session(folder)
    full = SummaryCache().summary(folder)
    (tmp_path / "recording").mkdir()
    incomplete = SummaryCache().summary(tmp_path / "recording")
    assert incomplete["status"] == "incomplete" and incomplete["capture"] is None
    assert set(incomplete) == set(full)
