"""The heartbeat: every ``catalog.heartbeat_s`` this node writes who it is and what it does into the
catalog the fleet reads (the shared one, or the node's own without it), on a thread of its own.

A beat is small (one upsert) and never waits on the event loop: it reads the broker and stream state
and the jobs' published views, which any thread may read. The thread runs at normal priority on
purpose: a node busy recording must still beat, or the fleet would take it for dead. A beat that fails
(the shared catalog unreachable) is logged once per outage and tried again at the next interval;
another node sees this one go offline after three intervals without a beat
(sessions.catalog_backend.OFFLINE_AFTER_BEATS).
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from sessions.catalog_backend import NodeBeat
from sessions.catalog_db import CatalogUnavailable

log = logging.getLogger(__name__)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class BeatStore(Protocol):
    def beat(self, beat: NodeBeat) -> None: ...


@cache
def service_version() -> str:
    """rigcapture's version: the installed package's, else pyproject.toml's (run from the checkout)."""
    try:
        return metadata.version("rigcapture")
    except metadata.PackageNotFoundError:
        pass
    try:
        return str(tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


class Heartbeat:
    """Writes ``make_beat()`` to ``store`` every ``interval_s`` until stopped."""

    def __init__(self, store: BeatStore, make_beat: Callable[[], NodeBeat], interval_s: float) -> None:
        self.interval_s = interval_s
        self._store = store
        self._make_beat = make_beat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_beat_at: float | None = None
        self.last_error: dict[str, Any] | None = None
        self.last_cost_s: float | None = None

    def start(self, beat_now: bool = False) -> None:
        """Beat every interval on a thread of its own; ``beat_now``: the first beat here, before
        returning (for a local store only: a remote one must never hold up the start)."""
        if self._thread is None:
            first_due = time.monotonic()
            if beat_now:
                self.beat_once()
                first_due += self.interval_s
            self._thread = threading.Thread(
                target=self._run, args=(first_due,), name="heartbeat", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, first_due: float) -> None:
        due = first_due
        self._stop.wait(max(0.0, due - time.monotonic()))
        while not self._stop.is_set():
            self.beat_once()
            due += self.interval_s
            now = time.monotonic()
            if due < now:  # a beat slower than the interval: the next at once, not a burst to catch up
                due = now
            self._stop.wait(due - now)

    def beat_once(self) -> bool:
        """Write one beat now; False when the store failed (the error is kept for /status)."""
        started = time.perf_counter()
        try:
            self._store.beat(self._make_beat())
        except CatalogUnavailable as exc:
            with self._lock:
                first = self.last_error is None
                self.last_error = {"message": str(exc), "at": time.time()}
            if first:
                log.warning("heartbeat not written (tried again every %.1f s): %s", self.interval_s, exc)
            return False
        except Exception:  # a bug must not stop the beats
            log.exception("heartbeat failed")
            return False
        with self._lock:
            if self.last_error is not None:
                log.info("heartbeat written again")
            self.last_error = None
            self.last_beat_at = time.time()
            self.last_cost_s = time.perf_counter() - started
        return True

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "interval_s": self.interval_s,
                "last_beat_at": self.last_beat_at,
                "last_error": self.last_error,
            }


__all__ = ["BeatStore", "Heartbeat", "service_version"]
