"""Indexing for the catalog: rows, scans, upload states and search text written into the SQLite file,
and the refresh that brings the file up to date with the folders. See :mod:`sessions.catalog`.

A refresh reads what is new or changed since the last one (a folder whose ``session.json`` stamp
differs from the one its row was read at), drops what is gone, and commits in batches of BATCH_ROWS so
new sessions never wait long on the write lock.

Every row here belongs to one node (``node_id``: this one, or, written through ``put_rows``, the node
a row came from). With the outbox on (:attr:`CatalogDB.outbox`, a shared catalog configured), each
write that changes a row also queues the session in the outbox (sessions.outbox), in the same
transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sessions import outbox
from sessions.catalog_db import CatalogDB
from sessions.catalog_rows import UPSERT, Entry, location_of, read_entry
from sessions.folders import Stamp, manifest_stamp, session_names
from sessions.scan_manifest import ScanManifest, list_scan_manifests, scans_dir
from sessions.upload_queue import list_records

log = logging.getLogger("sessions.catalog")

BATCH_ROWS = 500  # rows per transaction during a refresh: new sessions never wait long on the lock
MAX_CAMERA_BITS = 62  # cameras with a bit in sessions.camera_mask; any further ones match row by row
ANALYZE_AFTER = 1000  # rows read or removed by a refresh after which the statistics are renewed


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did (the benchmark and the log print it)."""

    full: bool
    read: int  # session.json files read
    removed: int
    seconds: float


# -- writing rows ---------------------------------------------------------------------------------
def write_entries(db: CatalogDB, entries: list[Entry]) -> None:
    if not entries:
        return
    with db.writing() as conn:
        changed = [entry.key for entry in entries if _put(conn, entry)]
        if db.outbox:
            outbox.enqueue(conn, [sid for node, sid in changed if node == db.node_id])


def _put(conn: sqlite3.Connection, entry: Entry) -> bool:
    """Write one row; False when the index holds a newer reading of the folder (left as it is)."""
    mask = _camera_mask(conn, [cam for cam, _ in entry.cameras])
    before = conn.total_changes
    conn.execute(UPSERT, (*entry.values, mask))
    if conn.total_changes == before:
        return False
    _put_text(conn, *entry.key)
    return True


def _put_text(conn: sqlite3.Connection, node_id: str, session_id: str) -> None:
    """The session's searchable text (id and label) in sessions_text, under the session's rowid."""
    row = conn.execute(
        "SELECT rowid, label FROM sessions WHERE node_id = ? AND session_id = ?", (node_id, session_id)
    ).fetchone()
    if row is None:
        return
    conn.execute("DELETE FROM sessions_text WHERE rowid = ?", (row[0],))
    conn.execute(
        "INSERT INTO sessions_text (rowid, text) VALUES (?, ?)",
        (row[0], f"{session_id}\n{row[1] or ''}"),
    )


def _camera_mask(conn: sqlite3.Connection, cameras: Sequence[str]) -> int:
    """The cameras' bits in ``camera_mask``; a camera seen for the first time gets the next bit."""
    mask = 0
    for cam in cameras:
        row = conn.execute("SELECT bit FROM camera_bits WHERE camera_id = ?", (cam,)).fetchone()
        if row is None:
            bit = int(conn.execute("SELECT COUNT(*) FROM camera_bits").fetchone()[0])
            if bit >= MAX_CAMERA_BITS:
                continue  # matched through the cameras column (SessionQuery.where)
            conn.execute("INSERT INTO camera_bits (camera_id, bit) VALUES (?, ?)", (cam, bit))
        else:
            bit = int(row[0])
        mask |= 1 << bit
    return mask


def camera_bit(conn: sqlite3.Connection, camera: str | None) -> int | None:
    """The camera's bit in ``camera_mask`` for a query (None: match it through the cameras column)."""
    if camera is None:
        return None
    found = conn.execute("SELECT bit FROM camera_bits WHERE camera_id = ?", (camera,)).fetchone()
    if found is not None:
        return int(found[0])
    full = conn.execute("SELECT COUNT(*) FROM camera_bits").fetchone()[0] >= MAX_CAMERA_BITS
    # A camera never seen has no bit and, while bits remain, no session either: a bit nobody has.
    return None if full else MAX_CAMERA_BITS


def put_scan(conn: sqlite3.Connection, manifest: ScanManifest, path: Path, queue: bool = False) -> None:
    """Index a scan manifest; sessions of the scan without a label take the scan's (and, with
    ``queue``, go into the outbox)."""
    conn.execute(
        "INSERT OR REPLACE INTO scans (scan_id, label, status, created_at, finished_at, poses, path) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            manifest.scan_id,
            manifest.label,
            manifest.status,
            manifest.created_at,
            manifest.finished_at,
            len(manifest.poses),
            str(path),
        ),
    )
    if manifest.label:
        labelled = conn.execute(
            "UPDATE sessions SET label = ? WHERE scan_id = ? AND label IS NULL RETURNING node_id, session_id",
            (manifest.label, manifest.scan_id),
        ).fetchall()
        for node_id, sid in labelled:
            _put_text(conn, node_id, sid)
        if queue:
            outbox.enqueue(conn, [sid for _node, sid in labelled])


def delete_sessions(
    conn: sqlite3.Connection, node_id: str, session_ids: Sequence[str], queue: bool = False
) -> None:
    """Drop sessions' rows and search text (their upload states stay); with ``queue``, the outbox
    sends their deletion."""
    chunk = [(node_id, sid) for sid in session_ids]
    conn.executemany(
        "DELETE FROM sessions_text WHERE rowid IN "
        "(SELECT rowid FROM sessions WHERE node_id = ? AND session_id = ?)",
        chunk,
    )
    conn.executemany("DELETE FROM sessions WHERE node_id = ? AND session_id = ?", chunk)
    if queue:
        outbox.enqueue(conn, session_ids)


