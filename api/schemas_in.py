"""What a client sends: the request bodies and the path and query parameters, as pydantic models.

They produce the OpenAPI document (api/openapi_gen.py) and check a body that the service's own
validators accepted (api/contract.py), so the document cannot promise less than the service
checks. The service's validators (service/batches/validation.py, service/scans/spec.py,
service/schedules/rules.py) come first: they check against the configuration in force (devices,
cameras, the commands' limits) and word each problem for an operator; the limits and enums here are
theirs, imported, never typed again.

Request bodies are strict (``4500`` is a number, ``"4500"`` is not) and refuse unknown keys, as the
validators do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic.json_schema import SkipJsonSchema

from service.batches.validation import MAX_COMMANDS
from service.events.trigger import MAX_LABEL_CHARS as EVENT_LABEL_CHARS
from service.presets.store import NAME_PATTERN
from service.scans.spec import MAX_LABEL_CHARS, MAX_POSES, MAX_RETRIES, GridOrder, OnPoseFailure
from service.schedules.rules import MAX_EVERY_S, MAX_LABEL, MAX_SCHEDULE_BYTES, MAX_SCHEDULES, MIN_EVERY_S

# A field that may be left out but is not null: ``x: T | Omitted = None`` (the schema shows only T).
Omitted = SkipJsonSchema[None]
# A number: in a strict model a float field takes 4500 as well as 4500.5, never true or "4500".
Number = float
HISTORY_PAGE = 100  # entries GET /history answers without ?limit
HISTORY_MAX_PAGE = 1000  # the most it answers at once (?offset pages further back)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- POST /process-request ------------------------------------------------------------------------
class Command(_Body):
    target_id: str = Field(min_length=1, examples=["entity"])
    device_id: str = Field(min_length=1, examples=["acikgoz_pantilt"])
    command_id: str = Field(min_length=1, examples=["set_pan_position_degree"])
    args: dict[str, Any] = Field(default_factory=dict, examples=[{"pan_position_deg_x100": 4500}])


class Batch(_Body):
    requests: list[Command] = Field(min_length=1, max_length=MAX_COMMANDS)


# -- POST /scans ----------------------------------------------------------------------------------
class PosePoint(_Body):
    """A pose by its values, each within its positioning command's limits."""

    pan_deg_x100: Number
    tilt_deg_x100: Number
    zoom: dict[str, Number] = Field(default_factory=dict, description="camera id (with a zoom) → zoom")


class PresetPose(_Body):
    """A pose by the name of a preset (GET /presets)."""

    preset: str


class AxisRange(_Body):
    """Whole hundredths of a degree; from first, to only if a step lands on it."""

    start: StrictInt = Field(alias="from")
    to: StrictInt
    step: StrictInt = Field(gt=0)


class GridSpec(_Body):
    pan_deg_x100: AxisRange
    tilt_deg_x100: AxisRange
    order: GridOrder


class ScanRequest(_Body):
    """Give poses or grid (not both); checked whole before anything moves."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["poses"]}, {"required": ["grid"]}]})

    cameras: list[str] = Field(min_length=1, description="configured camera ids")
    duration_second: Number = Field(gt=0, description="recorded at each pose")
    poses: Annotated[list[PosePoint | PresetPose], Field(min_length=1, max_length=MAX_POSES)] | Omitted = None
    grid: GridSpec | Omitted = Field(None, description=f"at most {MAX_POSES} poses")
    on_pose_failure: OnPoseFailure = "abort"
    retries: StrictInt = Field(0, ge=0, le=MAX_RETRIES)
    label: Annotated[str, Field(max_length=MAX_LABEL_CHARS)] | None = None


# -- POST /schedules ------------------------------------------------------------------------------
class ScheduleRequest(_Body):
    """Exactly one of scan and batch, exactly one of every_s and cron (not null); checked whole."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["scan"]}, {"required": ["batch"]}],
            "description": "Exactly one of scan and batch, exactly one of every_s and cron (not null); "
            f"checked whole. At most {MAX_SCHEDULE_BYTES} bytes as JSON; at most {MAX_SCHEDULES} schedules "
            "are kept.",
        }
    )

    scan: ScanRequest | Omitted = None
    batch: Batch | Omitted = Field(None, description="a POST /process-request body")
    every_s: Annotated[Number, Field(ge=MIN_EVERY_S, le=MAX_EVERY_S)] | None = Field(
        None, description="seconds between runs"
    )
    cron: str | None = Field(None, description="five fields, in the service machine's local time")
    label: Annotated[str, Field(max_length=MAX_LABEL)] | None = None


# -- POST /events ---------------------------------------------------------------------------------
class EventRequest(_Body):
    """Every key may be left out (service/events/trigger.py checks them against events and the ring)."""

    pre_s: Annotated[Number, Field(ge=0)] | Omitted = Field(
        None, description="seconds before the trigger, at most events.pre_max_s (default: all of it)"
    )
    post_s: Annotated[Number, Field(ge=0)] | Omitted = Field(
        None, description="seconds after the trigger (default events.post_default_s)"
    )
    cameras: Annotated[list[str], Field(min_length=1)] | Omitted = Field(
        None, description="cameras the ring keeps (default: all of them)"
    )
    label: Annotated[str, Field(max_length=EVENT_LABEL_CHARS)] | None = None
    at: Number | Omitted = Field(None, description="the trigger's time, epoch seconds, within the ring")


# -- parameters -----------------------------------------------------------------------------------
# ?wait= is read as a word, not checked: any other value means the default (api/routes.py, api/scans.py).
class ProcessQuery(BaseModel):
    wait: str = Field(
        "true", examples=["false"], description="false (or 0, no): answer 202 at once and follow status_url"
    )


class ScanQuery(BaseModel):
    wait: str = Field(
        "false", examples=["true"], description="true (or 1, yes): answer 200 with the scan once it finished"
    )


class HistoryQuery(BaseModel):
    limit: int = Field(
        HISTORY_PAGE,
        description=f"entries in the page, at most {HISTORY_MAX_PAGE} (more gives {HISTORY_MAX_PAGE}; "
        f"0 or none gives {HISTORY_PAGE})",
    )
    offset: int = Field(0, description="newest entries to skip: the newer page's next_offset (negative is 0)")


class JobPath(BaseModel):
    job_id: str


class ScanPath(BaseModel):
    scan_id: str


class SchedulePath(BaseModel):
    schedule_id: str


class EventPath(BaseModel):
    event_id: str


class EventQuery(BaseModel):
    wait: str = Field(
        "false", examples=["true"], description="true (or 1, yes): answer 200 with the event once saved"
    )


class PresetPath(BaseModel):
    name: str = Field(
        pattern=f"^{NAME_PATTERN.pattern}$",
        examples=["gate"],
        description="1 to 64 characters of A-Z, a-z, 0-9, _ . -",
    )


class FromCurrentQuery(BaseModel):
    from_: Literal["current"] = Field(alias="from")
