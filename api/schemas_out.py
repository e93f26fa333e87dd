"""What the service answers, as pydantic models: only for the OpenAPI document (api/openapi_gen.py).

The views themselves are built by the service (job views, scan and session manifests, schedules);
where the service has a model of its own (sessions.manifest.SessionSummary, the scan manifest, the
schedule, the preset, the frame sets, rigcore.config.Config) the answer's model is that one, so its
enums and fields are the code's. Answers may carry more keys than listed (no
``additionalProperties: false``), as clients must expect from a service that grows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas_in import Omitted
from rigcore.checks import MAX_DETAILS
from service.events.event import EventView
from service.presets import store
from service.schedules import rules
from service.status import CommandStatus, JobPhase, JobStatus
from sessions.catalog import CatalogState
from sessions.catalog_backend import OFFLINE_AFTER_BEATS
from sessions.manifest import SessionSummary
from sessions.scan_manifest import ScanManifest


class ErrorDetail(BaseModel):
    """One problem of a refused request: where it is (``index``, ``field``) and what is wrong."""

    index: int | None = Field(description="item of requests")
    field: str
    message: str


class Error(BaseModel):
    """Every error answer: ``{"error": ..., "details": [...]}`` (api/errors.py)."""

    error: str = Field(description="what is wrong, in words")
    details: list[ErrorDetail]
    details_omitted: Annotated[int, Field(ge=1)] | Omitted = Field(
        None, description=f"problems found beyond those listed (details holds at most {MAX_DETAILS})"
    )
    history_id: str | Omitted = None
    type: str | Omitted = None
    host: str | Omitted = Field(None, description="421: the Host name that was refused")


# -- jobs -----------------------------------------------------------------------------------------
class Result(BaseModel):
    """One command of a job: what was sent, its status and the rig's answer."""

    request: Any
    status: CommandStatus
    status_code: int | Omitted | None = None
    response: Any = None
    error: str | Omitted | None = None
    transport: str | Omitted = None
    sent_at: float | Omitted = None
    session_id: str | Omitted = None


class Session(SessionSummary):
    """A session of a job (sessions.manifest.SessionSummary)."""


class JobScanPose(BaseModel):
    index: int = Field(description="from 0, as in the scan's poses")
    pan_deg_x100: int
    tilt_deg_x100: int
    preset: str | None = None
    status: str
    session_id: str | None = None


class JobScan(BaseModel):
    """A scan job's scan (service.jobs.job ``scan_summary``): each pose with its session."""

    scan_id: str
    label: str | None = None
    status: str
    progress: dict[str, int] = Field(description="done and total poses")
    poses: list[JobScanPose]


class Job(BaseModel):
    job_id: str
    kind: Literal["batch", "scan"] | Omitted = None
    status: JobStatus
    phase: JobPhase
    created_at: float | Omitted = None
    started_at: float | Omitted | None = None
    finished_at: float | Omitted | None = None
    results: list[Result] | Omitted = None
    session: Session | Omitted | None = None
    sessions: list[Session] | Omitted = None
    progress: dict[str, Any] | Omitted = None
    error: dict[str, Any] | Omitted | None = None
    final_pose: dict[str, Any] | Omitted | None = None
    warnings: list[str] | Omitted = None
    scan: JobScan | Omitted | None = Field(None, description="a scan job's poses and their sessions")


class JobDone(Job):
    """The job, finished (its status says how)."""

    message: str


class Accepted(BaseModel):
    """A batch taken (202): its job, and where to follow it."""

    job_id: str
    status: str
    status_url: str
    message: str | Omitted = None


class JobList(BaseModel):
    """The jobs the service holds."""

    jobs: list[Job]


class HistoryPage(BaseModel):
    """A page of the request history (history.json)."""

    requests: list[dict[str, Any]]
    total: int = Field(description="entries in the whole history")
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the older page; null at the oldest")


class RigStatus(BaseModel):
    """What the service knows of the rig now: its broker, devices, streams and cameras."""

    broker: Any
    devices: Any
    streams: Any
    cameras: Any


class Health(BaseModel):
    """Whether the service reaches the broker and the camera streams."""

    status: Literal["ok", "degraded"]
    broker_connected: bool
    streams_connected: bool


class ConfigSaved(BaseModel):
    """PUT /config saved: the top-level keys that changed, and those that need a restart."""

    message: str
    changed: list[str]
    restart_required: list[str]


# -- presets --------------------------------------------------------------------------------------
class Preset(store.Preset):
    """A stored preset, with its name."""

    model_config = ConfigDict(extra="allow")

    name: str
    message: str | Omitted = None


