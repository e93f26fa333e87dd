"""A scan: record the same cameras at a list of poses, one batch per pose (pure: no I/O, no broker).

The request (``POST /scans``; the shape is fixed so that scripts can rely on it)::

    {"cameras": [ids], "duration_second": n, "poses": [pose, ...] | "grid": {...},
     "on_pose_failure": "abort" | "skip", "retries": n, "label": "..."}

A pose is ``{"pan_deg_x100": p, "tilt_deg_x100": t, "zoom": {camera_id: value}}`` (zoom optional)
or ``{"preset": name}``. A grid is ``{"pan_deg_x100": range, "tilt_deg_x100": range, "order": ...}``
with each range ``{"from", "to", "step"}`` in whole hundredths of a degree:

* a range runs from ``from`` toward ``to`` (downward when ``from > to``) in steps of ``step`` (> 0);
  ``from`` is always its first value, and ``to`` is included only when a step lands on it exactly:
  otherwise the range stops at the last value not beyond ``to`` (0→10 step 4 is 0, 4, 8);
* the rows are the tilt values in order; ``rows`` runs each row's pan from ``from`` to ``to``,
  ``serpentine`` alternates: the first row from→to, the next to→from over the same values, ….

:func:`parse_scan` checks everything before anything moves and reports every problem at once, in
the shape of the batch validator (``{"index", "field", "message"}``; ``index`` is the pose's, or
None). :func:`scan_batch` gives one pose's batch — its positioning commands, then the recording —
which :func:`service.batches.plan.compile_plan` turns into send → settle → record steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, cast

from rigcore.checks import Detail, clip, detail, echo, fmt_bound, json_type, target_problem
from rigcore.config import Config
from rigcore.rig import RigLayout
from rigcore.state import is_number
from service.presets.store import CAMERA_TARGET, Preset, preset_commands

MAX_POSES = 500  # poses in one scan, listed or made by a grid
MAX_RETRIES = 5  # further attempts at a pose whose batch failed
MAX_LABEL_CHARS = 200
PANTILT_TARGET = "entity"  # the target_id of the scan's pan-tilt commands (forwarded, not interpreted)
SCAN_KEYS = frozenset({"cameras", "duration_second", "poses", "grid", "on_pose_failure", "retries", "label"})
POSE_KEYS = frozenset({"pan_deg_x100", "tilt_deg_x100", "zoom"})
AXES = ("pan_deg_x100", "tilt_deg_x100")
RANGE_KEYS = ("from", "to", "step")
ON_POSE_FAILURE = ("abort", "skip")
GRID_ORDERS = ("serpentine", "rows")

OnPoseFailure = Literal["abort", "skip"]
GridOrder = Literal["serpentine", "rows"]


@dataclass(frozen=True)
class ScanPose:
    """One pose of a scan; a preset's pose carries the preset's values as they were when parsed."""

    index: int
    pan: float
    tilt: float
    zoom: Mapping[str, float] = field(default_factory=dict)
    preset: str | None = None


@dataclass(frozen=True)
class ScanSpec:
    cameras: tuple[str, ...]
    duration_s: float
    poses: tuple[ScanPose, ...]
    on_pose_failure: OnPoseFailure = "abort"
    retries: int = 0
    label: str | None = None


@dataclass(frozen=True)
class AxisRange:
    """An inclusive range of whole hundredths of a degree; ``step`` > 0 whichever way it runs."""

    start: int
    stop: int
    step: int

    def count(self) -> int:
        """How many values (any size: a range over unlimited axes may hold more than ``len`` takes)."""
        return abs(self.stop - self.start) // self.step + 1

    def values(self) -> list[int]:
        sign = 1 if self.stop >= self.start else -1
        return [self.start + sign * k * self.step for k in range(self.count())]


@dataclass(frozen=True)
class Grid:
    pan: AxisRange
    tilt: AxisRange
    order: GridOrder


def grid_poses(grid: Grid) -> list[tuple[int, int]]:
    """The grid's ``(pan, tilt)`` poses in the order they are visited (module docstring)."""
    pans = grid.pan.values()
    out: list[tuple[int, int]] = []
    for row, tilt in enumerate(grid.tilt.values()):
        backwards = grid.order == "serpentine" and row % 2 == 1
        out.extend((pan, tilt) for pan in (reversed(pans) if backwards else pans))
    return out


