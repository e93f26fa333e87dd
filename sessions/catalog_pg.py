"""The fleet's shared catalog on PostgreSQL, through psycopg 3 and its pool (psycopg_pool): the same
interface as the node's own SQLite catalog (:class:`sessions.catalog_backend.CatalogBackend`), over the
same schema (:mod:`sessions.catalog_schema`), with the same filters (:meth:`SessionQuery.pg_where`).

- **Schema**: made and migrated by the first node that connects (each later start finds it current):
  the migrations run under a transaction-scoped advisory lock, so nodes starting together apply each
  once. A schema newer than this program is refused (:class:`CatalogUnavailable` says so).
- **Never on the capture path**: only the outbox worker, the heartbeat and the API's fleet views call
  this; the pool opens no connection until one is asked for (``min_size`` 0), a connection that
  cannot be had within ``connect_timeout_s`` raises, and the server cancels a statement after
  ``statement_timeout_s``. Every failure is a :class:`CatalogUnavailable` naming the server (its
  password hidden).
- **Clocks**: a heartbeat's ``last_seen`` and its age are the server's clock, never a node's.
- **Rows**: keyed by (node_id, session_id); each node writes only its own (the outbox), everyone reads
  all. A session a node deleted after its upload stays, pointing at the object store
  (:meth:`PgCatalog.apply`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from rigcore.config_fleet import redact_password
from sessions.catalog_backend import NodeBeat, NodeSeen, seen
from sessions.catalog_db import CatalogUnavailable
from sessions.catalog_filters import SessionQuery
from sessions.catalog_rows import Page, SessionRow
from sessions.catalog_schema import PG_TRIGRAM, SCHEMA_VERSION_TABLE, SchemaTooNew, pending
from sessions.folders import sort_key

log = logging.getLogger("sessions.catalog")

MIGRATION_LOCK = 0x7269_6763_6174  # pg_advisory_xact_lock key of the migrations ("rigcat")
_COLUMNS = (
    "node_id, session_id, sort_key, status, kind, job_id, settled_at, started_at, finished_at, cameras, "
    "scan_id, pose_index, pan_x100, tilt_x100, label, frame_count, bytes, format_version, upload_state, "
    "upload_detail, location, search, updated_at"
)
_UPSERT = (
    f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join(['%s'] * 23)}) "
    "ON CONFLICT (node_id, session_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS.split(", ")[2:])
)
# A session deleted on its node after its upload: only its upload state and place change.
_STORED = (
    "UPDATE sessions SET upload_state = %s, upload_detail = %s, location = %s, updated_at = %s "
    "WHERE node_id = %s AND session_id = %s"
)
_SELECT = (
    "SELECT s.node_id, s.session_id, '', s.status, s.kind, s.job_id, s.settled_at, s.started_at, "
    "s.finished_at, s.cameras, s.scan_id, s.pose_index, s.pan_x100, s.tilt_x100, s.label, s.frame_count, "
    "s.bytes, s.format_version, s.upload_state, s.upload_detail, s.location FROM sessions s"
)
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"


def _row(values: Sequence[Any]) -> SessionRow:
    fields = list(values)
    fields[9] = tuple(fields[9] or ())  # cameras: text[]
    return SessionRow(*fields)


def _values(row: SessionRow, now: float) -> tuple[Any, ...]:
    detail = Jsonb(row.upload_detail) if row.upload_detail is not None else None
    search = f"{row.session_id}\n{row.label or ''}".lower()
    return (
        row.node_id, row.session_id, sort_key(row.session_id), row.status, row.kind, row.job_id,
        row.settled_at, row.started_at, row.finished_at, list(row.cameras), row.scan_id, row.pose_index,
        row.pan_x100, row.tilt_x100, row.label, row.frame_count, row.bytes, row.format_version,
        row.upload_state, detail, row.location, search, now,
    )  # fmt: skip


class PgCatalog:
    """The shared catalog at ``url`` (``postgresql://user:password@host:port/db``)."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.shown_url = redact_password(url)
        self.catalog_id: str | None = None  # catalog_meta's, known once connected
        self.trigram = False  # whether ?q= has its trigram index (pg_trgm could be had)
        self._schema_lock = threading.Lock()
        self._pool = ConnectionPool(
            url,
            min_size=0,  # no connection until one is asked for: a start never waits for the server
            max_size=pool_size,
            open=False,
            timeout=connect_timeout_s,
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
            name="shared catalog",
            kwargs={
                "connect_timeout": max(1, math.ceil(connect_timeout_s)),
                "options": f"-c statement_timeout={round(statement_timeout_s * 1000)}",
                "application_name": "rigcapture",
            },
        )
        self._opened = False

    def close(self) -> None:
        with self._schema_lock:
            if self._opened:
                self._pool.close(timeout=5)
            self._opened = False

    def _open(self) -> None:
        """Open the pool at first use (no thread, no connection before the catalog is needed)."""
        with self._schema_lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True

    # -- connections and the schema ---------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction (committed on the way out), the schema made first."""
        self._open()
        try:
            with self._pool.connection() as conn:
                if self.catalog_id is None:
                    self._migrate(conn)
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            raise CatalogUnavailable(f"the shared catalog {self.shown_url} failed: {_reason(exc)}") from exc
        except SchemaTooNew as exc:
            raise CatalogUnavailable(f"the shared catalog {self.shown_url}: {exc}") from exc

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with self._schema_lock:
            if self.catalog_id is not None:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(SCHEMA_VERSION_TABLE["postgres"])
                applied = _applied(conn)
                for migration in pending(applied):
                    conn.execute(migration.postgres)
                    conn.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                        (migration.version, time.time()),
                    )
                    log.info("shared catalog: migration %d applied (%s)", migration.version, migration.what)
                self.trigram = _trigram(conn)
                found = conn.execute("SELECT value FROM catalog_meta WHERE key = 'catalog_id'").fetchone()
            if found is None:  # never: migration 1 writes it
                raise SchemaTooNew("the catalog has no catalog_id (catalog_meta)")
            self.catalog_id = str(found[0])
            log.info("shared catalog %s: schema version %d", self.shown_url, _applied(conn))

    def connect(self) -> str:
        """Make sure the schema is there; return the catalog's id (it changes when the database is
        made again: the outbox then sends every row anew)."""
        with self._conn():
            pass
        assert self.catalog_id is not None
        return self.catalog_id

    def schema_version(self) -> int:
        with self._conn() as conn:
            return _applied(conn)

    # -- rows ----------------------------------------------------------------------------------------
    def put_rows(self, rows: Sequence[SessionRow]) -> None:
        self.apply(rows)

    def delete_rows(self, node_id: str, session_ids: Sequence[str]) -> None:
        self.apply((), deleted=(node_id, session_ids))

    def prune(self, node_id: str, keep: Collection[str]) -> int:
        with self._conn() as conn:
            cursor = conn.execute(
                "DELETE FROM sessions WHERE node_id = %s AND NOT (session_id = ANY(%s))",
                (node_id, list(keep)),
            )
            return cursor.rowcount

    def apply(
        self,
        rows: Sequence[SessionRow],
        stored: Sequence[SessionRow] = (),
        deleted: tuple[str, Sequence[str]] | None = None,
    ) -> None:
        """One batch of the outbox, in one transaction: rows written, sessions now only in the object
        store updated (their upload state and place), ``deleted`` (node_id, ids) dropped."""
        now = time.time()
        with self._conn() as conn, conn.cursor() as cur:
            if rows:
                cur.executemany(_UPSERT, [_values(r, now) for r in rows])
            if stored:
                cur.executemany(
                    _STORED,
                    [
                        (r.upload_state, Jsonb(r.upload_detail), r.location, now, r.node_id, r.session_id)
                        for r in stored
                    ],
                )
            if deleted is not None and deleted[1]:
                cur.execute(
                    "DELETE FROM sessions WHERE node_id = %s AND session_id = ANY(%s)",
                    (deleted[0], list(deleted[1])),
                )

    def query(self, filters: SessionQuery, limit: int, offset: int) -> Page:
        where, params = filters.pg_where()
        with self._conn() as conn:
            rows = conn.execute(
                f"{_SELECT}{where} ORDER BY s.sort_key DESC, s.node_id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
            total = conn.execute(f"SELECT count(*) FROM sessions s{where}", params).fetchone()
        return Page([_row(r) for r in rows], int(total[0]) if total else 0)

    def get_row(self, node_id: str, session_id: str) -> SessionRow | None:
        with self._conn() as conn:
            row = conn.execute(
                f"{_SELECT} WHERE s.node_id = %s AND s.session_id = %s", (node_id, session_id)
            ).fetchone()
        return None if row is None else _row(row)

    def count(self) -> int:
        with self._conn() as conn:
            found = conn.execute("SELECT count(*) FROM sessions").fetchone()
        return int(found[0]) if found else 0

    # -- heartbeats ------------------------------------------------------------------------------------
    def beat(self, beat: NodeBeat) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO nodes (node_id, url, version, heartbeat_s, started_at, last_seen, state) "
                f"VALUES (%s, %s, %s, %s, %s, {_NOW}, %s) ON CONFLICT (node_id) DO UPDATE SET "
                "url = EXCLUDED.url, version = EXCLUDED.version, heartbeat_s = EXCLUDED.heartbeat_s, "
                "started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen, state = EXCLUDED.state",
                (beat.node_id, beat.url, beat.version, beat.heartbeat_s, beat.started_at, Jsonb(beat.state)),
            )

    def nodes(self) -> list[NodeSeen]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT node_id, url, version, heartbeat_s, started_at, last_seen, state, "
                f"{_NOW} - last_seen FROM nodes ORDER BY node_id"
            ).fetchall()
        return [seen(r[:5], r[6], r[5], r[7]) for r in rows]


def _applied(conn: psycopg.Connection[Any]) -> int:
    found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(found[0]) if found else 0


def _trigram(conn: psycopg.Connection[Any]) -> bool:
    """The trigram index for ?q=, if pg_trgm can be had (inside the migration's transaction, in a
    savepoint: without it ?q= is matched row by row)."""
    try:
        with conn.transaction():
            for statement in PG_TRIGRAM:
                conn.execute(statement)
    except psycopg.Error as exc:
        log.warning("shared catalog: no trigram index for ?q= (%s); it is matched row by row", _reason(exc))
        return False
    return True


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (libpq's messages run on with hints)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


__all__ = ["PgCatalog"]
