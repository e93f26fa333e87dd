"""Work on a saved session that must never slow a recording: derived files, the catalog, uploads.

A recording step hands each session it saved to :meth:`Aftercare.session_saved` (on the event loop,
cheap: it only queues). One background thread at the writer threads' low priority then runs every
registered hook on it, in the order they were registered, so that files derived from the session
(frame sets, the report) exist before a later hook (the catalog, the upload queue) sees the folder.
A hook that raises is logged and the others still run: the session itself is already safe on disk.

Scan manifests get the same treatment through :meth:`Aftercare.scan_written`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from camera.pool import lower_thread_priority
from sessions.manifest import SessionManifest
from sessions.scan_manifest import ScanManifest

log = logging.getLogger(__name__)

SessionHook = Callable[[SessionManifest, Path], None]
ScanHook = Callable[[ScanManifest, Path], None]

AFTERCARE_NICE = 19


@dataclass(frozen=True)
class _Hook:
    name: str
    session: SessionHook | None = None
    scan: ScanHook | None = None


class Aftercare:
    """Runs the registered hooks on each saved session or scan manifest, one at a time, in order."""

    def __init__(self) -> None:
        self._hooks: list[_Hook] = []
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="aftercare",
            initializer=lower_thread_priority,
            initargs=(AFTERCARE_NICE,),
        )

    def on_session(self, name: str, hook: SessionHook) -> None:
        """Call ``hook(manifest, folder)`` for every session saved from now on."""
        self._hooks.append(_Hook(name, session=hook))

    def on_scan(self, name: str, hook: ScanHook) -> None:
        """Call ``hook(manifest, path)`` each time a scan manifest is written from now on."""
        self._hooks.append(_Hook(name, scan=hook))

    def session_saved(self, manifest: SessionManifest, folder: Path) -> None:
        self._submit(lambda: self._run_session(manifest, folder))

    def scan_written(self, manifest: ScanManifest, path: Path) -> None:
        self._submit(lambda: self._run_scan(manifest, path))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued session and scan went through every hook; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def stop(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

    # -- inside ----------------------------------------------------------------------------------
    def _submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
        try:
            future: Future[None] = self._executor.submit(work)
        except RuntimeError:  # shut down: the service is stopping; recovery sees the folder later
            self._done()
            return
        future.add_done_callback(lambda _f: self._done())

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _run_session(self, manifest: SessionManifest, folder: Path) -> None:
        for hook in self._hooks:
            if hook.session is not None:
                call = functools.partial(hook.session, manifest, folder)
                self._guarded(hook.name, manifest.session_id, call)

    def _run_scan(self, manifest: ScanManifest, path: Path) -> None:
        for hook in self._hooks:
            if hook.scan is not None:
                self._guarded(hook.name, manifest.scan_id, functools.partial(hook.scan, manifest, path))

    @staticmethod
    def _guarded(name: str, subject: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            log.exception("aftercare %s failed for %s", name, subject)