def scan_batch(
    spec: ScanSpec, pose: ScanPose, layout: RigLayout, recording_command_id: str
) -> list[dict[str, Any]]:
    """The batch of one pose: pan, tilt, each zoom of the pose, then the recording of the scan's
    cameras. Command ids and argument names come from the configuration (through ``layout``)."""
    values = Preset(pan_deg_x100=pose.pan, tilt_deg_x100=pose.tilt, zoom=dict(pose.zoom))
    record = {
        "target_id": CAMERA_TARGET,
        "device_id": spec.cameras[0],
        "command_id": recording_command_id,
        "args": {"duration_second": spec.duration_s, "camera_ids": list(spec.cameras)},
    }
    return [*preset_commands(values, layout, PANTILT_TARGET), record]


def parse_scan(
    body: Any, config: Config, presets: Mapping[str, Preset]
) -> tuple[ScanSpec | None, list[Detail]]:
    """``(spec, [])`` for a scan that may run, else ``(None, problems)`` naming every problem."""
    if not isinstance(body, dict):
        return None, [detail(None, "(body)", 'must be a JSON object like {"cameras": [...], ...}')]
    problems = [detail(None, clip(k, 40), "unknown key") for k in sorted(set(body) - SCAN_KEYS)]
    cameras, found = _parse_cameras(body, config)
    problems += found + _duration_problems(body, config) + _option_problems(body)
    poses, found = _parse_poses_or_grid(body, RigLayout.from_config(config), presets)
    problems += found
    if problems:
        return None, problems
    spec = ScanSpec(
        cameras=cameras,
        duration_s=body["duration_second"],
        poses=poses,
        on_pose_failure=body.get("on_pose_failure", "abort"),
        retries=body.get("retries", 0),
        label=body.get("label"),
    )
    return spec, []


# -- the top-level fields -------------------------------------------------------------------------
def _parse_cameras(body: dict[str, Any], config: Config) -> tuple[tuple[str, ...], list[Detail]]:
    cams = body.get("cameras")
    if "cameras" not in body:
        return (), [detail(None, "cameras", "missing: the ids of the cameras to record")]
    if not isinstance(cams, list):
        return (), [detail(None, "cameras", f"must be a list of camera ids, got {json_type(cams)}")]
    configured = ", ".join(sorted(config.cameras))
    if not cams:
        return (), [detail(None, "cameras", "must not be empty")]
    if len(cams) > len(config.cameras):
        message = f"lists {len(cams)} cameras; at most {len(config.cameras)}, those configured: {configured}"
        return (), [detail(None, "cameras", message)]
    out: list[Detail] = []
    for j, cam in enumerate(cams):
        where = f"cameras[{j}]"
        if not isinstance(cam, str):
            out.append(detail(None, where, f"must be a string, got {json_type(cam)}"))
        elif cam in cams[:j]:
            out.append(detail(None, where, f"{echo(cam)} is listed twice"))
        elif cam not in config.cameras:
            out.append(detail(None, where, f"unknown camera {echo(cam)}; configured: {configured}"))
    return tuple(cams), out


def _duration_problems(body: dict[str, Any], config: Config) -> list[Detail]:
    where, duration, max_s = "duration_second", body.get("duration_second"), config.recording.max_duration_s
    if where not in body:
        return [detail(None, where, "missing: seconds to record at each pose")]
    if not is_number(duration):
        return [detail(None, where, f"must be a number, got {json_type(duration)}")]
    if duration <= 0:
        return [detail(None, where, f"must be greater than 0, got {echo(duration)}")]
    if duration > max_s:
        return [detail(None, where, f"{echo(duration)} is above the maximum of {fmt_bound(max_s)} s")]
    return []


