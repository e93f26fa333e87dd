"""Session summaries for the dashboard's gallery (``GET /sessions``): one short dict per session folder,
read through :mod:`sessions.manifest` and cached while ``session.json`` is unchanged.

A summary holds what a gallery card shows: status, times (the capture window, ``record_started_at`` to
``record_ended_at``), pose, problems, per camera its counts, a strip of thumbnails and how its
capture times were known (time sources, delay, camera clock), and the wait for late frames
(``capture``). A folder without a readable manifest is summarised as ``incomplete`` or
``unreadable``. A session of another node (the shared catalog, docs/operations/fleet.md) is
summarised from its catalog row (:func:`fleet_summary`), with a link to it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sessions.catalog_rows import PAN_FIELD, TILT_FIELD, SessionRow
from sessions.folders import SessionFolder, Stamp, manifest_stamp, read_folder
from sessions.manifest import CameraRecord, SessionManifest

STRIP_LENGTH = 8  # thumbnails per camera in a session's summary
# Bound of the cache; overflow policy: the least recently used entry goes.
SUMMARY_CACHE_ENTRIES = 5000  # a few hundred bytes each


class SummaryCache:
    """Session summaries keyed by folder, valid while ``session.json``'s mtime and size are unchanged
    (a long recording's manifest is megabytes; the gallery should not parse it on every refresh)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Stamp, dict[str, Any]]] = OrderedDict()

    def summary(self, session_dir: Path) -> dict[str, Any]:
        stamp = manifest_stamp(session_dir)
        key = str(session_dir)
        cached = None if stamp is None else self._get(key, stamp)
        if cached is not None:
            return cached
        found = read_folder(session_dir, stamp)
        if found.manifest is None or stamp is None:  # not cached: it may be written or fixed in place
            return _without_manifest(found)
        summary = _summarise(found.session_id, found.manifest)
        self._put(key, stamp, summary)
        return summary

    def _get(self, key: str, stamp: Stamp) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != stamp:
                return None
            self._items.move_to_end(key)
            return item[1]

    def _put(self, key: str, stamp: Stamp, summary: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = (stamp, summary)
            self._items.move_to_end(key)
            while len(self._items) > SUMMARY_CACHE_ENTRIES:
                self._items.popitem(last=False)


summaries = SummaryCache()


def _summarise(session_id: str, manifest: SessionManifest) -> dict[str, Any]:
    delays = _delays(manifest)
    cameras = {cam: _camera_summary(record, delays.get(cam)) for cam, record in manifest.cameras.items()}
    return {
        "session_id": session_id,
        "manifest": True,
        "job_id": manifest.job_id,
        "status": manifest.status.value,
        "settled_at": manifest.settled_at,
        "record_started_at": manifest.record_started_at,
        "record_ended_at": manifest.record_ended_at,
        "duration_second": manifest.duration_second,
        "pose": manifest.pose_at_start,
        "problems": [problem.to_json() for problem in manifest.problems],
        "frame_count": sum(c["frame_count"] for c in cameras.values()),
        "capture": None if manifest.capture is None else manifest.capture.to_json(),
        "cameras": cameras,
    }


def _delays(manifest: SessionManifest) -> dict[str, Any]:
    """The settle proof's ``delay_s``: per camera arrival less capture over the recording."""
    found = (manifest.settle or {}).get("delay_s")
    return {str(cam): d for cam, d in found.items() if isinstance(d, dict)} if isinstance(found, dict) else {}


def _camera_summary(record: CameraRecord, delay: dict[str, Any] | None) -> dict[str, Any]:
    """One camera of a session: its counts, a strip of thumbnails spread over its frames, and how its
    capture times were known: frames per time source, the delay {median, p99, max, frames} in
    seconds, the camera clock's verdict {status, reasons} (empty and null in older sessions)."""
    frames = record.frames
    return {
        "frame_count": record.frame_count,
        "rejected_frames": record.rejected_frames,
        "strip": [{"index": i, "file": frames[i].file} for i in _spread(len(frames), STRIP_LENGTH)],
        "time_sources": dict(record.time_sources),
        "delay_s": delay,
        "clock": record.clock,
    }


def _without_manifest(found: SessionFolder) -> dict[str, Any]:
    """A folder without a readable manifest: ``incomplete`` (a recording in progress, or one that was
    interrupted), or ``unreadable`` (its ``session.json`` cannot be read or is not in the session
    format; ``error`` says why). The same keys as a summary with a manifest."""
    summary: dict[str, Any] = {
        "session_id": found.session_id,
        "manifest": False,
        "job_id": None,
        "status": found.status,
        "settled_at": None,
        "record_started_at": found.started_at,
        "record_ended_at": None,
        "duration_second": None,
        "pose": None,
        "problems": [],
        "frame_count": None,
        "capture": None,
        "cameras": {},
    }
    if found.error is not None:
        summary["error"] = found.error
    return summary


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


# -- the fleet's sessions (GET /sessions?node=…, api.fleet) -------------------------------------------
STORED = frozenset({"uploaded", "local-deleted"})  # upload states in which the object store holds it


def catalog_fields(row: SessionRow) -> dict[str, Any]:
    """What the catalog adds to a session's summary in a listing."""
    return {
        "scan_id": row.scan_id,
        "pose_index": row.pose_index,
        "label": row.label,
        "bytes": row.bytes,
        "upload_state": row.upload_state,
        "node_id": row.node_id,
        "kind": row.kind,
    }


def fleet_summary(row: SessionRow, node_url: str | None) -> dict[str, Any]:
    """A session of the shared catalog, whose folder is not here: the keys of a summary (no strip of
    thumbnails, no capture details: those are read from the folder, on its node), plus where to open
    it: ``link`` is the object store's copy once uploaded, else its report on its node (``node_url``,
    config node.url, null when that node does not say)."""
    pose = None
    if row.pan_x100 is not None or row.tilt_x100 is not None:
        pose = {PAN_FIELD: row.pan_x100, TILT_FIELD: row.tilt_x100}
    on_node = f"{node_url}/sessions/{quote(row.session_id)}/report" if node_url else None
    stored = row.location if row.upload_state in STORED else None
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = round(row.finished_at - row.started_at, 3)
    return {
        "session_id": row.session_id,
        "node_id": row.node_id,
        "kind": row.kind,
        "remote": True,  # not in this node's save_dir: its files are reached through ``link``
        "manifest": False,
        "job_id": row.job_id,
        "status": row.status,
        "settled_at": row.settled_at,
        "record_started_at": row.started_at,
        "record_ended_at": row.finished_at,
        "duration_second": duration,
        "pose": pose,
        "problems": [],
        "frame_count": row.frame_count,
        "capture": None,
        "cameras": {cam: {"frame_count": None, "strip": []} for cam in row.cameras},
        "node_url": node_url,
        "location": row.location,
        "link": stored or on_node,
    }


__all__ = ["STRIP_LENGTH", "SUMMARY_CACHE_ENTRIES", "SummaryCache", "fleet_summary", "summaries"]
