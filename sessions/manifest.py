"""The one owner of the session format: ``session.json``, the recording marker, ``images_data/<id>.json``.

Every reader and writer of these files goes through the models here (the writer, crash recovery, the
dashboard's session list and the CLI), so the keys of a session exist in one place only. The format is
versioned: ``format_version`` 3 is written now (3 added capture times, the pose method, the capture
window and the state log; 2 files read with those left unset); a file without the key is version 1
(written before this module existed) and still reads, with the fields it lacks left at their
defaults. ``kind`` (a recording or an event, with an event's keys) was added within version 3: a file
without it is a recording. Unknown keys are kept (``extra="allow"``) so a reader never drops what a
newer writer added. See ``docs/protocol.md`` §6 for the layout of a session folder.

The models::

    SessionManifest      session.json: what was recorded, how, and what went wrong
    ├── CameraRecord     one camera: counts and its frames in arrival order
    │   └── FrameRecord  one frame file with its capture time (and how it was known), arrival time,
    │                    camera stamp, index and the pose at capture
    ├── CaptureInfo      how the window was closed in capture time: the wait for late frames
    ├── EventTrigger     an event's trigger (kind "event": every trigger of an extended event)
    ├── StateLogInfo     where the state samples kept with the session are (sessions.state_log)
    └── Problem          one thing that went wrong (names the camera where one is concerned)
    RecordingMarker      .recording.json: present while a session is recorded or saved
    ImagesDataRecord     images_data/<session_id>.json: the request and the session's summary
    SessionSummary       the short form of a session, as jobs, history, the dashboard and the CLI show it
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rigcore.atomic import write_json_atomic
from sessions.state_log import StateLogInfo

FORMAT_VERSION = 3
MANIFEST_NAME = "session.json"
# Present in a session folder while it is being recorded or saved; a folder that still has it at the
# next start was cut off (kill -9, power loss) and is recovered as "incomplete" (sessions.recovery).
MARKER_NAME = ".recording.json"
# Keys only an event's session.json has (SessionManifest: kind "event").
EVENT_KEYS = ("event_id", "trigger_at", "triggers", "source")


class ManifestError(Exception):
    """A session file that is missing, not JSON, or not in the session format; names the file."""


class SessionStatus(StrEnum):
    COMPLETE = "complete"  # every requested camera recorded the whole window, nothing failed
    PARTIAL = "partial"  # saved, but a camera sent nothing, a stream dropped or frames are missing
    FAILED = "failed"  # something failed (a command, a write); every frame on disk is still listed
    CANCELLED = "cancelled"  # the operator cancelled; the frames up to then are listed
    INCOMPLETE = "incomplete"  # cut off by a crash; recovered at the next start from the files on disk


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# How a frame's capture time was known (camera.capture_clock.TimeSource, docs/protocol.md §5):
# "stamp" its timestamp_ns, on a camera clock judged plausible; "arrival" the camera sends no stamps,
# so arrival time less the camera's latency_s; "fallback" its stamps were judged implausible, so the same.
TimeSource = Literal["stamp", "arrival", "fallback"]


class PoseMethod(StrEnum):
    """How a frame's pose was found at its capture time from the state samples."""

    INTERPOLATED = "interpolated"  # pan/tilt between the samples around the capture time
    HELD = "held"  # the last sample before the capture time (no later one)
    EARLIEST = "earliest"  # no sample before the capture time: the first one after it


class FrameRecord(_Doc):
    file: str  # relative to the session folder
    received_at: float | None
    timestamp_ns: int | None
    frame_index: int | None
    pose: dict[str, Any] | None
    # Capture time on the service's clock (epoch seconds); None in sessions saved before it existed.
    captured_at: float | None = None
    time_source: TimeSource | None = None
    pose_method: PoseMethod | None = None
    # "preview" (the 8-bit display copy's file) appears only when one was written: an extra key.


class CameraRecord(_Doc):
    frame_count: int
    rejected_frames: int = 0
    rejection_reasons: list[str] = Field(default_factory=list)
    frames: list[FrameRecord] = Field(default_factory=list)
    # Frames saved per TimeSource, and the camera clock's verdicts seen during the recording
    # (camera.capture_clock): {"status": "ok" | "failed" | "no_stamps", "reasons": [...]}.
    time_sources: dict[str, int] = Field(default_factory=dict)
    clock: dict[str, Any] | None = None
    # Raw frames saved per setting they were written at (sessions.encode_ladder: "zstd1+pred",
    # "zstd1+pred/2", "zstd1+pred/4", "none"; a format that does not adapt counts under its own name);
    # empty in sessions saved before it existed and for cameras that send JPEG/PNG.
    encodings: dict[str, int] = Field(default_factory=dict)