def _option_problems(body: dict[str, Any]) -> list[Detail]:
    out = []
    failure = body.get("on_pose_failure", "abort")
    if failure not in ON_POSE_FAILURE:
        out.append(detail(None, "on_pose_failure", f"must be 'abort' or 'skip', got {echo(failure)}"))
    retries = body.get("retries", 0)
    if not _is_int(retries) or not 0 <= retries <= MAX_RETRIES:
        message = f"must be a whole number from 0 to {MAX_RETRIES}, got {echo(retries)}"
        out.append(detail(None, "retries", message))
    label = body.get("label")
    if label is not None and not isinstance(label, str):
        out.append(detail(None, "label", f"must be a string, got {json_type(label)}"))
    elif label is not None and len(label) > MAX_LABEL_CHARS:
        out.append(detail(None, "label", f"{len(label)} characters; at most {MAX_LABEL_CHARS}"))
    return out


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# -- poses ----------------------------------------------------------------------------------------
def _parse_poses_or_grid(
    body: dict[str, Any], layout: RigLayout, presets: Mapping[str, Preset]
) -> tuple[tuple[ScanPose, ...], list[Detail]]:
    if "poses" in body and "grid" in body:
        return (), [detail(None, "grid", 'give either "poses" or "grid", not both')]
    if "grid" in body:
        grid, problems = parse_grid(body["grid"], layout)
        if grid is None:
            return (), problems
        return tuple(ScanPose(i, pan, tilt) for i, (pan, tilt) in enumerate(grid_poses(grid))), []
    if "poses" not in body:
        return (), [detail(None, "poses", 'missing: give "poses" (a list of poses) or "grid"')]
    return _parse_poses(body["poses"], layout, presets)


def _parse_poses(
    poses: Any, layout: RigLayout, presets: Mapping[str, Preset]
) -> tuple[tuple[ScanPose, ...], list[Detail]]:
    if not isinstance(poses, list):
        return (), [detail(None, "poses", f"must be a list of poses, got {json_type(poses)}")]
    if not poses:
        return (), [detail(None, "poses", "must not be empty")]
    if len(poses) > MAX_POSES:
        return (), [detail(None, "poses", f"{len(poses)} poses; at most {MAX_POSES} in one scan")]
    out, problems = [], []
    for i, item in enumerate(poses):
        pose, found = _parse_pose(i, item, layout, presets)
        problems += found
        if pose is not None:
            out.append(pose)
    return tuple(out), problems


def _parse_pose(
    i: int, item: Any, layout: RigLayout, presets: Mapping[str, Preset]
) -> tuple[ScanPose | None, list[Detail]]:
    where = f"poses[{i}]"
    if not isinstance(item, dict):
        message = f'must be an object like {{"pan_deg_x100": 0, "tilt_deg_x100": 0}}, got {json_type(item)}'
        return None, [detail(i, where, message)]
    if "preset" in item:
        return _parse_preset_pose(i, item, layout, presets)
    allowed = ", ".join(sorted(POSE_KEYS))
    out = [
        detail(i, f"{where}.{clip(k, 40)}", f"unknown key; allowed: {allowed}, or preset alone")
        for k in sorted(set(item) - POSE_KEYS)
    ]
    out += [detail(i, f"{where}.{k}", "missing") for k in AXES if k not in item]
    out += [detail(i, f"{where}.{k}", m) for k, m in pose_value_problems(item, layout)]
    if out:
        return None, out
    return ScanPose(i, item["pan_deg_x100"], item["tilt_deg_x100"], dict(item.get("zoom", {}))), []


def _parse_preset_pose(
    i: int, item: dict[str, Any], layout: RigLayout, presets: Mapping[str, Preset]
) -> tuple[ScanPose | None, list[Detail]]:
    where, name = f"poses[{i}].preset", item["preset"]
    out = [
        detail(i, f"poses[{i}].{clip(k, 40)}", "a preset pose has no other key than preset")
        for k in sorted(set(item) - {"preset"})
    ]
    if not isinstance(name, str):
        return None, [*out, detail(i, where, f"must be a string, got {json_type(name)}")]
    preset = presets.get(name)
    if preset is None:
        return None, [*out, detail(i, where, f"unknown preset {echo(name)}; GET /presets lists them")]
    values = preset.model_dump(exclude={"saved_at"})
    out += [
        detail(i, where, f"preset {echo(name)} does not fit the configuration: {k}: {m}")
        for k, m in pose_value_problems(values, layout)
    ]
    if out:
        return None, out
    return ScanPose(i, preset.pan_deg_x100, preset.tilt_deg_x100, dict(preset.zoom), preset=name), []


