"""The outbox to the shared catalog, kept in the node's own ``catalog.sqlite`` (table ``outbox``).

With a shared (PostgreSQL) catalog configured, every change to a row of the local catalog — a session
indexed, removed, relabelled by its scan, or its upload state changed — puts the session's id in the
outbox, in the same SQLite transaction as the change itself. The outbox worker
(service.fleet.outbox_worker) sends the rows as they are *then* (a row gone is sent as a deletion),
in batches, and takes an id out only if it was not queued again meanwhile (its ``seq`` unchanged). So:

- nothing on the capture path waits for PostgreSQL: indexing a session is one local transaction;
- nothing is lost while PostgreSQL is down or the process is killed: the ids stay in the file until a
  batch holding them has committed in PostgreSQL (WAL, ``synchronous=NORMAL``: a kill loses nothing
  committed; a power cut may lose the last commits, and then the rows with them, which the next
  start reads from the folders again and queues);
- a session changed ten times while PostgreSQL was away is sent once, as it is last;
- sending twice is harmless: the shared catalog upserts by (node_id, session_id).

:data:`PRUNE` is a reserved id (no session id holds ``*``): sent, it makes the shared catalog drop the
rows of this node that the local catalog no longer has. It is queued, with every row, when the
catalog was rebuilt from the folders or when the shared catalog is another than the rows last went
to (:func:`resync`; the target is kept in ``meta``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sessions.catalog_db import CatalogDB, CatalogUnavailable
from sessions.catalog_rows import DEFAULT_KIND, FROM, ROW_COLUMNS, SessionRow, row_of
from sessions.upload_queue import UploadState

PRUNE = "*prune*"  # the outbox id that asks the shared catalog to drop rows this node no longer has
TARGET_KEY = "outbox_target"  # meta: the shared catalog the outbox sends to ("<place> <catalog id>")
LOCAL_DELETED = UploadState.LOCAL_DELETED.value

_ENQUEUE = (
    "INSERT INTO outbox (session_id, seq, queued_at) "
    "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox), ?) "
    # queued_at stays the first time it was queued (the lag's age); a new seq says "changed again"
    "ON CONFLICT (session_id) DO UPDATE SET seq = excluded.seq"
)


@dataclass(frozen=True)
class Lag:
    """What waits in the outbox: ids, and when the longest-waiting one was queued (epoch s)."""

    rows: int
    oldest_queued_at: float | None

    def to_json(self, now: float | None = None) -> dict[str, float | int | None]:
        age = None if self.oldest_queued_at is None else (now or time.time()) - self.oldest_queued_at
        return {"rows": self.rows, "oldest_age_s": None if age is None else round(max(age, 0.0), 1)}


def enqueue(conn: sqlite3.Connection, session_ids: Iterable[str]) -> None:
    """Queue sessions whose row changed (inside the caller's transaction)."""
    now = time.time()
    for session_id in session_ids:
        conn.execute(_ENQUEUE, (session_id, now))


def resync(conn: sqlite3.Connection, node_id: str, target: str) -> int:
    """Queue every row of ``node_id`` and a PRUNE, and remember ``target`` as where the outbox sends
    (inside the caller's transaction); return how many rows were queued."""
    now = time.time()
    base = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])
    cursor = conn.execute(
        "INSERT INTO outbox (session_id, seq, queued_at) SELECT session_id, ? + rowid, ? FROM sessions "
        "WHERE node_id = ? ON CONFLICT (session_id) DO UPDATE SET seq = excluded.seq",
        (base, now, node_id),
    )
    enqueue(conn, [PRUNE])
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (TARGET_KEY, target))
    return max(cursor.rowcount, 0)


