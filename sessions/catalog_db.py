"""The catalog's SQLite file: its schema, the one writer connection behind a lock, and the pool of
reader connections for the HTTP threads. See :mod:`sessions.catalog`.

SQLite in WAL mode: readers never wait on the writer. The file is only a cache: one that is missing,
of another schema version or damaged (``PRAGMA quick_check``) is removed and made again empty
(:meth:`CatalogDB.open`). Replacing the file bumps :attr:`CatalogDB.generation`, so reader
connections to the old one are dropped; every write commit bumps :attr:`CatalogDB.version`.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("sessions.catalog")

CATALOG_FILE = "catalog.sqlite"  # under images_data_dir
SCHEMA_VERSION = 3
# SQLite's words for a damaged file; anything else (busy, locked, I/O, full) is not cured by a rebuild.
DAMAGE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
READERS = 4  # reader connections kept for the HTTP threads

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


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file is damaged (not busy, not a full disk)."""
    return getattr(exc, "sqlite_errorname", None) in DAMAGE or type(exc) is sqlite3.DatabaseError


class CatalogDB:
    """The connections to one catalog file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = 0  # bumped when the file is replaced: older reader connections are dropped
        self.version = 0  # bumped after every write: the key of the remembered totals
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_generation: dict[int, int] = {}

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- the file -------------------------------------------------------------------------------
    def open(self) -> bool:
        """Open the writer connection; True if the existing file is a sound index of this version.
        A damaged or foreign file is removed (it is only a cache) and an empty index made."""
        with self._write_lock:
            self._close_writer()
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

    def discard(self) -> None:
        """Close the writer and remove the file (found damaged); :meth:`open` makes it again."""
        with self._write_lock:
            self._close_writer()
            self._remove_files()

    def close(self) -> None:
        with self._write_lock:
            self._close_writer()
            self._drop_readers()

    def analyze(self) -> None:
        """Renew the statistics, so the planner chooses between the sort index and a covering index."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.execute("PRAGMA analysis_limit = 1000")
                self._writer.execute("ANALYZE")

    @staticmethod
    def _check(conn: sqlite3.Connection) -> bool:
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

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _remove_files(self) -> None:
        self.generation += 1
        self.version += 1
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commits on power loss is fine
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    # -- connections ----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
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
            self.version += 1

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A reader connection from the pool (or a new one), of the current file."""
        try:
            conn = self._readers.get_nowait()
            if self._reader_generation.get(id(conn)) != self.generation:
                conn.close()
                raise queue.Empty
        except queue.Empty:
            conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA query_only=1")
            self._reader_generation[id(conn)] = self.generation
        try:
            yield conn
        finally:
            if self._readers.qsize() < READERS and self._reader_generation.get(id(conn)) == self.generation:
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


__all__ = ["CATALOG_FILE", "SCHEMA_VERSION", "CatalogDB", "CatalogUnavailable", "is_damage"]
