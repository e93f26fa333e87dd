"""What the blueprints reach in the service: each part through a narrow protocol, the way
service.schedules.scheduler's ``Launcher`` does. create_app puts the service (the composition root,
service.capture) in app.extensions; the accessors here hand out its parts, typed as what a view needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from flask import current_app

from camera.frames import Frame
from rigcore.config import Config, ResolvedPaths
from service.capture import CaptureService
from service.config_reloader import InForce
from service.history.store import Refusal
from service.jobs.work import Work
from service.presets.store import PresetStore
from service.schedules.rules import ScheduleStore
from sessions.catalog import Page, SessionQuery
from sessions.catalog_backend import NodeSeen
from sessions.manifest import TriggerSource
from sessions.scan_manifest import ScanManifest


def capture_service() -> CaptureService:
    """The whole service (the session files' blueprints read its paths and catalog through it)."""
    service: CaptureService = current_app.extensions["capture"]
    return service


class Settings(Protocol):
    """The configuration in force (service.capture.CaptureService)."""

    @property
    def config(self) -> Config: ...

    def in_force(self) -> InForce: ...


class Rig(Settings, Protocol):
    """The rig and the service now: status, pose, frames, connections (CaptureService)."""

    def status(self) -> dict[str, Any]: ...

    def pose(self) -> dict[str, Any]: ...

    def latest_frame(self, camera_id: str) -> Frame | None: ...

    def broker_connected(self) -> bool: ...

    def streams_connected(self) -> bool: ...


class Submitter(Settings, Protocol):
    """Queueing work, checked against the configuration in force (CaptureService)."""

    def submit(self, body: dict[str, Any], work: Work, client: dict[str, Any]) -> dict[str, Any]: ...

    def timeout(self, work: Work) -> float: ...


class Jobs(Protocol):
    """The jobs and the request history's refusals (service.jobs.queue.JobQueue)."""

    def job_view(self, job_id: str) -> dict[str, Any] | None: ...

    def job_views(self) -> list[dict[str, Any]]: ...

    def wait_job(self, job_id: str, timeout: float) -> bool: ...

    def cancel(self, job_id: str) -> dict[str, Any] | None: ...

    def record_rejected(self, refused: Refusal) -> str: ...


class History(Protocol):
    """The request history, a page at a time (service.history.HistoryStore)."""

    def page(self, limit: int, offset: int = 0) -> dict[str, Any]: ...


class Scans(Protocol):
    """The scans, live and on disk (service.scans.registry.ScanRegistry)."""

    def view(self, scan_id: str) -> dict[str, Any] | None: ...

    def views(self) -> list[dict[str, Any]]: ...

    def manifest(self, scan_id: str) -> ScanManifest | None: ...


class ConfigEditor(Protocol):
    """PUT /config (service.config_reloader.ConfigReloader, with the checks the service's parts added:
    the event ring that would not fit the memory cap at the rates measured now)."""

    @property
    def config_path(self) -> Path | None: ...

    def update(self, patch: Any) -> dict[str, list[str]]: ...


class ScheduleBook(Protocol):
    """The schedules and the thread that fires them (service.scheduler.Scheduler)."""

    @property
    def store(self) -> ScheduleStore: ...

    def poke(self) -> None: ...


class Uploads(Protocol):
    """The object-store queue (service.uploads.Uploader)."""

    def status(self) -> dict[str, Any]: ...

    def session_state(self, session_id: str) -> dict[str, Any] | None: ...


class EventDesk(Protocol):
    """Event capture: triggers in, events out (service.events.desk.EventDesk)."""

    def problems(self, body: Any) -> list[dict[str, Any]]: ...

    def trigger(self, body: Any, source: TriggerSource = "http") -> tuple[dict[str, Any], bool]: ...

    def wait(self, event_id: str, timeout: float) -> bool: ...

    def wait_timeout(self) -> float: ...

    def view(self, event_id: str) -> dict[str, Any] | None: ...

    def listing(self) -> dict[str, Any]: ...


class SessionCatalog(Protocol):
    """The session catalog (sessions.catalog.Catalog)."""

    @property
    def state(self) -> str: ...

    def query(self, filters: SessionQuery, limit: int, offset: int) -> Page: ...


class FleetView(Protocol):
    """This node among the fleet (service.fleet.fleet.Fleet): heartbeats and the fleet's sessions."""

    @property
    def node_id(self) -> str: ...

    def nodes(self) -> list[NodeSeen]: ...

    def lists_here(self, filters: SessionQuery) -> bool: ...

    def sessions(self, filters: SessionQuery, limit: int, offset: int) -> Page: ...

    def node_urls(self) -> dict[str, str | None]: ...


def settings() -> Settings:
    return capture_service()


def rig() -> Rig:
    return capture_service()


def submitter() -> Submitter:
    return capture_service()


def jobs() -> Jobs:
    return capture_service().jobs


def history() -> History:
    return capture_service().history


def scans() -> Scans:
    return capture_service().scans


def cancel_scan(scan_id: str) -> dict[str, Any] | None:
    """Ask a scan to stop (its job's cancel); its view, or None when no such scan is in memory."""
    service = capture_service()
    return service.scans.cancel(scan_id, service.jobs.cancel)


def config_editor() -> ConfigEditor:
    return capture_service().settings


def presets() -> PresetStore:
    return capture_service().presets


def schedule_book() -> ScheduleBook:
    return capture_service().scheduler


def uploads() -> Uploads:
    return capture_service().uploads


def event_desk() -> EventDesk:
    return capture_service().events


def session_catalog() -> SessionCatalog:
    return capture_service().catalog


def fleet() -> FleetView:
    return capture_service().fleet


def paths() -> ResolvedPaths:
    """Where the service writes (as in force since the start)."""
    return capture_service().paths