class CaptureInfo(_Doc):
    """How the recording's window was held in capture time (docs/protocol.md §5)."""

    # Frames of the recorded cameras captured before the window (the rig's backlog, frames taken
    # while moving) and after it: dropped, never decoded or written.
    dropped_before: int = 0
    dropped_after: int = 0
    # After the window's end the recording waited until every camera delivered a frame captured
    # after it, at most late_wait_s; cameras that had not by then (frames of theirs may be missing).
    late_wait_s: float | None = None
    waited_s: float | None = None
    unconfirmed: list[str] = Field(default_factory=list)


class SessionKind(StrEnum):
    """What made a session."""

    RECORDING = "recording"  # a recording step of a job (a batch, a scan's pose)
    EVENT = "event"  # the frames around a trigger (service.events, docs/operations/events.md)


# Where an event's trigger came from: POST /events, or a message on events.mqtt_topic.
TriggerSource = Literal["http", "mqtt"]


class EventTrigger(_Doc):
    """One trigger of an event: the first, and each that extended it while it recorded its after part."""

    at: float  # epoch s, capture time: the trigger's ``at``, else when the service received it
    source: TriggerSource
    received_at: float  # epoch s
    pre_s: float
    post_s: float
    label: str | None = None


class Problem(_Doc):
    """One problem found in a session: its type, what it means in words, and the camera it concerns."""

    type: str
    message: str
    camera_id: str | None = Field(None, description="the camera it concerns; none: the whole session")


class SessionManifest(_Doc):
    """``session.json``: what was recorded, when and where the rig pointed, how the window was judged
    (``status``, ``problems``), and each camera's frames. This model is the format's one owner."""

    format_version: int = FORMAT_VERSION
    session_id: str
    job_id: str | None = None
    status: SessionStatus
    request: Any = None
    command: dict[str, Any] | None = None
    # The settle point (when the rig was proven still) and the recording's start are two facts: the
    # start is never before the settle point but may be later (docs/architecture.md, "Recording").
    settled_at: float | None = None
    # The settle proof: per device the time from "state counts" to settled, the residual error to
    # each target, the steady run that decided; the range finder over that run (service.jobs.batch_runner).
    settle: dict[str, Any] | None = None
    record_started_at: float | None = None
    record_ended_at: float | None = None
    duration_second: float | None = None
    pose_at_start: dict[str, Any] | None = None
    settle_to_first_frame_s: float | None = None
    problems: list[Problem] = Field(default_factory=list)
    gaps: list[dict[str, Any]] = Field(default_factory=list)
    stream_outages: list[dict[str, Any]] = Field(default_factory=list)
    unreadable_messages: int = 0
    write_errors: list[dict[str, Any]] = Field(default_factory=list)
    write_error_count: int = 0
    cameras: dict[str, CameraRecord] = Field(default_factory=dict)
    # A session recorded by a scan (POST /scans): the scan and the pose (sessions/scan_manifest.py).
    scan_id: str | None = None
    pose_index: int | None = None
    capture: CaptureInfo | None = None
    state_log: StateLogInfo | None = None
    # The node that recorded it (config node.id, docs/operations/fleet.md); None in older sessions.
    node_id: str | None = None
    # What made it (a file without the key is a recording). An event's window is record_started_at
    # to record_ended_at in capture time; its first trigger's time, every trigger, where the first
    # came from; its label is the key "label", as a scan's pose sessions may carry one (the catalog
    # reads it there). A recording's file has none of the event's keys (see to_json).
    kind: SessionKind = SessionKind.RECORDING
    event_id: str | None = None
    trigger_at: float | None = None
    triggers: list[EventTrigger] | None = None
    source: TriggerSource | None = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.kind is SessionKind.RECORDING:
            for key in EVENT_KEYS:
                data.pop(key, None)
        return data

    @property
    def missing_frames(self) -> int:
        return sum(int(g.get("missing_frames", 0)) for g in self.gaps)

    def summary(self, path: Path | str) -> SessionSummary:
        return SessionSummary(
            session_id=self.session_id,
            path=str(path),
            status=self.status,
            settled_at=self.settled_at,
            record_started_at=self.record_started_at,
            record_ended_at=self.record_ended_at,
            missing_frames=self.missing_frames,
            stream_outages=len(self.stream_outages),
            problems=self.problems,
            cameras={
                cam: CameraCount(frame_count=info.frame_count, rejected_frames=info.rejected_frames)
                for cam, info in self.cameras.items()
            },
        )


