"""The catalog's rows: a session folder (:class:`sessions.folders.SessionFolder`) made into the row
written to the ``sessions`` table, and a row read back as a :class:`SessionRow`. The columns of both
directions are listed here, in one order. See :mod:`sessions.catalog`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.folders import SessionFolder, manifest_stamp, read_folder, sort_key
from sessions.manifest import SessionManifest

PAN_FIELD, TILT_FIELD = "pan_deg_x100", "tilt_deg_x100"  # keys of pose_at_start (rigcore.rig)


@dataclass(frozen=True)
class SessionRow:
    """One session as a catalog knows it: the node's own, or (in the shared catalog) any node's."""

    node_id: str
    session_id: str
    folder: str  # on its node ("" where the catalog does not know it)
    status: str
    kind: str  # "recording" or "event" (session.json's kind; absent: recording)
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
    location: str | None  # the session in the object store, once uploaded (s3://bucket/prefix/id/)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRow:
        return cls(**{**data, "cameras": tuple(data.get("cameras") or ())})


KINDS = ("recording", "event")
DEFAULT_KIND = "recording"

ROW_COLUMNS = (
    "s.node_id, s.session_id, s.folder, s.status, s.kind, s.job_id, s.settled_at, s.started_at, "
    "s.finished_at, s.cameras, s.scan_id, s.pose_index, s.pan_x100, s.tilt_x100, s.label, s.frame_count, "
    "s.bytes, s.format_version, u.state, u.detail, u.location"
)
FROM = " FROM sessions s LEFT JOIN uploads u ON u.node_id = s.node_id AND u.session_id = s.session_id"
_CAMERAS, _DETAIL = 9, 19  # positions in ROW_COLUMNS


def row_of(values: Sequence[Any]) -> SessionRow:
    """A row of ``SELECT {ROW_COLUMNS}`` as a SessionRow (the columns are in the dataclass's order)."""
    fields = list(values)
    fields[_CAMERAS] = tuple(c for c in fields[_CAMERAS].split(",") if c)  # ",cam_a,cam_b,"
    fields[_DETAIL] = json.loads(fields[_DETAIL]) if fields[_DETAIL] else None  # the upload detail, JSON
    return SessionRow(*fields)


@dataclass(frozen=True)
class Page:
    rows: list[SessionRow]
    total: int


def location_of(target: str, session_id: str) -> str:
    """Where an uploaded session is, from its upload record's ``target`` ("<endpoint> <bucket>
    <prefix>", service.uploads.s3_store.target_of)."""
    _endpoint, _, rest = target.partition(" ")
    bucket, _, prefix = rest.partition(" ")
    return f"s3://{bucket}/{prefix}{session_id}/"


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


# The columns an Entry writes, in UPSERT's order (camera_mask is worked out when written).
ENTRY_COLUMNS = (
    "node_id", "session_id", "folder", "sort_key", "status", "kind", "job_id", "settled_at", "started_at",
    "finished_at", "cameras", "scan_id", "pose_index", "pan_x100", "tilt_x100", "label", "frame_count",
    "bytes", "format_version", "manifest_mtime_ns", "manifest_size", "indexed_at",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """A session row to write (ENTRY_COLUMNS' values, in order), and its cameras."""

    values: tuple[Any, ...]
    cameras: tuple[tuple[str, int], ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.values[0], self.values[1]


def read_entry(folder: Path, scan_labels: dict[str, str], node_id: str) -> Entry:
    """The row of one session folder, from its ``session.json`` (or what the folder alone says)."""
    return entry_of(read_folder(folder, manifest_stamp(folder)), scan_labels, node_id)


def kind_of(manifest: SessionManifest) -> str:
    """session.json's ``kind`` (a recording, or an event capture), "recording" when absent or unknown."""
    kind = getattr(manifest, "kind", None)  # sessions.manifest.SessionKind (a str), or absent
    return str(kind) if kind in KINDS else DEFAULT_KIND


def entry_of(found: SessionFolder, scan_labels: dict[str, str], node_id: str) -> Entry:
    """The row of a session folder as read. Without a readable manifest only the id, status and start
    are known, and no stamp is kept: the next refresh reads the folder again. ``node_id``: the node
    whose folder it is (this one)."""
    folder, manifest = found.path, found.manifest
    head = (node_id, found.session_id, str(folder), sort_key(found.session_id), found.status)
    if manifest is None:
        # kind, job, settled, started, finished, cameras, then 10 unknown: scan … size.
        unknown = (DEFAULT_KIND, None, None, found.started_at, None, "", *(None,) * 10)
        return Entry((*head, *unknown, time.time()), ())
    pose = manifest.pose_at_start or {}
    extra = manifest.model_extra or {}
    label = extra.get("label") if isinstance(extra.get("label"), str) else None
    if label is None and manifest.scan_id:
        label = scan_labels.get(manifest.scan_id)
    cameras = tuple(sorted((cam, rec.frame_count) for cam, rec in manifest.cameras.items()))
    stamp = found.stamp
    values = (
        *head,
        kind_of(manifest),
        manifest.job_id,
        manifest.settled_at,
        manifest.record_started_at,
        manifest.record_ended_at,
        _camera_list(c for c, _ in cameras),
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


def entry_from_row(row: SessionRow) -> Entry:
    """A row read from a catalog, to write into another (the shared suite, the benchmark)."""
    values = (
        row.node_id, row.session_id, row.folder, sort_key(row.session_id), row.status, row.kind, row.job_id,
        row.settled_at, row.started_at, row.finished_at, _camera_list(row.cameras), row.scan_id,
        row.pose_index, row.pan_x100, row.tilt_x100, row.label, row.frame_count, row.bytes,
        row.format_version, None, None, time.time(),
    )  # fmt: skip
    return Entry(values, tuple((cam, 0) for cam in row.cameras))


def _camera_list(cameras: Iterable[str]) -> str:
    listed = ",".join(cameras)
    return f",{listed}," if listed else ""


_UPDATED = [c for c in ENTRY_COLUMNS if c not in ("node_id", "session_id")]
UPSERT = (
    f"INSERT INTO sessions ({', '.join(ENTRY_COLUMNS)}, camera_mask) "
    f"VALUES ({', '.join('?' * (len(ENTRY_COLUMNS) + 1))}) "
    "ON CONFLICT (node_id, session_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in [*_UPDATED, "camera_mask"])
    # A refresh that read an older session.json never overwrites what aftercare wrote meanwhile.
    + " WHERE sessions.manifest_mtime_ns IS NULL OR excluded.manifest_mtime_ns >= sessions.manifest_mtime_ns"
)


__all__ = [
    "DEFAULT_KIND",
    "ENTRY_COLUMNS",
    "FROM",
    "KINDS",
    "ROW_COLUMNS",
    "UPSERT",
    "Entry",
    "Page",
    "SessionRow",
    "entry_from_row",
    "entry_of",
    "kind_of",
    "location_of",
    "read_entry",
    "row_of",
]