class PresetList(BaseModel):
    """Every stored preset."""

    presets: list[Preset]
    warning: str | Omitted = None


class Deleted(BaseModel):
    """What was deleted."""

    message: str
    name: str


# -- scans ----------------------------------------------------------------------------------------
class ScanProgress(BaseModel):
    """Poses done, of the scan's total."""

    done: int
    total: int


class Scan(ScanManifest):
    """A scan: its manifest (sessions.scan_manifest) with its progress."""

    progress: ScanProgress
    message: str | Omitted = None


class ScanQueued(BaseModel):
    """A scan taken (202): its id, and where to follow it."""

    scan_id: str
    status_url: str
    message: str | Omitted = None


class ScanList(BaseModel):
    """The scans, with their progress."""

    scans: list[Scan]


# -- schedules ------------------------------------------------------------------------------------
class Schedule(rules.Schedule):
    """A stored schedule (service.schedules.rules.Schedule)."""

    model_config = ConfigDict(extra="allow")

    message: str | Omitted = None


class ScheduleCreated(BaseModel):
    """A schedule stored: its id and its next run (epoch s)."""

    schedule_id: str
    next_run_at: float


class ScheduleList(BaseModel):
    """Every stored schedule."""

    schedules: list[Schedule]
    warning: str | Omitted = None


# -- events ---------------------------------------------------------------------------------------
class Event(EventView):
    """An event (service.events.event.EventView): its window, triggers, progress and session."""

    model_config = ConfigDict(extra="allow")

    message: str | Omitted = None


class EventQueued(BaseModel):
    """A trigger taken: the event it started or extended, and where to follow it."""

    event_id: str
    status: str
    status_url: str
    extended: bool = Field(description="the trigger extended an event still recording its after part")


class EventList(BaseModel):
    """The events, whether the ring keeps frames, and how far back it reaches."""

    events: list[Event] = Field(description="since the service started, newest first")
    armed: bool = Field(description="the ring keeps frames now")
    error: str | None = Field(description="why events are off although enabled (the memory cap)")
    ring: dict[str, Any] = Field(description="per camera the seconds an event can reach back, frames, bytes")


# -- the dashboard's files ------------------------------------------------------------------------
class CameraList(BaseModel):
    """What a client needs to build a batch."""

    cameras: list[dict[str, Any]]
    pantilt: Any
    recording: Any


class SessionPage(BaseModel):
    """A page of sessions (the catalog), with how many match the filters."""

    sessions: list[dict[str, Any]]
    total: int = Field(description="sessions matching")
    offset: Any
    limit: Any
    catalog: CatalogState | Omitted = None
    partial: bool | Omitted = Field(None, description="true while the catalog is first built")
    node: str | Omitted = Field(None, description="?node= as asked: a node's id, or all (the fleet's)")
    shared: bool | Omitted = Field(None, description="true: listed from the fleet's shared catalog")


# -- the fleet (api/fleet.py, service.fleet) --------------------------------------------------------
class NodeJob(BaseModel):
    """The job a node runs, as its heartbeat told it."""

    job_id: str | None = None
    kind: str | Omitted = None
    status: JobStatus | None = None
    phase: JobPhase | Omitted | None = None
    progress: dict[str, Any] | Omitted | None = None


class FleetNode(BaseModel):
    """One node as its last heartbeat left it (sessions.catalog_backend.NodeSeen)."""

    node_id: str
    online: bool = Field(description=f"a heartbeat within {OFFLINE_AFTER_BEATS} of its intervals")
    last_seen: float = Field(description="its last heartbeat (epoch s, the catalog's clock)")
    age_s: float = Field(description="seconds since its last heartbeat")
    url: str | None = Field(description="how to reach its API (config node.url)")
    version: str
    heartbeat_s: float
    started_at: float | None
    broker: dict[str, Any] | Omitted = None
    streams: dict[str, Any] | Omitted = None
    job: NodeJob | Omitted | None = Field(None, description="the job it runs (or the next queued)")
    jobs_waiting: int | Omitted = None
    catalog: dict[str, Any] | Omitted = Field(None, description="its catalog backend and outbox lag")


class FleetPage(BaseModel):
    """Every node of the fleet as the catalog knows it."""

    node_id: str = Field(description="the node answering")
    shared: bool = Field(description="false: no shared catalog (catalog.url), this node alone")
    heartbeat_s: float
    nodes: list[FleetNode]