class CameraCount(_Doc):
    frame_count: int
    rejected_frames: int = 0


class SessionSummary(_Doc):
    """A session in a job's result, in history.json and in images_data/<id>.json."""

    session_id: str
    path: str
    status: SessionStatus
    settled_at: float | None = None
    record_started_at: float | None = None
    record_ended_at: float | None = None
    missing_frames: int = 0
    stream_outages: int = 0
    problems: list[Problem] = Field(default_factory=list)
    cameras: dict[str, CameraCount] = Field(default_factory=dict)


class RecordingMarker(_Doc):
    format_version: int = FORMAT_VERSION
    session_id: str
    job_id: str | None = None
    request: Any = None
    command: dict[str, Any] | None = None
    settled_at: float | None = None
    record_started_at: float | None = None
    duration_second: float | None = None
    scan_id: str | None = None  # a scan's pose: kept in the recovered session.json after a crash
    pose_index: int | None = None
    node_id: str | None = None
    # An event's session: what it is, kept in the recovered session.json (older markers: a recording).
    kind: SessionKind = SessionKind.RECORDING
    event_id: str | None = None
    trigger_at: float | None = None


class ImagesDataRecord(_Doc):
    format_version: int = FORMAT_VERSION
    session_id: str
    job_id: str | None = None
    request: Any = None
    command: dict[str, Any] | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


# -- files ---------------------------------------------------------------------------------------


def write_manifest(folder: Path, manifest: SessionManifest) -> None:
    """Write ``session.json`` atomically (it is the last file of a session)."""
    write_json_atomic(folder / MANIFEST_NAME, manifest.to_json())


def read_manifest(folder: Path) -> SessionManifest:
    """Read a session folder's ``session.json``; ManifestError names the file if it cannot be read.

    A manifest reached through a symbolic link is refused: it could point out of the session.
    """
    path = folder / MANIFEST_NAME
    try:
        return SessionManifest.model_validate(_read(path))
    except ValidationError as exc:
        raise ManifestError(
            f"{path} is not a session manifest: {exc.error_count()} problem(s), first: "
            f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}"
        ) from exc


def write_marker(folder: Path, marker: RecordingMarker) -> None:
    write_json_atomic(folder / MARKER_NAME, marker.to_json())


def read_marker(folder: Path) -> RecordingMarker | None:
    """The marker's content, or None when it is damaged (recovery then works from the folder alone)."""
    try:
        return RecordingMarker.model_validate(_read(folder / MARKER_NAME))
    except (ManifestError, ValidationError):
        return None


def remove_marker(folder: Path) -> None:
    (folder / MARKER_NAME).unlink(missing_ok=True)


def has_marker(folder: Path) -> bool:
    return (folder / MARKER_NAME).exists()


def has_manifest(folder: Path) -> bool:
    path = folder / MANIFEST_NAME
    return path.is_file() and not path.is_symlink()


def write_images_data(images_data_dir: Path, record: ImagesDataRecord) -> Path:
    path = images_data_dir / f"{record.session_id}.json"
    write_json_atomic(path, record.to_json())
    return path


def _read(path: Path) -> dict[str, Any]:
    if path.is_symlink():
        raise ManifestError(f"{path.name} is a symbolic link; not followed out of the session")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path} is not a JSON object")
    data.setdefault("format_version", 1)
    return data


__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MARKER_NAME",
    "CameraCount",
    "CameraRecord",
    "CaptureInfo",
    "EventTrigger",
    "FrameRecord",
    "ImagesDataRecord",
    "ManifestError",
    "PoseMethod",
    "Problem",
    "RecordingMarker",
    "SessionKind",
    "SessionManifest",
    "SessionStatus",
    "SessionSummary",
    "has_manifest",
    "has_marker",
    "read_manifest",
    "read_marker",
    "remove_marker",
    "write_images_data",
    "write_manifest",
    "write_marker",
]
