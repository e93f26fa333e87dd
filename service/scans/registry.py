"""The scans: the live ones (their views, published from the loop) and those on disk (their manifests
in ``images_data/scans/``). A scan runs as one job (service.jobs.queue); this registry only shows it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from service.aftercare import Aftercare
from service.scans.run import ScanRun, interrupted, scan_view
from service.status import UNFINISHED
from sessions.manifest import SessionManifest
from sessions.scan_manifest import (
    ScanManifest,
    list_scan_manifests,
    read_scan_manifest,
    write_scan_manifest,
)

log = logging.getLogger(__name__)


class ScanRegistry:
    def __init__(self, images_data_dir: Path, save_dir: Path, aftercare: Aftercare) -> None:
        self._folder = images_data_dir
        self._save_dir = save_dir
        self._aftercare = aftercare
        self._views: dict[str, dict[str, Any]] = {}  # scans in memory, replaced whole (copy on write)

    def recover(self, recovered: list[SessionManifest]) -> None:
        """Scans a killed process left queued or running: marked ``interrupted`` in their manifest."""
        for manifest in list_scan_manifests(self._folder):
            if manifest.status in UNFINISHED:
                cut_off = {
                    s.pose_index: (s.session_id, str(self._save_dir / s.session_id))
                    for s in recovered
                    if s.scan_id == manifest.scan_id and s.pose_index is not None
                }
                try:
                    write_scan_manifest(self._folder, interrupted(manifest, time.time(), cut_off))
                except OSError:
                    log.exception("could not mark scan %s interrupted", manifest.scan_id)

    def write(self, manifest: ScanManifest) -> None:
        """Write a scan manifest (blocking: call it off the loop, with a manifest taken on the loop)
        and hand it to the aftercare hooks; a failure is logged, the scan goes on."""
        try:
            path = write_scan_manifest(self._folder, manifest)
        except OSError:
            log.exception("could not write the manifest of scan %s in %s", manifest.scan_id, self._folder)
            return
        self._aftercare.scan_written(manifest, path)

    def publish(self, scan: ScanRun, live: Iterable[str]) -> None:
        """(loop) The scan's new view; the views of scans no longer ``live`` in memory are dropped."""
        kept = set(live)
        views = {sid: v for sid, v in self._views.items() if sid in kept}
        views[scan.id] = scan.view()
        self._views = views

    def live_view(self, scan_id: str) -> dict[str, Any] | None:
        return self._views.get(scan_id)

    def view(self, scan_id: str) -> dict[str, Any] | None:
        """A scan (any thread): live from memory, else from its scan manifest, else None."""
        view = self._views.get(scan_id)
        if view is not None:
            return view
        manifest = read_scan_manifest(self._folder, scan_id)
        return None if manifest is None else scan_view(manifest)

    def manifest(self, scan_id: str) -> ScanManifest | None:
        """A scan's manifest as on disk (None: none, or not readable)."""
        return read_scan_manifest(self._folder, scan_id)

    def views(self) -> list[dict[str, Any]]:
        """Every scan, in memory or in a scan manifest, newest first (any thread)."""
        live = dict(self._views)
        found = {m.scan_id: scan_view(m) for m in list_scan_manifests(self._folder)}
        found.update(live)
        return sorted(found.values(), key=lambda v: (v.get("created_at") or 0, v["scan_id"]), reverse=True)

    def cancel(
        self, scan_id: str, cancel_job: Callable[[str], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Ask a scan to stop (its job's cancel); return its view (None: no such scan in memory)."""
        view = self._views.get(scan_id)
        if view is None or view.get("job_id") is None or cancel_job(view["job_id"]) is None:
            return None
        latest: dict[str, Any] = self._views.get(scan_id, view)
        return latest
