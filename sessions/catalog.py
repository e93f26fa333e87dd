"""The session catalog: an SQLite index of the session folders and scan manifests, for search and paging.

A cache, never the record of truth: every row is derived from a ``session.json`` (read through
:mod:`sessions.manifest`) or a scan manifest (:mod:`sessions.scan_manifest`), and the whole file can
be deleted at any time — the next start rebuilds it from the folders. It is kept up to date three ways:

- :meth:`Catalog.add_session` / :meth:`Catalog.add_scan` as sessions and scans are written (the
  service calls them from its aftercare thread, after the hooks that write files into the folder);
- :meth:`Catalog.start_refresh` at start, on a background thread: an index that is missing, of
  another schema version or damaged (``PRAGMA quick_check``, or any ``DatabaseError``) is rebuilt from
  scratch; a good one is brought up to date incrementally — folders new since the last run and
  folders whose ``session.json`` changed (mtime or size) are read, folders gone are dropped, the rest
  cost one ``stat`` each;
- a ``DatabaseError`` while answering marks the index damaged and starts a rebuild.

While the first full build runs, :attr:`Catalog.state` is ``"building"`` and the index is incomplete;
``api.dashboard`` then lists sessions from the folders (unfiltered) or says ``partial``. During an
incremental refresh (``"refreshing"``) the index answers, missing only what changed while stopped.

Searching: :class:`SessionQuery` holds the filters (each bound as an SQL parameter, never spliced
into the SQL text); :meth:`Catalog.query` returns one page, newest first (the folder names' natural
order, as the dashboard always sorted them), and the number of sessions matching. Indexes on the
sort key, status, scan, start time and pose keep a page's cost flat as the catalog grows.

Concurrency: SQLite in WAL mode; one writer connection behind a lock (aftercare, the refresh thread,
the uploader), a small pool of reader connections for the HTTP threads. Readers never wait on the
writer (WAL), and the refresh commits in small batches so new sessions are never held up long.

The upload state of a session (:meth:`Catalog.set_upload_state`) lives in its own table, so that it
survives a session's row being rewritten; every refresh (a rebuild, an incremental start) refills it
from the upload queue on disk (:mod:`sessions.upload_queue`), the record of truth.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sessions.manifest import (
    MANIFEST_NAME,
    ManifestError,
    SessionManifest,
    SessionStatus,
    has_manifest,
    read_manifest,
)
from sessions.scan_manifest import ScanManifest, list_scan_manifests, scans_dir
from sessions.upload_queue import list_records

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"  # under images_data_dir
SCHEMA_VERSION = 3
BATCH_ROWS = 500  # rows per transaction during a refresh: new sessions never wait long on the lock
# SQLite's words for a damaged file; anything else (busy, locked, I/O, full) is not cured by a rebuild.
DAMAGE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
TRIGRAM = 3  # the shortest ?q= the text index finds; shorter ones are matched row by row
MAX_CAMERA_BITS = 62  # cameras with a bit in sessions.camera_mask; any further ones match row by row
READERS = 4  # reader connections kept for the HTTP threads
TOTALS_KEPT = 64  # filtered totals remembered until the next write
ANALYZE_AFTER = 1000  # rows read or removed by a refresh after which the statistics are renewed
SESSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")  # as api.dashboard accepts them
PAN_FIELD, TILT_FIELD = "pan_deg_x100", "tilt_deg_x100"  # keys of pose_at_start (rigcore.rig)

CatalogState = Literal["building", "refreshing", "ready", "unavailable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    status TEXT NOT NULL,
    job_id TEXT,
    settled_at REAL,
    started_at REAL,
    finished_at REAL,
    cameras TEXT NOT NULL,
    camera_mask INTEGER NOT NULL DEFAULT 0,
    scan_id TEXT,
    pose_index INTEGER,
    pan_x100 INTEGER,
    tilt_x100 INTEGER,
    label TEXT,
    frame_count INTEGER,
    bytes INTEGER,
    format_version INTEGER,
    manifest_mtime_ns INTEGER,
    manifest_size INTEGER,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_sort ON sessions (sort_key);
CREATE INDEX IF NOT EXISTS sessions_scan ON sessions (scan_id, sort_key);
-- Covering indexes: a filtered total counts index entries, never reads the wide rows.
CREATE INDEX IF NOT EXISTS sessions_by_time ON sessions
    (started_at, pan_x100, tilt_x100, camera_mask, status, scan_id, session_id, label);
CREATE INDEX IF NOT EXISTS sessions_by_status ON sessions
    (status, sort_key, started_at, pan_x100, tilt_x100, camera_mask, scan_id);
CREATE INDEX IF NOT EXISTS sessions_by_pose ON sessions
    (pan_x100, tilt_x100, started_at, camera_mask, status, scan_id);
-- ?q=: the session id and label, indexed by trigrams (a substring of 3 or more characters is an index
-- lookup); rowid = the session's rowid in sessions.
CREATE VIRTUAL TABLE IF NOT EXISTS sessions_text USING fts5 (text, tokenize = 'trigram');
CREATE TABLE IF NOT EXISTS camera_bits (camera_id TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS scans (
    scan_id TEXT PRIMARY KEY,
    label TEXT,
    status TEXT,
    created_at REAL,
    finished_at REAL,
    poses INTEGER,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    session_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT,
    updated_at REAL NOT NULL
);
"""


