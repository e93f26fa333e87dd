"""The catalog's rows: a session folder (:class:`sessions.folders.SessionFolder`) made into the row
written to the ``sessions`` table, and a row read back as a :class:`SessionRow`. The columns of both
directions are listed here, in one order. See :mod:`sessions.catalog`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.folders import SessionFolder, manifest_stamp, read_folder, sort_key

PAN_FIELD, TILT_FIELD = "pan_deg_x100", "tilt_deg_x100"  # keys of pose_at_start (rigcore.rig)


@dataclass(frozen=True)
class SessionRow:
    """One session as the catalog knows it."""

    session_id: str
    folder: str
    status: str
    job_id: str | None
    settled_at: float | None
    started_at: float | None
    finished_at: float | None
    cameras: tuple[str, ...]
    scan_id: str | None
    pose_index: int | None
    pan_x100: int | None
    tilt_x100: int | None
    label: str | None
    frame_count: int | None
    bytes: int | None
    format_version: int | None
    upload_state: str | None
    upload_detail: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


ROW_COLUMNS = (
    "s.session_id, s.folder, s.status, s.job_id, s.settled_at, s.started_at, s.finished_at, s.cameras, "
    "s.scan_id, s.pose_index, s.pan_x100, s.tilt_x100, s.label, s.frame_count, s.bytes, s.format_version, "
    "u.state, u.detail"
)
FROM = " FROM sessions s LEFT JOIN uploads u ON u.session_id = s.session_id"


def row_of(values: Sequence[Any]) -> SessionRow:
    """A row of ``SELECT {ROW_COLUMNS}`` as a SessionRow (the columns are in the dataclass's order)."""
    fields = list(values)
    fields[7] = tuple(c for c in fields[7].split(",") if c)  # ",cam_a,cam_b,"
    fields[17] = json.loads(fields[17]) if fields[17] else None  # the upload detail, JSON
    return SessionRow(*fields)


@dataclass(frozen=True)
class Page:
    rows: list[SessionRow]
    total: int


# -- rows from folders -----------------------------------------------------------------------------
def _x100(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return round(value)
    except (OverflowError, ValueError):  # inf, nan
        return None


def _folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (symlinks not followed)."""
    total = 0
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class Entry:
    """A session row to write (the columns of UPSERT without camera_mask), and its cameras."""

    values: tuple[Any, ...]
    cameras: tuple[tuple[str, int], ...]


def read_entry(folder: Path, scan_labels: dict[str, str]) -> Entry:
    """The row of one session folder, from its ``session.json`` (or what the folder alone says)."""
    return entry_of(read_folder(folder, manifest_stamp(folder)), scan_labels)


def entry_of(found: SessionFolder, scan_labels: dict[str, str]) -> Entry:
    """The row of a session folder as read. Without a readable manifest only the id, status and start
    are known, and no stamp is kept: the next refresh reads the folder again."""
    folder, manifest = found.path, found.manifest
    head = (found.session_id, str(folder), sort_key(found.session_id), found.status)
    if manifest is None:
        # job, settled, started, finished, cameras, then 10 unknown: scan … size.
        return Entry((*head, None, None, found.started_at, None, "", *(None,) * 10, time.time()), ())
    pose = manifest.pose_at_start or {}
    extra = manifest.model_extra or {}
    label = extra.get("label") if isinstance(extra.get("label"), str) else None
    if label is None and manifest.scan_id:
        label = scan_labels.get(manifest.scan_id)
    cameras = tuple(sorted((cam, rec.frame_count) for cam, rec in manifest.cameras.items()))
    stamp = found.stamp
    values = (
        *head,
        manifest.job_id,
        manifest.settled_at,
        manifest.record_started_at,
        manifest.record_ended_at,
        "," + ",".join(c for c, _ in cameras) + "," if cameras else "",
        manifest.scan_id,
        manifest.pose_index,
        _x100(pose.get(PAN_FIELD)),
        _x100(pose.get(TILT_FIELD)),
        label,
        sum(n for _, n in cameras),
        _folder_bytes(folder),
        manifest.format_version,
        stamp[0] if stamp else None,
        stamp[1] if stamp else None,
        time.time(),
    )
    return Entry(values, cameras)


UPSERT = (
    "INSERT INTO sessions (session_id, folder, sort_key, status, job_id, settled_at, started_at, "
    "finished_at, cameras, camera_mask, scan_id, pose_index, pan_x100, tilt_x100, label, frame_count, bytes, "
    "format_version, manifest_mtime_ns, manifest_size, indexed_at) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (session_id) DO UPDATE SET folder=excluded.folder, sort_key=excluded.sort_key, "
    "status=excluded.status, job_id=excluded.job_id, settled_at=excluded.settled_at, "
    "started_at=excluded.started_at, finished_at=excluded.finished_at, cameras=excluded.cameras, "
    "camera_mask=excluded.camera_mask, "
    "scan_id=excluded.scan_id, pose_index=excluded.pose_index, pan_x100=excluded.pan_x100, "
    "tilt_x100=excluded.tilt_x100, label=excluded.label, frame_count=excluded.frame_count, "
    "bytes=excluded.bytes, format_version=excluded.format_version, "
    "manifest_mtime_ns=excluded.manifest_mtime_ns, manifest_size=excluded.manifest_size, "
    "indexed_at=excluded.indexed_at "
    # A refresh that read an older session.json never overwrites what aftercare wrote meanwhile.
    "WHERE sessions.manifest_mtime_ns IS NULL OR excluded.manifest_mtime_ns >= sessions.manifest_mtime_ns"
)


__all__ = [
    "FROM",
    "ROW_COLUMNS",
    "UPSERT",
    "Entry",
    "Page",
    "SessionRow",
    "entry_of",
    "read_entry",
    "row_of",
]
