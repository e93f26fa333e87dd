"""Sends the node's outbox (sessions.outbox, in its own catalog.sqlite) to the shared catalog, on a
thread of its own at low priority: recording, saving and the local listing never wait for it.

Each round: make sure the rows go to the shared catalog they last went to (else queue them all again:
a new database, or another server), take the ``batch_rows`` longest-waiting sessions, read their rows
as they are now, and write them in one PostgreSQL transaction (rows upserted; sessions gone here
deleted there, unless they live on in the object store); then take out of the outbox what was sent
and not changed meanwhile. A PRUNE in the batch also drops there what this node no longer has.

A failure (server down, network, timeout) leaves the outbox as it was and waits, doubling from
``catalog.retry_min_s`` to ``catalog.retry_max_s``, each delay drawn between half and all of it
(jitter: nodes coming back together do not hit the server in step). The first batch after an outage
goes as soon as the wait is over; then the backlog drains at the rate of one batch per round trip.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from camera.pool import lower_thread_priority
from rigcore.config_fleet import CatalogConfig
from sessions.catalog_db import CatalogUnavailable
from sessions.catalog_rows import SessionRow
from sessions.outbox import PRUNE, LocalOutbox

log = logging.getLogger(__name__)

OUTBOX_NICE = 19
IDLE_POLL_S = 0.5  # how soon a new row is seen when nothing was waiting
RATE_WINDOW_S = 10.0


class SharedRows(Protocol):
    """What the worker needs of the shared catalog (sessions.catalog_pg.PgCatalog)."""

    shown_url: str

    def connect(self) -> str: ...

    def apply(
        self,
        rows: Sequence[SessionRow],
        stored: Sequence[SessionRow] = (),
        deleted: tuple[str, Sequence[str]] | None = None,
    ) -> None: ...

    def prune(self, node_id: str, keep: Collection[str]) -> int: ...


class _LocalNotReady(Exception):
    """The node's own catalog is not open yet (its first build): wait, this is no failure."""


class OutboxWorker:
    def __init__(self, outbox: LocalOutbox, shared: SharedRows, config: CatalogConfig) -> None:
        self._outbox = outbox
        self._shared = shared
        self._batch = config.batch_rows
        self._retry = (config.retry_min_s, config.retry_max_s)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self._recent: deque[tuple[float, int]] = deque()
        self.activity = "starting"  # starting | idle | sending | waiting (after a failure)
        self.last_error: dict[str, Any] | None = None
        self.last_sent_at: float | None = None
        self.sent_rows = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="catalog outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look at the outbox now (a row was queued)."""
        self._wake.set()

    def _run(self) -> None:
        lower_thread_priority(OUTBOX_NICE)
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.round()
            if wait <= 0:
                continue
            if self._failures:  # backing off: a new row does not cut the wait short
                self._stop.wait(wait)
            else:
                self._wake.wait(wait)

    def round(self) -> float:
        """One batch (or none); the seconds to wait before the next."""
        try:
            sent = self._send_batch()
        except _LocalNotReady:
            return IDLE_POLL_S
        except CatalogUnavailable as exc:
            return self._failed(str(exc))
        except Exception as exc:  # a bug must not end the outbox: it backs off like a failure
            log.exception("the catalog outbox failed")
            return self._failed(f"internal error: {type(exc).__name__}")
        with self._lock:
            if self._failures:
                log.info("shared catalog %s answers again; sending the outbox", self._shared.shown_url)
            self._failures = 0
            self.last_error = None
            self.activity = "sending" if sent else "idle"
        return 0.0 if sent else IDLE_POLL_S

    def _send_batch(self) -> int:
        target = f"{self._shared.shown_url} {self._shared.connect()}"
        try:
            if self._outbox.target() != target:
                queued = self._outbox.resync(target)
                log.info("catalog outbox: %d rows queued for %s", queued, self._shared.shown_url)
            items = self._outbox.batch(self._batch)
            ids = [sid for sid, _ in items if sid != PRUNE]
            rows, stored = self._outbox.rows(ids) if ids else ({}, {})
            keep = self._outbox.keep() if any(sid == PRUNE for sid, _ in items) else None
        except CatalogUnavailable as exc:
            raise _LocalNotReady from exc
        if not items:
            return 0
        deleted = [sid for sid in ids if sid not in rows and sid not in stored]
        node = self._outbox.node_id
        self._shared.apply(list(rows.values()), list(stored.values()), (node, deleted))
        if keep is not None:
            dropped = self._shared.prune(node, keep)
            log.info("shared catalog: %d rows of %s no longer here dropped", dropped, node)
        try:
            self._outbox.done(items)
        except CatalogUnavailable as exc:  # the file was made again meanwhile: it queues everything anew
            raise _LocalNotReady from exc
        now = time.time()
        with self._lock:
            self.last_sent_at = now
            self.sent_rows += len(items)
            self._recent.append((time.monotonic(), len(items)))
        return len(items)

    def _failed(self, message: str) -> float:
        with self._lock:
            self._failures += 1
            failures = self._failures
            self.last_error = {"message": message, "at": time.time()}
            self.activity = "waiting"
        low, high = self._retry
        delay = min(high, low * 2.0 ** min(failures - 1, 30)) * random.uniform(0.5, 1.0)
        if failures == 1:
            log.warning("catalog outbox: %s; kept, tried again with back-off (up to %.0f s)", message, high)
        return delay

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
                self._recent.popleft()
            rate = sum(n for _, n in self._recent) / RATE_WINDOW_S
            return {
                "activity": self.activity,
                "last_error": self.last_error,
                "last_sent_at": self.last_sent_at,
                "sent_rows": self.sent_rows,
                "rate_rows_s": round(rate, 1),
            }


__all__ = ["OutboxWorker", "SharedRows"]