class CatalogUnavailable(Exception):
    """The index cannot answer now (being rebuilt after damage, or not openable); use the folders."""


# -- the query -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionQuery:
    """Filters of ``GET /sessions``; None = not filtered. Pan and tilt in degrees x100, times epoch s."""

    camera: str | None = None
    status: str | None = None
    since: float | None = None  # record_started_at >= since
    until: float | None = None  # record_started_at < until
    scan_id: str | None = None
    pan_min: int | None = None
    pan_max: int | None = None
    tilt_min: int | None = None
    tilt_max: int | None = None
    q: str | None = None  # a substring of the session id or its label (case-insensitive)

    def filtered(self) -> bool:
        return any(v is not None for v in vars(self).values())

    def where(self, camera_bit: int | None = None) -> tuple[str, list[Any]]:
        """The WHERE clause (fixed text) and its parameters (the values, bound by SQLite).

        ``camera_bit``: the camera's bit in ``camera_mask`` (the catalog's ``camera_bits``); a
        camera without one (more than MAX_CAMERA_BITS cameras were seen) is matched through the
        ``cameras`` column (``,cam_a,cam_b,``) instead."""
        clauses: list[str] = []
        params: list[Any] = []
        simple = (
            ("s.status = ?", self.status),
            ("s.scan_id = ?", self.scan_id),
            ("s.started_at >= ?", self.since),
            ("s.started_at < ?", self.until),
            ("s.pan_x100 >= ?", self.pan_min),
            ("s.pan_x100 <= ?", self.pan_max),
            ("s.tilt_x100 >= ?", self.tilt_min),
            ("s.tilt_x100 <= ?", self.tilt_max),
        )
        for clause, value in simple:
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if self.camera is not None and camera_bit is not None:
            clauses.append("(s.camera_mask & ?) != 0")
            params.append(1 << camera_bit)
        elif self.camera is not None:  # past MAX_CAMERA_BITS cameras: the list, row by row
            clauses.append(r"s.cameras LIKE ? ESCAPE '\'")
            params.append("%," + re.sub(r"([\\%_])", r"\\\1", self.camera) + ",%")
        if self.q is not None and len(self.q) >= TRIGRAM:
            # One FTS5 phrase: the text matches where it holds q as a substring (case-insensitive).
            clauses.append("s.rowid IN (SELECT rowid FROM sessions_text WHERE sessions_text MATCH ?)")
            params.append('"' + self.q.replace('"', '""') + '"')
        elif self.q is not None:  # too short for a trigram: every row is looked at
            clauses.append(r"(s.session_id LIKE ? ESCAPE '\' OR s.label LIKE ? ESCAPE '\')")
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", self.q) + "%"
            params += [pattern, pattern]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class FilterError(ValueError):
    """A filter of ``GET /sessions`` that is not valid; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


FILTER_PARAMS = (
    "camera",
    "status",
    "since",
    "until",
    "scan_id",
    "pan_min",
    "pan_max",
    "tilt_min",
    "tilt_max",
    "q",
)
STATUSES = frozenset({*(s.value for s in SessionStatus), "unreadable"})
MAX_TEXT = 200  # characters of camera, scan_id and q
_X100_LIMIT = 10**9


def query_from_params(params: Mapping[str, str]) -> SessionQuery:
    """The filters in ``GET /sessions``'s query string; FilterError names the first bad one. An empty
    value is no filter."""
    values = {k: params[k].strip() for k in FILTER_PARAMS if params.get(k, "").strip()}
    for name in ("camera", "scan_id", "q"):
        if name in values and len(values[name]) > MAX_TEXT:
            raise FilterError(name, f"{len(values[name])} characters; at most {MAX_TEXT}")
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise FilterError("status", f"{status!r} is not one of {', '.join(sorted(STATUSES))}")
    times = {name: _epoch(name, values.get(name)) for name in ("since", "until")}
    ints = {
        name: _x100_param(name, values.get(name)) for name in ("pan_min", "pan_max", "tilt_min", "tilt_max")
    }
    for low, high in (("since", "until"), ("pan_min", "pan_max"), ("tilt_min", "tilt_max")):
        lo, hi = {**times, **ints}[low], {**times, **ints}[high]
        if lo is not None and hi is not None and lo > hi:
            raise FilterError(low, f"{lo} is greater than {high} {hi}")
    return SessionQuery(
        camera=values.get("camera"),
        status=status,
        scan_id=values.get("scan_id"),
        q=values.get("q"),
        since=times["since"],
        until=times["until"],
        pan_min=ints["pan_min"],
        pan_max=ints["pan_max"],
        tilt_min=ints["tilt_min"],
        tilt_max=ints["tilt_max"],
    )


def _epoch(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise FilterError(name, f"{value!r} is not a time in seconds since the epoch") from None
    if not math.isfinite(number) or number < 0:
        raise FilterError(name, f"{value!r} is not a time in seconds since the epoch")
    return number


def _x100_param(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise FilterError(name, f"{value!r} is not an integer (degrees x100, e.g. -1500)") from None
    if abs(number) > _X100_LIMIT:
        raise FilterError(name, f"{number} is out of range")
    return number


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


_ROW_COLUMNS = (
    "s.session_id, s.folder, s.status, s.job_id, s.settled_at, s.started_at, s.finished_at, s.cameras, "
    "s.scan_id, s.pose_index, s.pan_x100, s.tilt_x100, s.label, s.frame_count, s.bytes, s.format_version, "
    "u.state, u.detail"
)
_FROM = " FROM sessions s LEFT JOIN uploads u ON u.session_id = s.session_id"


def _row(values: Sequence[Any]) -> SessionRow:
    """A row of ``SELECT {_ROW_COLUMNS}`` as a SessionRow (the columns are in the dataclass's order)."""
    fields = list(values)
    fields[7] = tuple(c for c in fields[7].split(",") if c)  # ",cam_a,cam_b,"
    fields[17] = json.loads(fields[17]) if fields[17] else None  # the upload detail, JSON
    return SessionRow(*fields)


@dataclass(frozen=True)
class Page:
    rows: list[SessionRow]
    total: int


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did (the benchmark and the log print it)."""

    full: bool
    read: int  # session.json files read
    removed: int
    seconds: float


# -- ordering --------------------------------------------------------------------------------------
def sort_key(name: str) -> str:
    """A string whose order is the natural order of folder names (``…-9`` before ``…-10``), so that
    SQLite sorts sessions as the dashboard always did: numbers as numbers, then text."""
    return "\x01".join(_sort_part(p) for p in re.split(r"[-_.]", name))


def _sort_part(part: str) -> str:
    if not part.isdigit():
        return "1" + part
    # A number: its digit count first (one character), so that longer numbers sort later.
    digits = part.lstrip("0") or "0"
    return "0" + chr(0x40 + min(len(digits), 63)) + digits


# -- rows from files -----------------------------------------------------------------------------
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


def _manifest_stamp(folder: Path) -> tuple[int, int] | None:
    if not has_manifest(folder):
        return None
    try:
        st = (folder / MANIFEST_NAME).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class _Entry:
    """A session row to write, and its cameras."""

    values: tuple[Any, ...]
    cameras: tuple[tuple[str, int], ...]


def _entry_from_manifest(
    manifest: SessionManifest, folder: Path, stamp: tuple[int, int] | None, scan_labels: dict[str, str]
) -> _Entry:
    pose = manifest.pose_at_start or {}
    extra = manifest.model_extra or {}
    label = extra.get("label") if isinstance(extra.get("label"), str) else None
    if label is None and manifest.scan_id:
        label = scan_labels.get(manifest.scan_id)
    cameras = tuple(sorted((cam, rec.frame_count) for cam, rec in manifest.cameras.items()))
    values = (
        folder.name,
        str(folder),
        sort_key(folder.name),
        manifest.status.value,
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
    return _Entry(values, cameras)


def _entry_without_manifest(folder: Path, status: str) -> _Entry:
    """A folder with no readable ``session.json``: recording, interrupted, or damaged."""
    try:
        started: float | None = folder.stat().st_mtime
    except OSError:
        started = None
    # Columns as in _UPSERT without camera_mask: id, folder, sort key, status, job, settled, started,
    # finished, cameras, scan, pose index, pan, tilt, label, frames, bytes, version, mtime, size, indexed.
    unknown: tuple[None, ...] = (None,) * 10
    values = (
        folder.name,
        str(folder),
        sort_key(folder.name),
        status,
        None,
        None,
        started,
        None,
        "",
        *unknown,
        time.time(),
    )
    return _Entry(values, ())


def read_entry(folder: Path, scan_labels: dict[str, str]) -> _Entry:
    """The row of one session folder, from its ``session.json`` (or what the folder alone says)."""
    stamp = _manifest_stamp(folder)
    if stamp is None:
        return _entry_without_manifest(folder, "incomplete")
    try:
        manifest = read_manifest(folder)
    except ManifestError:
        return _entry_without_manifest(folder, "unreadable")
    return _entry_from_manifest(manifest, folder, stamp, scan_labels)


def session_names(save_dir: Path) -> list[str]:
    """Names of the session folders directly in ``save_dir`` (symlinks are not sessions)."""
    try:
        with os.scandir(save_dir) as entries:
            return [
                e.name
                for e in entries
                if SESSION_NAME.fullmatch(e.name) and ".." not in e.name and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


_UPSERT = (
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


# -- the catalog ------------------------------------------------------------------------------------
class Catalog:
    """The index of ``save_dir`` and ``images_data_dir/scans`` in ``images_data_dir/catalog.sqlite``."""

    def __init__(self, save_dir: Path, images_data_dir: Path, path: Path | None = None) -> None:
        self.save_dir = save_dir
        self.images_data_dir = images_data_dir
        self.path = path or images_data_dir / CATALOG_FILE
        self.state: CatalogState = "building"
        self.last_error: str | None = None
        self.last_refresh: RefreshReport | None = None
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._generation = 0  # bumped when the file is replaced: older reader connections are dropped
        self._reader_generation: dict[int, int] = {}
        self._refresh_thread: threading.Thread | None = None
        self._refresh_wanted = threading.Event()
        self._closed = False
        self._version = 0  # bumped after every write: the key of the remembered totals
        self._totals: OrderedDict[tuple[SessionQuery, int], int] = OrderedDict()
        self._totals_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start_refresh(self) -> threading.Thread:
        """Open (or rebuild) the index and bring it up to date on a background thread."""
        with self._write_lock:
            if self._refresh_thread is not None and self._refresh_thread.is_alive():
                self._refresh_wanted.set()
                return self._refresh_thread
            thread = threading.Thread(target=self._refresh_loop, name="catalog refresh", daemon=True)
            self._refresh_thread = thread
        thread.start()
        return thread

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until no refresh runs; True if the index is then ready."""
        thread = self._refresh_thread
        if thread is not None:
            thread.join(timeout)
        return self.state == "ready"

    def close(self) -> None:
        self._closed = True
        thread = self._refresh_thread
        if thread is not None:
            thread.join(30)
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._drop_readers()

    def refresh(self) -> RefreshReport:
        """Open the index, rebuilding it when missing, of another version or damaged, and bring it up to
        date with the folders (on the calling thread; :meth:`start_refresh` runs this in the background)."""
        started = time.perf_counter()
        full = not self._open_checked()
        self.state = "building" if full else "refreshing"
        read, removed = self._sync(full)
        self._refill_uploads()
        report = RefreshReport(full, read, removed, time.perf_counter() - started)
        self.last_refresh = report
        self.state = "ready"
        self.last_error = None
        what = "rebuilt" if full else "refreshed"
        log.info("catalog %s %s: %d read, %d removed, %.2f s", self.path, what, read, removed, report.seconds)
        return report

    def _refresh_loop(self) -> None:
        while not self._closed:
            self._refresh_wanted.clear()
            try:
                self.refresh()
            except CatalogUnavailable:  # the file was found damaged meanwhile and removed: again
                self._refresh_wanted.set()
            except (sqlite3.Error, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("catalog %s could not be refreshed: %s", self.path, exc)
                self.state = "unavailable"
                return
            if not self._refresh_wanted.is_set():
                return

    def _open_checked(self) -> bool:
        """Open the writer connection; True if the existing file is a sound index of this version.
        A damaged or foreign file is removed (it is only a cache) and an empty index made."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._drop_readers()
            sound = False
            if self.path.exists():
                old: sqlite3.Connection | None = None
                try:
                    old = self._connect()
                    sound = self._check(old)
                except sqlite3.DatabaseError as exc:
                    log.warning("catalog %s is damaged (%s): rebuilding it from the folders", self.path, exc)
                finally:
                    if old is not None:
                        old.close()
            if not sound:
                self._remove_files()
            conn = self._connect()
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.commit()
            self._writer = conn
            return sound

    def _check(self, conn: sqlite3.Connection) -> bool:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            return False
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or version[0] != str(SCHEMA_VERSION):
            return False
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {result}")
        complete = conn.execute("SELECT value FROM meta WHERE key = 'complete'").fetchone()
        return complete is not None and complete[0] == "1"

    def _remove_files(self) -> None:
        self._generation += 1
        self._version += 1
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commits on power loss is fine
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    # -- the refresh --------------------------------------------------------------------------------
    def _sync(self, full: bool) -> tuple[int, int]:
        """Read what is new or changed, drop what is gone; commit in batches. Returns (read, removed)."""
        known = {} if full else self._known_stamps()
        names = session_names(self.save_dir)
        scan_labels = self._sync_scans()
        batch: list[_Entry] = []
        read = 0
        for name in names:
            if self._closed:
                break
            folder = self.save_dir / name
            if name in known:
                stamp = _manifest_stamp(folder)
                if stamp is not None and stamp == known[name]:
                    continue
            batch.append(read_entry(folder, scan_labels))
            read += 1
            if len(batch) >= BATCH_ROWS:
                self._write_entries(batch)
                batch = []
        self._write_entries(batch)
        gone = sorted(set(known) - set(names))
        with self._writing() as conn:
            for start in range(0, len(gone), BATCH_ROWS):
                chunk = [(n,) for n in gone[start : start + BATCH_ROWS]]
                conn.executemany(
                    "DELETE FROM sessions_text WHERE rowid IN "
                    "(SELECT rowid FROM sessions WHERE session_id = ?)",
                    chunk,
                )
                conn.executemany("DELETE FROM sessions WHERE session_id = ?", chunk)
            if not self._closed:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('complete', '1')")
        if read + len(gone) >= ANALYZE_AFTER:
            # Fresh statistics let the planner choose between the sort index and a covering index.
            with self._write_lock:
                if self._writer is not None:
                    self._writer.execute("PRAGMA analysis_limit = 1000")
                    self._writer.execute("ANALYZE")
        return read, len(gone)

    def _known_stamps(self) -> dict[str, tuple[int, int] | None]:
        """The sessions in the index (taken before the folders are listed: a session added after the
        listing is never taken for a removed one) and the ``session.json`` stamp each was read at."""
        with self._writing() as conn:
            rows = conn.execute("SELECT session_id, manifest_mtime_ns, manifest_size FROM sessions")
            return {sid: (m, s) if m is not None else None for sid, m, s in rows}

    def _sync_scans(self) -> dict[str, str]:
        """Index every scan manifest; return the labels by scan id."""
        manifests = list_scan_manifests(self.images_data_dir)
        with self._writing() as conn:
            conn.execute("DELETE FROM scans")
            for manifest in manifests:
                self._put_scan(conn, manifest, scans_dir(self.images_data_dir) / f"{manifest.scan_id}.json")
        return {m.scan_id: m.label for m in manifests if m.label}

    def _refill_uploads(self) -> None:
        """Copy the sessions' upload states from the upload queue on disk (its record of truth,
        sessions.upload_queue) into the index: a rebuilt file starts with none, and an incremental
        start may have missed changes made while the index was closed. A state the uploader set after
        the records were read is newer than the record read, and is kept."""
        read_at = time.time()
        states = [
            (r.item_id, str(r.state), json.dumps(r.view()), read_at)
            for r in list_records(self.images_data_dir)
            if r.kind == "session"
        ]
        with self._writing() as conn:
            for start in range(0, len(states), BATCH_ROWS):
                conn.executemany(
                    "INSERT INTO uploads (session_id, state, detail, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (session_id) DO UPDATE SET state = excluded.state,"
                    " detail = excluded.detail, updated_at = excluded.updated_at"
                    " WHERE uploads.updated_at < excluded.updated_at",
                    states[start : start + BATCH_ROWS],
                )

    def _write_entries(self, entries: list[_Entry]) -> None:
        if not entries:
            return
        with self._writing() as conn:
            for entry in entries:
                self._put(conn, entry)

    @staticmethod
    def _put(conn: sqlite3.Connection, entry: _Entry) -> None:
        sid = entry.values[0]
        mask = Catalog._camera_mask(conn, [cam for cam, _ in entry.cameras])
        before = conn.total_changes
        conn.execute(_UPSERT, (*entry.values[:9], mask, *entry.values[9:]))
        if conn.total_changes == before:
            return  # an older read than the row in the index: left as it is
        Catalog._put_text(conn, sid)

    @staticmethod
    def _put_text(conn: sqlite3.Connection, session_id: str) -> None:
        """The session's searchable text (id and label) in sessions_text, under the session's rowid."""
        row = conn.execute("SELECT rowid, label FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            return
        conn.execute("DELETE FROM sessions_text WHERE rowid = ?", (row[0],))
        conn.execute(
            "INSERT INTO sessions_text (rowid, text) VALUES (?, ?)",
            (row[0], f"{session_id}\n{row[1] or ''}"),
        )

    @staticmethod
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

    @staticmethod
    def _put_scan(conn: sqlite3.Connection, manifest: ScanManifest, path: Path) -> None:
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
                "UPDATE sessions SET label = ? WHERE scan_id = ? AND label IS NULL RETURNING session_id",
                (manifest.label, manifest.scan_id),
            ).fetchall()
            for (sid,) in labelled:
                Catalog._put_text(conn, sid)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The writer connection in one transaction, under the write lock."""
        with self._write_lock:
            conn = self._writer
            if conn is None:
                raise CatalogUnavailable("the catalog is not open")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._version += 1

    # -- as sessions are written ------------------------------------------------------------------
    def add_session(self, manifest: SessionManifest, folder: Path) -> None:
        """Index a session just saved (an aftercare hook). A damaged index is rebuilt instead."""
        scan_labels = self._scan_labels(manifest.scan_id)
        entry = _entry_from_manifest(manifest, folder, _manifest_stamp(folder), scan_labels)
        self._guarded(lambda: self._write_entries([entry]))

    def add_scan(self, manifest: ScanManifest, path: Path) -> None:
        """Index a scan manifest just written (an aftercare hook)."""

        def write() -> None:
            with self._writing() as conn:
                self._put_scan(conn, manifest, path)

        self._guarded(write)

    def remove_session(self, session_id: str) -> None:
        """Drop a session whose folder was deleted (the uploader's delete_local_after_upload); its
        upload state stays. A start drops folders gone meanwhile by itself."""

        def write() -> None:
            with self._writing() as conn:
                conn.execute(
                    "DELETE FROM sessions_text WHERE rowid IN "
                    "(SELECT rowid FROM sessions WHERE session_id = ?)",
                    (session_id,),
                )
                conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

        self._guarded(write)

    def _scan_labels(self, scan_id: str | None) -> dict[str, str]:
        if scan_id is None:
            return {}
        try:
            with self._reading() as conn:
                row = conn.execute("SELECT label FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
        except (CatalogUnavailable, sqlite3.Error):
            return {}
        return {scan_id: row[0]} if row is not None and row[0] else {}

    def set_upload_state(self, session_id: str, state: str, detail: dict[str, Any] | None = None) -> None:
        """Record a session's upload state (the uploader calls this; any thread). ``detail`` is JSON."""
        text = json.dumps(detail) if detail is not None else None

        def write() -> None:
            with self._writing() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO uploads (session_id, state, detail, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    (session_id, state, text, time.time()),
                )

        self._guarded(write)

    def upload_states(self) -> dict[str, int]:
        """How many sessions are in each upload state."""
        with self._reading() as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM uploads GROUP BY state").fetchall())

    def _guarded(self, write: Callable[[], None]) -> None:
        generation = self._generation
        try:
            write()
        except CatalogUnavailable:
            self._refresh_wanted.set()  # a refresh in progress reads the folder again
        except sqlite3.Error as exc:
            if not self._damaged(exc, generation):
                log.error(
                    "catalog %s: a write failed (%s); the next start reads the folder again", self.path, exc
                )

    def _damaged(self, exc: sqlite3.Error, generation: int) -> bool:
        """Rebuild the index if ``exc`` says the file is damaged (not busy, not a full disk), and it is
        still the file the failing connection used; True if it was damage."""
        if getattr(exc, "sqlite_errorname", None) not in DAMAGE and type(exc) is not sqlite3.DatabaseError:
            return False
        if generation != self._generation:
            return True  # that file is already gone, its rebuild under way
        log.error("catalog %s is damaged (%s): rebuilding it from the folders", self.path, exc)
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.state = "building"
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._remove_files()
        self.start_refresh()
        return True

    # -- reading ------------------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if self._writer is None:
            raise CatalogUnavailable(f"the catalog is {self.state}")
        try:
            conn = self._readers.get_nowait()
            if self._reader_generation.get(id(conn)) != self._generation:
                conn.close()
                raise queue.Empty
        except queue.Empty:
            conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA query_only=1")
            self._reader_generation[id(conn)] = self._generation
        try:
            yield conn
        finally:
            if self._readers.qsize() < READERS and self._reader_generation.get(id(conn)) == self._generation:
                self._readers.put(conn)
            else:
                self._reader_generation.pop(id(conn), None)
                conn.close()

    def _drop_readers(self) -> None:
        while True:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                return
            self._reader_generation.pop(id(conn), None)
            conn.close()

    def query(self, filters: SessionQuery, limit: int, offset: int) -> Page:
        """One page of sessions matching ``filters``, newest first, and how many match in all.

        The page walks the sort index (or a covering index in sort order) and stops after it; the
        total counts entries of a covering index and is remembered until the next write, so paging
        through one filter counts once. Raises CatalogUnavailable when the index cannot answer (the
        caller lists the folders)."""
        version = self._version  # read before the snapshot: a total is never newer than its key says
        generation = self._generation
        try:
            with self._reading() as conn:
                conn.execute("BEGIN")  # one snapshot: the page and the total agree
                try:
                    where, params = filters.where(self._camera_bit(conn, filters.camera))
                    rows = conn.execute(
                        f"SELECT {_ROW_COLUMNS}{_FROM}{where} ORDER BY s.sort_key DESC LIMIT ? OFFSET ?",
                        [*params, limit, offset],
                    ).fetchall()
                    total = self._totals.get((filters, version))
                    if total is None:
                        total = int(
                            conn.execute(f"SELECT COUNT(*) FROM sessions s{where}", params).fetchone()[0]
                        )
                        self._remember_total((filters, version), total)
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._damaged(exc, generation)
            raise CatalogUnavailable(f"the catalog failed: {exc}") from exc
        return Page([_row(r) for r in rows], total)

    @staticmethod
    def _camera_bit(conn: sqlite3.Connection, camera: str | None) -> int | None:
        if camera is None:
            return None
        found = conn.execute("SELECT bit FROM camera_bits WHERE camera_id = ?", (camera,)).fetchone()
        if found is not None:
            return int(found[0])
        full = conn.execute("SELECT COUNT(*) FROM camera_bits").fetchone()[0] >= MAX_CAMERA_BITS
        # A camera never seen has no bit and, while bits remain, no session either: a bit nobody has.
        return None if full else MAX_CAMERA_BITS

    def forget_totals(self) -> None:
        """Drop the remembered totals (the benchmark times a cold count with it)."""
        with self._totals_lock:
            self._totals.clear()

    def _remember_total(self, key: tuple[SessionQuery, int], total: int) -> None:
        with self._totals_lock:
            self._totals[key] = total
            while len(self._totals) > TOTALS_KEPT:
                self._totals.popitem(last=False)

    def get(self, session_id: str) -> SessionRow | None:
        """One session's row (with its upload state), or None when the index does not have it."""
        generation = self._generation
        try:
            with self._reading() as conn:
                row = conn.execute(
                    f"SELECT {_ROW_COLUMNS}{_FROM} WHERE s.session_id = ?", (session_id,)
                ).fetchone()
        except sqlite3.Error as exc:
            self._damaged(exc, generation)
            raise CatalogUnavailable(f"the catalog failed: {exc}") from exc
        return None if row is None else _row(row)

    def upload_state(self, session_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """A session's upload state and detail, or None when none was recorded."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT state, detail FROM uploads WHERE session_id = ?", (session_id,)
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]) if row[1] else None)

    def count(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def status(self) -> dict[str, Any]:
        """The catalog for ``/status``."""
        out: dict[str, Any] = {"state": self.state, "path": str(self.path), "error": self.last_error}
        try:
            out["sessions"] = self.count()
        except (CatalogUnavailable, sqlite3.Error):
            out["sessions"] = None
        if self.last_refresh is not None:
            r = self.last_refresh
            out["last_refresh"] = {
                "full": r.full,
                "read": r.read,
                "removed": r.removed,
                "seconds": round(r.seconds, 3),
            }
        return out


__all__ = [
    "CATALOG_FILE",
    "Catalog",
    "CatalogUnavailable",
    "FilterError",
    "Page",
    "RefreshReport",
    "SessionQuery",
    "SessionRow",
    "query_from_params",
    "session_names",
    "sort_key",
]