def pose_value_problems(pose: Mapping[str, Any], layout: RigLayout) -> list[tuple[str, str]]:
    """``(key, message)`` for each value of ``pose`` (pan, tilt, zoom) that its positioning command
    would refuse; a missing pan or tilt is not checked here."""
    out = [
        (key, message)
        for key, fld in zip(AXES, (layout.pan_field, layout.tilt_field), strict=True)
        if key in pose and (message := _limit_problem(pose[key], fld, layout)) is not None
    ]
    zoom = pose.get("zoom", {})
    if not isinstance(zoom, dict):
        return [*out, ("zoom", f"must be an object of camera id: zoom, got {json_type(zoom)}")]
    with_zoom = ", ".join(sorted(layout.zoom_fields)) or "none"
    if len(zoom) > len(layout.zoom_fields):
        return [*out, ("zoom", f"{len(zoom)} cameras; those with a zoom: {with_zoom}")]
    for cam, value in zoom.items():
        fld = layout.zoom_fields.get(cam)
        if fld is None:
            why: str | None = f"{echo(cam)} is not a camera with a zoom; those with one: {with_zoom}"
        else:
            why = _limit_problem(value, fld, layout)
        if why is not None:
            out.append((f"zoom.{clip(cam, 40)}", why))
    return out


def _limit_problem(value: Any, fld: str, layout: RigLayout) -> str | None:
    """``value`` checked as the target of the positioning command that drives ``fld``."""
    command_id = layout.command_for(fld)
    if command_id is None:
        return f"no command in positioning_commands drives {fld!r}"
    return target_problem(value, layout.positioning[command_id])


# -- grid -----------------------------------------------------------------------------------------
def parse_grid(grid: Any, layout: RigLayout) -> tuple[Grid | None, list[Detail]]:
    """The grid of a scan request, or None and its problems (index None, fields ``grid.…``)."""
    example = '{"pan_deg_x100": {"from": 0, "to": 9000, "step": 1500}, "tilt_deg_x100": …, "order": "rows"}'
    if not isinstance(grid, dict):
        return None, [detail(None, "grid", f"must be an object like {example}, got {json_type(grid)}")]
    known = {*AXES, "order"}
    out = [detail(None, f"grid.{clip(k, 40)}", "unknown key") for k in sorted(set(grid) - known)]
    order = grid.get("order")
    if order not in GRID_ORDERS:
        got = "missing" if "order" not in grid else f"got {echo(order)}"
        out.append(detail(None, "grid.order", f"must be 'serpentine' or 'rows'; {got}"))
    pan, found = _parse_range(grid, "pan_deg_x100", layout.pan_field, layout)
    out += found
    tilt, found = _parse_range(grid, "tilt_deg_x100", layout.tilt_field, layout)
    out += found
    if out or pan is None or tilt is None:
        return None, out
    poses = pan.count() * tilt.count()
    if poses > MAX_POSES:
        message = (
            f"makes {echo(pan.count())} × {echo(tilt.count())} = {echo(poses)} poses; at most {MAX_POSES}"
        )
        return None, [detail(None, "grid", message)]
    return Grid(pan, tilt, cast(GridOrder, order)), []


def _parse_range(
    grid: dict[str, Any], axis: str, fld: str, layout: RigLayout
) -> tuple[AxisRange | None, list[Detail]]:
    where, spec = f"grid.{axis}", grid.get(axis)
    if axis not in grid:
        return None, [detail(None, where, 'missing: {"from": …, "to": …, "step": …}')]
    if not isinstance(spec, dict):
        return None, [detail(None, where, f"must be an object with from, to and step, got {json_type(spec)}")]
    out = [detail(None, f"{where}.{clip(k, 40)}", "unknown key") for k in sorted(set(spec) - {*RANGE_KEYS})]
    for key in RANGE_KEYS:
        value = spec.get(key)
        if key not in spec:
            out.append(detail(None, f"{where}.{key}", "missing"))
        elif key != "step" and (message := _limit_problem(value, fld, layout)) is not None:
            out.append(detail(None, f"{where}.{key}", message))  # the unit and the value meant, too
        elif not _is_int(value):
            out.append(detail(None, f"{where}.{key}", f"must be a whole number, got {json_type(value)}"))
        elif key == "step" and value <= 0:
            out.append(detail(None, f"{where}.step", f"must be greater than 0, got {echo(value)}"))
    if out:
        return None, out
    return AxisRange(spec["from"], spec["to"], spec["step"]), []
