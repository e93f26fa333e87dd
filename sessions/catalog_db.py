"""The catalog's SQLite file: its schema, the one writer connection behind a lock, and the pool of
reader connections for the HTTP threads. See :mod:`sessions.catalog`.

SQLite in WAL mode: readers never wait on the writer. The schema is :mod:`sessions.catalog_schema`'s,
its migrations applied at open. The file is only a cache: one that is missing, without a
``schema_version`` (made before the migrations), of a newer schema or damaged (``PRAGMA
quick_check``) is removed and made again empty (:meth:`CatalogDB.open`). Replacing the file bumps
:attr:`CatalogDB.generation`, so reader connections to the old one are dropped; every write commit
bumps :attr:`CatalogDB.version`.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rigcore.config_paths import CATALOG_FILE  # under images_data_dir: the one list of owned files
from sessions.catalog_schema import LATEST, SCHEMA_VERSION_TABLE, SchemaTooNew, pending

log = logging.getLogger("sessions.catalog")

SCHEMA_VERSION = LATEST  # sessions.catalog_schema: the file's schema_version after open()
# SQLite's words for a damaged file; anything else (busy, locked, I/O, full) is not cured by a rebuild.
DAMAGE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
READERS = 4  # reader connections kept for the HTTP threads


class CatalogUnavailable(Exception):
    """The index cannot answer now (being rebuilt after damage, or not openable); use the folders."""


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file is damaged (not busy, not a full disk)."""
    return getattr(exc, "sqlite_errorname", None) in DAMAGE or type(exc) is sqlite3.DatabaseError


def applied_version(conn: sqlite3.Connection) -> int:
    """The newest migration applied to the file (0: none)."""
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations the file lacks, each in its own transaction; return the version now."""
    conn.execute(SCHEMA_VERSION_TABLE["sqlite"])
    for migration in pending(applied_version(conn)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migration.sqlite):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (migration.version, time.time()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        log.info("catalog schema: migration %d applied (%s)", migration.version, migration.what)
    return applied_version(conn)


def _statements(script: str) -> list[str]:
    """A script's statements (executescript would commit the transaction a migration runs in)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


class CatalogDB:
    """The connections to one catalog file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = 0  # bumped when the file is replaced: older reader connections are dropped
        self.version = 0  # bumped after every write: the key of the remembered totals
        self.outbox = False  # every change also queued in the outbox (sessions.outbox): a shared catalog
        self.node_id = ""  # this node: only its rows go into the outbox
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
            migrate(conn)
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
        if "schema_version" not in tables or "meta" not in tables:
            return False  # empty, foreign, or a catalog from before the migrations: made again
        try:
            pending(applied_version(conn))
        except SchemaTooNew:
            return False  # a newer rigcapture's cache: made again for this one
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
    def writing(self, rows: bool = True) -> Iterator[sqlite3.Connection]:
        """The writer connection in one transaction, under the write lock. ``rows``: the transaction
        may change sessions (a heartbeat or the outbox's bookkeeping does not: remembered totals stay)."""
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
            if rows:
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


__all__ = [
    "CATALOG_FILE",
    "SCHEMA_VERSION",
    "CatalogDB",
    "CatalogUnavailable",
    "applied_version",
    "is_damage",
    "migrate",
]