def set_upload(
    conn: sqlite3.Connection,
    node_id: str,
    session_id: str,
    state: str,
    detail: str | None,
    location: str | None,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO uploads (node_id, session_id, state, detail, location, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (node_id, session_id, state, detail, location, time.time()),
    )


# -- the refresh ----------------------------------------------------------------------------------
def sync(
    db: CatalogDB, folders: tuple[Path, Path], node_id: str, full: bool, closed: Callable[[], bool]
) -> tuple[int, int]:
    """Read what is new or changed in ``folders`` (save_dir, images_data_dir), drop what is gone;
    commit in batches. Returns (read, removed); ``closed`` stops it early. After a full rebuild the
    outbox also asks the shared catalog to drop what this node no longer has (outbox.PRUNE)."""
    save_dir, images_data_dir = folders
    full = _renamed(db, node_id) or full
    known = {} if full else _known_stamps(db, node_id)
    try:
        names = session_names(save_dir)
    except OSError:
        names = []
    scan_labels = _sync_scans(db, images_data_dir)
    batch: list[Entry] = []
    read = 0
    for name in names:
        if closed():
            break
        folder = save_dir / name
        if name in known:
            stamp = manifest_stamp(folder)
            if stamp is not None and stamp == known[name]:
                continue
        batch.append(read_entry(folder, scan_labels, node_id))
        read += 1
        if len(batch) >= BATCH_ROWS:
            write_entries(db, batch)
            batch = []
    write_entries(db, batch)
    gone = sorted(set(known) - set(names))
    _finish(db, node_id, gone, full, complete=not closed())
    if read + len(gone) >= ANALYZE_AFTER:
        db.analyze()
    return read, len(gone)


def _finish(db: CatalogDB, node_id: str, gone: list[str], full: bool, complete: bool) -> None:
    """Drop the folders gone; mark the index complete unless the refresh was stopped early."""
    with db.writing() as conn:
        for start in range(0, len(gone), BATCH_ROWS):
            delete_sessions(conn, node_id, gone[start : start + BATCH_ROWS], queue=db.outbox)
        if full and db.outbox:
            outbox.enqueue(conn, [outbox.PRUNE])
        if complete:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('complete', '1')")


def _renamed(db: CatalogDB, node_id: str) -> bool:
    """Whether the file was indexed under another node id (node.id changed, or the host name it
    defaults to): its rows are dropped and every folder read again under this one."""
    with db.writing() as conn:
        prior = conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
        renamed = prior is not None and prior[0] != node_id
        if renamed:
            log.warning("catalog: node id %r, was %r: every session is indexed again", node_id, prior[0])
            for table in ("sessions_text", "sessions", "uploads"):
                conn.execute(f"DELETE FROM {table}")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('node_id', ?)", (node_id,))
    return renamed


def _known_stamps(db: CatalogDB, node_id: str) -> dict[str, Stamp | None]:
    """The sessions in the index (taken before the folders are listed: a session added after the
    listing is never taken for a removed one) and the ``session.json`` stamp each was read at."""
    with db.writing() as conn:
        rows = conn.execute(
            "SELECT session_id, manifest_mtime_ns, manifest_size FROM sessions WHERE node_id = ?", (node_id,)
        )
        return {sid: (m, s) if m is not None else None for sid, m, s in rows}


def _sync_scans(db: CatalogDB, images_data_dir: Path) -> dict[str, str]:
    """Index every scan manifest; return the labels by scan id."""
    manifests = list_scan_manifests(images_data_dir)
    with db.writing() as conn:
        conn.execute("DELETE FROM scans")
        for manifest in manifests:
            put_scan(conn, manifest, scans_dir(images_data_dir) / f"{manifest.scan_id}.json", db.outbox)
    return {m.scan_id: m.label for m in manifests if m.label}


def refill_uploads(db: CatalogDB, images_data_dir: Path, node_id: str) -> None:
    """Copy the sessions' upload states from the upload queue on disk (its record of truth,
    sessions.upload_queue) into the index: a rebuilt file starts with none, and an incremental
    start may have missed changes made while the index was closed. A state the uploader set after
    the records were read is newer than the record read, and is kept."""
    read_at = time.time()
    states = [
        (node_id, r.item_id, str(r.state), json.dumps(r.view()), location_of(r.target, r.item_id), read_at)
        for r in list_records(images_data_dir)
        if r.kind == "session"
    ]
    for start in range(0, len(states), BATCH_ROWS):
        with db.writing() as conn:
            changed = [
                row[0]
                for values in states[start : start + BATCH_ROWS]
                for row in conn.execute(
                    "INSERT INTO uploads (node_id, session_id, state, detail, location, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (node_id, session_id) DO UPDATE SET state = excluded.state,"
                    " detail = excluded.detail, location = excluded.location,"
                    " updated_at = excluded.updated_at"
                    " WHERE uploads.updated_at < excluded.updated_at AND (uploads.state IS NOT excluded.state"
                    " OR uploads.detail IS NOT excluded.detail OR uploads.location IS NOT excluded.location)"
                    " RETURNING session_id",
                    values,
                ).fetchall()
            ]
            if db.outbox:
                outbox.enqueue(conn, changed)


__all__ = [
    "BATCH_ROWS",
    "MAX_CAMERA_BITS",
    "RefreshReport",
    "camera_bit",
    "delete_sessions",
    "put_scan",
    "refill_uploads",
    "set_upload",
    "sync",
    "write_entries",
]
