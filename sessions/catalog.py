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

The parts: :mod:`sessions.catalog_filters` (the filter language: query string → SessionQuery → SQL),
:mod:`sessions.catalog_rows` (a session folder → its row, a row → SessionRow), :mod:`sessions.catalog_db`
(the file, its writer connection and reader pool), :mod:`sessions.catalog_index` (writing rows and the
refresh); session folders themselves are found and read through :mod:`sessions.folders`.

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

The fleet (docs/operations/fleet.md): every row carries its node (``node_id``, this node's); the
catalog is one of the two :class:`sessions.catalog_backend.CatalogBackend` (``put_rows``, ``query``,
``beat``, ``nodes`` …), the shared PostgreSQL one being the other; and with a shared catalog
configured (``outbox=True``) every change is queued in :attr:`Catalog.outbox` (sessions.outbox).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from rigcore.config_fleet import default_node_id
from sessions import catalog_index as index
from sessions.catalog_backend import NodeBeat, NodeSeen, sqlite_beat, sqlite_nodes
from sessions.catalog_db import CATALOG_FILE, CatalogDB, CatalogUnavailable, applied_version, is_damage
from sessions.catalog_filters import FilterError, SessionQuery, query_from_params
from sessions.catalog_index import RefreshReport
from sessions.catalog_rows import (
    FROM,
    ROW_COLUMNS,
    Page,
    SessionRow,
    entry_from_row,
    entry_of,
    location_of,
    row_of,
)
from sessions.folders import manifest_stamp, of_manifest
from sessions.manifest import SessionManifest
from sessions.outbox import LocalOutbox, enqueue
from sessions.scan_manifest import ScanManifest
from sessions.upload_queue import UploadState, read_record

log = logging.getLogger(__name__)

TOTALS_KEPT = 64  # filtered totals remembered until the next write
STORED_STATES = frozenset({UploadState.UPLOADED.value, UploadState.LOCAL_DELETED.value})  # in the store

CatalogState = Literal["building", "refreshing", "ready", "unavailable"]


class _Totals:
    """Filtered totals by (query, catalog version): paging through one filter counts once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[SessionQuery, int], int] = OrderedDict()

    def get(self, key: tuple[SessionQuery, int]) -> int | None:
        return self._items.get(key)

    def remember(self, key: tuple[SessionQuery, int], total: int) -> None:
        with self._lock:
            self._items[key] = total
            while len(self._items) > TOTALS_KEPT:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Catalog:
    """The index of ``save_dir`` and ``images_data_dir/scans`` in ``images_data_dir/catalog.sqlite``."""

    backend = "sqlite"

    def __init__(
        self,
        save_dir: Path,
        images_data_dir: Path,
        path: Path | None = None,
        node_id: str | None = None,
        outbox: bool = False,
    ) -> None:
        self.save_dir = save_dir
        self.images_data_dir = images_data_dir
        self.path = path or images_data_dir / CATALOG_FILE
        self.node_id = node_id or default_node_id()
        self.state: CatalogState = "building"
        self.last_error: str | None = None
        self.last_refresh: RefreshReport | None = None
        self._db = CatalogDB(self.path)
        self._db.outbox = outbox  # a shared catalog is configured: queue every change for it
        self._db.node_id = self.node_id
        self._early_beat: NodeBeat | None = None  # a heartbeat before the file is open (its first build)
        self.outbox = LocalOutbox(self._db, self.node_id)
        self._thread_lock = threading.Lock()
        self._refresh_thread: threading.Thread | None = None
        self._refresh_wanted = threading.Event()
        self._closed = False
        self._totals = _Totals()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start_refresh(self) -> threading.Thread:
        """Open (or rebuild) the index and bring it up to date on a background thread."""
        with self._thread_lock:
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
        self._db.close()

    def refresh(self) -> RefreshReport:
        """Open the index, rebuilding it when missing, of another version or damaged, and bring it up to
        date with the folders (on the calling thread; :meth:`start_refresh` runs this in the background)."""
        started = time.perf_counter()
        full = not self._db.open()
        early, self._early_beat = self._early_beat, None
        if early is not None:  # a heartbeat that came before the file was open
            self.beat(early)
        self.state = "building" if full else "refreshing"
        folders = (self.save_dir, self.images_data_dir)
        read, removed = index.sync(self._db, folders, self.node_id, full, lambda: self._closed)
        index.refill_uploads(self._db, self.images_data_dir, self.node_id)
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

    # -- as sessions are written ------------------------------------------------------------------
    def add_session(self, manifest: SessionManifest, folder: Path) -> None:
        """Index a session just saved (an aftercare hook). A damaged index is rebuilt instead."""
        scan_labels = self._scan_labels(manifest.scan_id)
        entry = entry_of(of_manifest(folder, manifest, manifest_stamp(folder)), scan_labels, self.node_id)
        self._guarded(lambda: index.write_entries(self._db, [entry]))

    def add_scan(self, manifest: ScanManifest, path: Path) -> None:
        """Index a scan manifest just written (an aftercare hook)."""
        self._write(lambda conn: index.put_scan(conn, manifest, path, self._db.outbox))

    def remove_session(self, session_id: str) -> None:
        """Drop a session whose folder was deleted (the uploader's delete_local_after_upload); its
        upload state stays. A start drops folders gone meanwhile by itself."""
        self._write(lambda conn: index.delete_sessions(conn, self.node_id, [session_id], self._db.outbox))

    def set_upload_state(self, session_id: str, state: str, detail: dict[str, Any] | None = None) -> None:
        """Record a session's upload state (the uploader calls this; any thread). ``detail`` is JSON.
        Once the session is in the store, where (from its upload record) goes with it."""
        text = json.dumps(detail) if detail is not None else None
        record = read_record(self.images_data_dir, "session", session_id) if state in STORED_STATES else None
        location = location_of(record.target, session_id) if record is not None else None

        def write(conn: sqlite3.Connection) -> None:
            index.set_upload(conn, self.node_id, session_id, state, text, location)
            if self._db.outbox:
                enqueue(conn, [session_id])

        self._write(write)

    def _scan_labels(self, scan_id: str | None) -> dict[str, str]:
        if scan_id is None:
            return {}
        try:
            with self._reading() as conn:
                row = conn.execute("SELECT label FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
        except (CatalogUnavailable, sqlite3.Error):
            return {}
        return {scan_id: row[0]} if row is not None and row[0] else {}

    def _write(self, write: Callable[[sqlite3.Connection], None]) -> None:
        """``write`` in one transaction of the writer connection, guarded as :meth:`_guarded` says."""

        def transaction() -> None:
            with self._db.writing() as conn:
                write(conn)

        self._guarded(transaction)

    def _guarded(self, write: Callable[[], None]) -> None:
        generation = self._db.generation
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
        if not is_damage(exc):
            return False
        if generation != self._db.generation:
            return True  # that file is already gone, its rebuild under way
        log.error("catalog %s is damaged (%s): rebuilding it from the folders", self.path, exc)
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.state = "building"
        self._db.discard()
        self.start_refresh()
        return True

    # -- reading ------------------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if not self._db.is_open:
            raise CatalogUnavailable(f"the catalog is {self.state}")
        with self._db.reading() as conn:
            yield conn

    def query(self, filters: SessionQuery, limit: int, offset: int) -> Page:
        """One page of sessions matching ``filters``, newest first, and how many match in all.

        The page walks the sort index (or a covering index in sort order) and stops after it; the
        total counts entries of a covering index and is remembered until the next write, so paging
        through one filter counts once. Raises CatalogUnavailable when the index cannot answer (the
        caller lists the folders)."""
        version = self._db.version  # read before the snapshot: a total is never newer than its key says
        generation = self._db.generation
        try:
            with self._reading() as conn:
                conn.execute("BEGIN")  # one snapshot: the page and the total agree
                try:
                    where, params = filters.where(index.camera_bit(conn, filters.camera))
                    rows = conn.execute(
                        f"SELECT {ROW_COLUMNS}{FROM}{where} ORDER BY s.sort_key DESC, s.node_id DESC "
                        "LIMIT ? OFFSET ?",
                        [*params, limit, offset],
                    ).fetchall()
                    total = self._totals.get((filters, version))
                    if total is None:
                        total = int(
                            conn.execute(f"SELECT COUNT(*) FROM sessions s{where}", params).fetchone()[0]
                        )
                        self._totals.remember((filters, version), total)
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._damaged(exc, generation)
            raise CatalogUnavailable(f"the catalog failed: {exc}") from exc
        return Page([row_of(r) for r in rows], total)

    def forget_totals(self) -> None:
        """Drop the remembered totals (the benchmark times a cold count with it)."""
        self._totals.clear()

    def get(self, session_id: str, node_id: str | None = None) -> SessionRow | None:
        """One session's row (with its upload state), or None when the index does not have it;
        this node's unless ``node_id`` says another."""
        generation = self._db.generation
        try:
            with self._reading() as conn:
                row = conn.execute(
                    f"SELECT {ROW_COLUMNS}{FROM} WHERE s.node_id = ? AND s.session_id = ?",
                    (node_id or self.node_id, session_id),
                ).fetchone()
        except sqlite3.Error as exc:
            self._damaged(exc, generation)
            raise CatalogUnavailable(f"the catalog failed: {exc}") from exc
        return None if row is None else row_of(row)

    def upload_state(self, session_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """A session's upload state and detail, or None when none was recorded."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT state, detail FROM uploads WHERE node_id = ? AND session_id = ?",
                (self.node_id, session_id),
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]) if row[1] else None)

    def upload_states(self) -> dict[str, int]:
        """How many sessions are in each upload state."""
        with self._reading() as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM uploads GROUP BY state").fetchall())

    def count(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def status(self) -> dict[str, Any]:
        """The catalog for ``/status``."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "node_id": self.node_id,
            "state": self.state,
            "path": str(self.path),
            "error": self.last_error,
        }
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

    # -- the backend interface (sessions.catalog_backend): rows of any node, heartbeats -------------------
    def schema_version(self) -> int:
        with self._reading() as conn:
            return applied_version(conn)

    def get_row(self, node_id: str, session_id: str) -> SessionRow | None:
        return self.get(session_id, node_id)

    def put_rows(self, rows: Sequence[SessionRow]) -> None:
        """Rows as another catalog has them (their upload state included)."""
        index.write_entries(self._db, [entry_from_row(r) for r in rows])
        with self._db.writing() as conn:
            for r in rows:
                if r.upload_state is not None:
                    detail = json.dumps(r.upload_detail) if r.upload_detail is not None else None
                    index.set_upload(conn, r.node_id, r.session_id, r.upload_state, detail, r.location)

    def delete_rows(self, node_id: str, session_ids: Sequence[str]) -> None:
        with self._db.writing() as conn:
            index.delete_sessions(
                conn, node_id, session_ids, queue=self._db.outbox and node_id == self.node_id
            )

    def prune(self, node_id: str, keep: Collection[str]) -> int:
        kept = set(keep)
        with self._db.writing() as conn:
            here = [
                r[0] for r in conn.execute("SELECT session_id FROM sessions WHERE node_id = ?", (node_id,))
            ]
            gone = [sid for sid in here if sid not in kept]
            index.delete_sessions(conn, node_id, gone)
        return len(gone)

    def beat(self, beat: NodeBeat) -> None:
        """Record a heartbeat; while the file is first built it is kept here and shown as is."""
        if not self._db.is_open:
            self._early_beat = beat
            return
        with self._db.writing(rows=False) as conn:
            sqlite_beat(conn, beat)

    def nodes(self) -> list[NodeSeen]:
        early = self._early_beat
        if not self._db.is_open and early is not None:
            return [NodeSeen(early, time.time(), 0.0)]
        with self._reading() as conn:
            return sqlite_nodes(conn)


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
]
