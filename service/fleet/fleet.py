"""The fleet, as this node takes part in it (docs/operations/fleet.md): who it is, where the catalog
the fleet reads lives, its heartbeat, and the outbox that carries its rows there.

- Without a shared catalog (``catalog.url`` absent or ``"sqlite"``): the heartbeat goes into the node's
  own catalog, so ``GET /fleet`` lists this node alone, and ``GET /sessions?node=all`` lists this
  node's sessions (the only ones it knows; the answer says ``"shared": false``); another node's id is
  refused (400).
- With one (``postgresql://…``): the local catalog still answers the node's own listing and queues
  every change in its outbox; :class:`OutboxWorker` sends it; the heartbeat goes to the shared
  catalog; ``GET /fleet`` and ``GET /sessions?node=…`` read it. Nothing here is on the capture path.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from rigcore.config_fleet import ALL_NODES, CatalogConfig, NodeConfig, redact_password
from service.fleet.heartbeat import Heartbeat, service_version
from service.fleet.outbox_worker import OutboxWorker
from service.status import UNFINISHED
from sessions.catalog import Catalog
from sessions.catalog_backend import CatalogBackend, NodeBeat, NodeSeen
from sessions.catalog_filters import FilterError, SessionQuery
from sessions.catalog_pg import PgCatalog
from sessions.catalog_rows import Page

JOB_KEYS = ("job_id", "kind", "status", "phase", "progress")


class NodeParts(Protocol):
    """What a heartbeat reads of the node (service.capture.CaptureService); any thread, no waiting."""

    def broker_connected(self) -> bool: ...

    def streams_connected(self) -> bool: ...

    def job_views(self) -> list[dict[str, Any]]: ...


class Fleet:
    def __init__(self, node: NodeConfig, catalog: CatalogConfig, local: Catalog, parts: NodeParts) -> None:
        self.node = node
        self.config = catalog
        self.local = local
        self._parts = parts
        self.started_at = time.time()
        self.shared: PgCatalog | None = None
        if catalog.shared and catalog.url is not None:
            self.shared = PgCatalog(
                catalog.url,
                pool_size=catalog.pool_size,
                connect_timeout_s=catalog.connect_timeout_s,
                statement_timeout_s=catalog.statement_timeout_s,
            )
        # Where the fleet's heartbeats and rows are read from.
        self.store: CatalogBackend = self.shared if self.shared is not None else local
        self.heartbeat = Heartbeat(self.store, self.beat, catalog.heartbeat_s)
        self.outbox = OutboxWorker(local.outbox, self.shared, catalog) if self.shared is not None else None

    @property
    def node_id(self) -> str:
        return self.node.id

    def start(self) -> None:
        # Without a shared catalog the beat goes into the local SQLite file: write the first one now, so
        # GET /fleet lists this node from the start. A shared catalog is never waited for.
        self.heartbeat.start(beat_now=self.shared is None)
        if self.outbox is not None:
            self.outbox.start()

    def stop(self) -> None:
        self.heartbeat.stop()
        if self.outbox is not None:
            self.outbox.stop()
        if self.shared is not None:
            self.shared.close()

    # -- the heartbeat -------------------------------------------------------------------------------
    def beat(self) -> NodeBeat:
        """This node now: broker and streams, the job running (or the oldest queued), the outbox."""
        jobs = [j for j in self._parts.job_views() if j.get("status") in UNFINISHED]
        running = [j for j in jobs if j.get("status") == "running"] or jobs[-1:]
        state: dict[str, Any] = {
            "broker": {"connected": self._parts.broker_connected()},
            "streams": {"connected": self._parts.streams_connected()},
            "job": {k: running[0].get(k) for k in JOB_KEYS if k in running[0]} if running else None,
            "jobs_waiting": len(jobs) - (1 if running else 0),
            "catalog": {"backend": self.store.backend, "lag": self.local.outbox.lag().to_json()},
        }
        return NodeBeat(
            node_id=self.node.id,
            url=redact_password(self.node.url) if self.node.url else None,  # shown to every node
            version=service_version(),
            heartbeat_s=self.config.heartbeat_s,
            started_at=self.started_at,
            state=state,
        )

    # -- reading the fleet ---------------------------------------------------------------------------
    def nodes(self) -> list[NodeSeen]:
        """Every node the catalog heard of (CatalogUnavailable when the shared one does not answer)."""
        return self.store.nodes()

    def lists_here(self, filters: SessionQuery) -> bool:
        """Whether this node's own catalog answers ``GET /sessions`` with these filters: no node asked,
        this node, or every node without a shared catalog. FilterError for another node's id without
        one."""
        if filters.node in (None, self.node.id):
            return True
        if self.shared is not None:
            return False
        if filters.node == ALL_NODES:
            return True
        raise FilterError(
            "node",
            f"{filters.node!r}: this node is {self.node.id!r} and no shared catalog is configured "
            "(catalog.url), so it knows no other node's sessions",
        )

    def sessions(self, filters: SessionQuery, limit: int, offset: int) -> Page:
        """A page of the fleet's sessions from the shared catalog (CatalogUnavailable when it does not
        answer)."""
        return self.store.query(filters, limit, offset)

    def node_urls(self) -> dict[str, str | None]:
        """Each node's url (for links to another node's sessions); {} when the catalog does not answer."""
        try:
            return {n.beat.node_id: n.beat.url for n in self.store.nodes()}
        except Exception:  # CatalogUnavailable: links are a courtesy, the page still answers
            return {}

    def status(self) -> dict[str, Any]:
        """What /status says of the catalog besides the local file's state."""
        lag = self.local.outbox.lag()
        out: dict[str, Any] = {
            "backend": self.store.backend,
            "node_id": self.node.id,
            "heartbeat": self.heartbeat.status(),
        }
        if self.shared is not None and self.outbox is not None:
            out["shared"] = {"url": self.shared.shown_url, **self.outbox.status()}
            out["lag"] = lag.to_json()
            out["last_error"] = out["shared"]["last_error"]
        else:
            out["lag"] = None
            out["last_error"] = self.heartbeat.status()["last_error"]
        return out


__all__ = ["Fleet", "NodeParts"]
