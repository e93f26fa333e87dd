"""The one interface of a catalog, whatever engine holds it: :class:`CatalogBackend`.

Two implement it: the node's own SQLite file (:class:`sessions.catalog.Catalog`, the default, and the
source of the outbox) and the fleet's shared PostgreSQL database (:class:`sessions.catalog_pg.PgCatalog`).
``tests/test_catalog_backends.py`` runs one suite over both. Rows are :class:`SessionRow` (their node
included); heartbeats are :class:`NodeBeat` in and :class:`NodeSeen` out.

Here too: the heartbeat table's SQLite side (:func:`sqlite_beat`, :func:`sqlite_nodes`); the PostgreSQL
side is in sessions.catalog_pg.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sessions.catalog_filters import SessionQuery
from sessions.catalog_rows import Page, SessionRow

OFFLINE_AFTER_BEATS = 3  # a node whose last heartbeat is older than this many of its intervals is offline


@dataclass(frozen=True)
class NodeBeat:
    """One heartbeat of a node: who it is, where, and what it does now (``state``: broker, streams,
    current job, catalog lag; JSON)."""

    node_id: str
    url: str | None
    version: str
    heartbeat_s: float
    started_at: float | None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeSeen:
    """A node as the catalog last heard of it: its last beat, when (the catalog's clock), and how long
    ago (the catalog's clock too, so nodes' clocks never need to agree)."""

    beat: NodeBeat
    last_seen: float
    age_s: float

    @property
    def online(self) -> bool:
        return self.age_s <= OFFLINE_AFTER_BEATS * self.beat.heartbeat_s

    def to_json(self) -> dict[str, Any]:
        b = self.beat
        return {
            "node_id": b.node_id,
            "online": self.online,
            "last_seen": self.last_seen,
            "age_s": round(self.age_s, 1),
            "url": b.url,
            "version": b.version,
            "heartbeat_s": b.heartbeat_s,
            "started_at": b.started_at,
            **b.state,
        }


class CatalogBackend(Protocol):
    """What a catalog does, on either engine."""

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        ...

    def schema_version(self) -> int: ...

    def put_rows(self, rows: Sequence[SessionRow]) -> None:
        """Insert or replace rows, keyed by (node_id, session_id)."""

    def delete_rows(self, node_id: str, session_ids: Sequence[str]) -> None: ...

    def prune(self, node_id: str, keep: Collection[str]) -> int:
        """Drop the rows of ``node_id`` whose session is not in ``keep``; return how many."""
        ...

    def query(self, filters: SessionQuery, limit: int, offset: int) -> Page:
        """One page, newest first (sort key, then node), and how many match in all."""
        ...

    def get_row(self, node_id: str, session_id: str) -> SessionRow | None: ...

    def beat(self, beat: NodeBeat) -> None:
        """Record a heartbeat (insert or replace the node's)."""

    def nodes(self) -> list[NodeSeen]:
        """Every node that ever beat, by id."""
        ...


# -- the SQLite side of the heartbeats ---------------------------------------------------------------
def sqlite_beat(conn: sqlite3.Connection, beat: NodeBeat) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO nodes (node_id, url, version, heartbeat_s, started_at, last_seen, state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            beat.node_id,
            beat.url,
            beat.version,
            beat.heartbeat_s,
            beat.started_at,
            time.time(),
            json.dumps(beat.state),
        ),
    )


def sqlite_nodes(conn: sqlite3.Connection) -> list[NodeSeen]:
    now = time.time()
    rows = conn.execute(
        "SELECT node_id, url, version, heartbeat_s, started_at, last_seen, state FROM nodes ORDER BY node_id"
    ).fetchall()
    return [seen(row[:5], json.loads(row[6]), row[5], now - row[5]) for row in rows]


def seen(head: Sequence[Any], state: Any, last_seen: float, age_s: float) -> NodeSeen:
    """A NodeSeen from (node_id, url, version, heartbeat_s, started_at), the state and the times."""
    node_id, url, version, heartbeat_s, started_at = head
    beat = NodeBeat(
        node_id, url, version, float(heartbeat_s), started_at, state if isinstance(state, dict) else {}
    )
    return NodeSeen(beat, float(last_seen), max(float(age_s), 0.0))


__all__ = [
    "OFFLINE_AFTER_BEATS",
    "CatalogBackend",
    "NodeBeat",
    "NodeSeen",
    "seen",
    "sqlite_beat",
    "sqlite_nodes",
]
