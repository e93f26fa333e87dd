"""``rigcli session`` and the capture summary's camera table (rigcli/session.py), from session.json
documents alone: no service (the commands against a real one are in tests/test_cli.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rigcli.cli import summary
from rigcli.common import iso, iso_span
from rigcli.session import session_lines
from tests import session_v3


def local(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).isoformat(timespec="milliseconds")


def rows(lines: list[str]) -> dict[str, list[str]]:
    """The camera table's rows by camera: the cells split on runs of two spaces or more."""
    header = next(i for i, line in enumerate(lines) if line.startswith("camera "))
    out = {}
    for line in lines[header + 1 :]:
        cells = [c.strip() for c in line.split("  ") if c.strip()]
        if cells and cells[0].startswith("cameradevice_"):
            out[cells[0]] = cells[1:]
    return out


def test_local_iso_times_and_spans() -> None:
    t0 = session_v3.T0
    assert iso(t0 + 0.25) == local(t0 + 0.25) and iso(None) == "-" and iso(True) == "-"
    assert iso_span(t0, t0 + 1.5) == f"{local(t0)} to {local(t0 + 1.5)[11:]}"
    assert iso_span(t0, t0 + 2 * 86400) == f"{local(t0)} to {local(t0 + 2 * 86400)}"
    assert iso_span(t0, None) == local(t0)


def test_a_session_shows_its_window_time_sources_and_delays() -> None:
    lines = session_lines(session_v3.manifest_doc())
    text = "\n".join(lines)
    t0 = session_v3.T0
    assert f"window    {local(t0)} to {local(t0 + 1)[11:]} (1.00 s)" in lines
    assert "pan/tilt  45.00 deg / -10.00 deg" in lines
    assert "dropped   12 frames captured before the window, 3 after" in lines
    assert "late wait 1.35 s (at most 3 s)" in lines
    assert f"WARNING   late frames not confirmed: {session_v3.LWIR}" in text
    table = rows(lines)
    assert table[session_v3.SWIR] == ["10", "0", "stamp", "0.400 / 0.430 / 0.450 s", "ok"]
    assert table[session_v3.LWIR] == ["10", "0", "arrival", "1.300 / 1.380 / 1.410 s", "no stamps"]


def test_mixed_time_sources_and_a_failed_clock() -> None:
    doc = session_v3.manifest_doc()
    swir = doc["cameras"][session_v3.SWIR]
    swir["time_sources"] = {"stamp": 7, "fallback": 3}
    swir["clock"] = {"status": "failed", "reasons": ["stamps run 40 s behind arrival", "jumped back"]}
    table = rows(session_lines(doc))
    assert table[session_v3.SWIR][2:] == [
        "stamp 7, fallback 3",
        "0.400 / 0.430 / 0.450 s",
        "failed: stamps run 40 s behind arrival",
    ]


def test_an_older_session_shows_dashes_where_capture_times_would_be() -> None:
    lines = session_lines(session_v3.old_doc())
    assert not any(line.startswith(("dropped", "late wait", "WARNING")) for line in lines)
    assert rows(lines)[session_v3.LWIR] == ["10", "0", "-", "-", "-"]


def job(**session: Any) -> dict[str, Any]:
    doc = session_v3.manifest_doc()
    cameras = {cam: {"frame_count": 10, "rejected_frames": 0} for cam in doc["cameras"]}
    base = {
        "session_id": doc["session_id"],
        "path": f"/data/{doc['session_id']}",
        "status": "partial",
        "record_started_at": doc["record_started_at"],
        "record_ended_at": doc["record_ended_at"],
        "cameras": cameras,
    }
    return {"job_id": "job-1", "status": "succeeded", "session": {**base, **session}}


def test_the_capture_summary_adds_time_sources_and_delays_when_it_has_session_json() -> None:
    doc = session_v3.manifest_doc()
    lines = summary(job(), {doc["session_id"]: doc}).splitlines()
    t0 = session_v3.T0
    assert f"window    {local(t0)} to {local(t0 + 1)[11:]}" in lines
    assert "duration  1.00 s recorded" in lines
    assert rows(lines)[session_v3.LWIR] == ["10", "0", "arrival", "1.300 / 1.380 / 1.410 s", "no stamps"]
    assert any(line.startswith("WARNING   late frames not confirmed") for line in lines)


def test_the_capture_summary_without_session_json_keeps_the_counts() -> None:
    doc = session_v3.manifest_doc()
    for details in (None, {doc["session_id"]: None}):
        lines = summary(job(), details).splitlines()
        assert next(line for line in lines if line.startswith("camera ")).split() == [
            "camera",
            "frames",
            "rejected",
        ]
        assert rows(lines)[session_v3.SWIR] == ["10", "0"]