def target(conn: sqlite3.Connection) -> str | None:
    """The shared catalog the rows last went to (None: never, or the file was made again)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (TARGET_KEY,)).fetchone()
    return None if row is None else str(row[0])


def batch(conn: sqlite3.Connection, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` longest-waiting (session id, seq)."""
    rows = conn.execute("SELECT session_id, seq FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
    return [(str(sid), int(seq)) for sid, seq in rows]


def done(conn: sqlite3.Connection, sent: Iterable[tuple[str, int]]) -> int:
    """Take out the ids sent, unless queued again since (their seq changed); return how many."""
    cursor = conn.executemany("DELETE FROM outbox WHERE session_id = ? AND seq = ?", list(sent))
    return max(cursor.rowcount, 0)


def lag(conn: sqlite3.Connection) -> Lag:
    count, oldest = conn.execute("SELECT COUNT(*), MIN(queued_at) FROM outbox").fetchone()
    return Lag(int(count), None if oldest is None else float(oldest))


class LocalOutbox:
    """The outbox of one node's catalog file (sessions.catalog.Catalog.outbox), for its worker
    (service.fleet.outbox_worker). Raises CatalogUnavailable while the file is not open."""

    def __init__(self, db: CatalogDB, node_id: str) -> None:
        self._db = db
        self.node_id = node_id

    def _open(self) -> None:
        if not self._db.is_open:
            raise CatalogUnavailable("the catalog is not open yet")

    def batch(self, limit: int) -> list[tuple[str, int]]:
        self._open()
        with self._db.reading() as conn:
            return batch(conn, limit)

    def rows(self, session_ids: Sequence[str]) -> tuple[dict[str, SessionRow], dict[str, SessionRow]]:
        """The rows to send for ``session_ids``: those the catalog has, and those it no longer has
        whose session is only in the object store now (uploaded, then deleted here: the shared
        catalog keeps them, pointing at the store). Any other id is a deletion."""
        self._open()
        marks = ",".join("?" * len(session_ids))
        with self._db.reading() as conn:
            found = conn.execute(
                f"SELECT {ROW_COLUMNS}{FROM} WHERE s.node_id = ? AND s.session_id IN ({marks})",
                (self.node_id, *session_ids),
            ).fetchall()
            rows = {r.session_id: r for r in map(row_of, found)}
            stored = conn.execute(
                "SELECT session_id, state, detail, location FROM uploads WHERE node_id = ? AND state = ? "
                f"AND location IS NOT NULL AND session_id IN ({marks})",
                (self.node_id, LOCAL_DELETED, *session_ids),
            ).fetchall()
        only_stored = {
            sid: stored_row(self.node_id, sid, state, json.loads(detail) if detail else None, location)
            for sid, state, detail, location in stored
            if sid not in rows
        }
        return rows, only_stored

    def keep(self) -> list[str]:
        """The sessions the shared catalog keeps for this node (PRUNE drops the others)."""
        self._open()
        with self._db.reading() as conn:
            here = conn.execute("SELECT session_id FROM sessions WHERE node_id = ?", (self.node_id,))
            ids = {str(r[0]) for r in here}
            stored = conn.execute(
                "SELECT session_id FROM uploads WHERE node_id = ? AND state = ? AND location IS NOT NULL",
                (self.node_id, LOCAL_DELETED),
            )
            return sorted(ids | {str(r[0]) for r in stored})

    def done(self, sent: Sequence[tuple[str, int]]) -> int:
        with self._db.writing(rows=False) as conn:
            return done(conn, sent)

    def lag(self) -> Lag:
        if not self._db.is_open:
            return Lag(0, None)
        with self._db.reading() as conn:
            return lag(conn)

    def target(self) -> str | None:
        self._open()
        with self._db.reading() as conn:
            return target(conn)

    def resync(self, to: str) -> int:
        """Queue every row and a PRUNE for the shared catalog ``to``; return how many rows."""
        with self._db.writing() as conn:
            return resync(conn, self.node_id, to)


def stored_row(
    node_id: str, session_id: str, state: str, detail: dict[str, Any] | None, location: str
) -> SessionRow:
    """A session only in the object store now: what the shared catalog keeps of it besides its
    upload state is what it had (sessions.catalog_pg updates those columns only)."""
    return SessionRow(
        node_id, session_id, "", "", DEFAULT_KIND, None, None, None, None, (), None, None, None, None,
        None, None, None, None, state, detail, location,
    )  # fmt: skip


__all__ = [
    "PRUNE",
    "TARGET_KEY",
    "Lag",
    "LocalOutbox",
    "batch",
    "done",
    "enqueue",
    "lag",
    "resync",
    "stored_row",
    "target",
]
