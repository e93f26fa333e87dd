"""Pure rules about the rig's devices, each in one place (docs/protocol.md §1–§3, §5).

* which state fields a device reports, and so which fields define "settled" for it;
* which positioning command drives which field, with its tolerance;
* the pose a state message implies, and the telemetry entry it gives;
* whether a device is holding still (the settle rule of :class:`rigcore.state.SettleTracker`).

:class:`RigLayout` is built once from the configuration; the state hub, the plan compiler, the
validator, the recorder and the dashboard all ask it instead of reading the configuration's device
keys themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rigcore.config import Config, PositioningCommand
from rigcore.state import SettleTracker, StateSample, get_path, is_number

# The pose: the last pan, tilt, distance and zooms known. Treated as immutable: a new dict is made
# for each change, so references kept by earlier frames never change under them.
Pose = Mapping[str, Any]
EMPTY_POSE: Pose = {"pan_deg_x100": None, "tilt_deg_x100": None, "distance_m": None, "zooms": {}}


@dataclass(frozen=True)
class RigLayout:
    pantilt_id: str
    pan_field: str
    tilt_field: str
    moving_field: str | None
    rangefinder_id: str
    distance_field: str
    zoom_fields: Mapping[str, str]  # camera id -> dotted path of its zoom value
    positioning: Mapping[str, PositioningCommand]  # command id -> what it moves

    @classmethod
    def from_config(cls, config: Config) -> RigLayout:
        return cls(
            pantilt_id=config.pantilt.device_id,
            pan_field=config.pantilt.pan_field,
            tilt_field=config.pantilt.tilt_field,
            moving_field=config.pantilt.moving_field,
            rangefinder_id=config.rangefinder.device_id,
            distance_field=config.rangefinder.distance_field,
            zoom_fields={cam: c.zoom_field for cam, c in config.cameras.items() if c.zoom_field},
            positioning=dict(config.positioning_commands),
        )

    # -- devices and fields ----------------------------------------------------------------------
    def reported_fields(self, device_id: str) -> tuple[str, ...]:
        """The state fields a device reports that can move (pan and tilt, or a zoom); () for none."""
        if device_id == self.pantilt_id:
            return (self.pan_field, self.tilt_field)
        zoom = self.zoom_fields.get(device_id)
        return (zoom,) if zoom else ()

    def moving_flag(self, device_id: str) -> str | None:
        """The boolean "moving" field a device may report (pan-tilt only), if configured."""
        return self.moving_field if device_id == self.pantilt_id else None

    def tolerance(self, field: str) -> float:
        """How far a reported value may be from its target and still count as there."""
        tolerances = [spec.tolerance for spec in self.positioning.values() if spec.field == field]
        return max(tolerances) if tolerances else 0.0

    def command_for(self, field: str) -> str | None:
        """The positioning command that drives ``field`` (e.g. the pan command), if one is configured."""
        return next((cmd for cmd, spec in self.positioning.items() if spec.field == field), None)

    def target_of(self, command: Mapping[str, Any]) -> tuple[str, str, float] | None:
        """``(device_id, field, target)`` when ``command`` is a positioning command, else None."""
        spec = self.positioning.get(command.get("command_id", ""))
        if spec is None:
            return None
        return command["device_id"], spec.field, command.get("args", {})[spec.arg]

    # -- state messages ----------------------------------------------------------------------------
    def pose_after(self, pose: Pose, sample: StateSample) -> Pose:
        """The pose once ``sample`` is known: a new mapping when it changes anything, else ``pose``."""
        dev = sample.device_id
        if dev == self.pantilt_id:
            pan, tilt = get_path(sample.payload, self.pan_field), get_path(sample.payload, self.tilt_field)
            return {
                **pose,
                "pan_deg_x100": pan if pan is not None else pose["pan_deg_x100"],
                "tilt_deg_x100": tilt if tilt is not None else pose["tilt_deg_x100"],
            }
        if dev == self.rangefinder_id:
            dist = get_path(sample.payload, self.distance_field)
            return {**pose, "distance_m": dist if dist > 0 else None} if is_number(dist) else pose
        if dev in self.zoom_fields:
            zoom = get_path(sample.payload, self.zoom_fields[dev])
            return pose if zoom is None else {**pose, "zooms": {**pose["zooms"], dev: zoom}}
        return pose

    def state_values(self, sample: StateSample) -> dict[str, Any] | None:
        """What a session keeps of a state message, in the service's terms (sessions.state_log):
        pan and tilt (and the moving flag) of the pan-tilt, a lens's zoom, the range finder's
        distance (None for no valid reading). None for a device the rig's pose does not involve."""
        dev, payload = sample.device_id, sample.payload
        if dev == self.pantilt_id:
            values = {
                "pan_deg_x100": get_path(payload, self.pan_field),
                "tilt_deg_x100": get_path(payload, self.tilt_field),
            }
            if self.moving_field:
                values["moving"] = get_path(payload, self.moving_field)
            return values
        if dev == self.rangefinder_id:
            dist = get_path(payload, self.distance_field)
            return {"distance_m": dist if is_number(dist) and dist > 0 else None}
        if dev in self.zoom_fields:
            return {"zoom": get_path(payload, self.zoom_fields[dev])}
        return None


def frame_pose(pose: Pose, camera_id: str) -> dict[str, Any]:
    """The pose recorded with one frame of ``camera_id``: pan, tilt, that camera's zoom, distance."""
    return {
        "pan_deg_x100": pose["pan_deg_x100"],
        "tilt_deg_x100": pose["tilt_deg_x100"],
        "zoom": pose["zooms"].get(camera_id),
        "distance_m": pose["distance_m"],
    }


def is_holding_still(
    samples: Iterable[StateSample],
    fields: tuple[str, ...],
    window_s: float,
    min_messages: int,
    moving_field: str | None = None,
) -> bool:
    """Whether the newest run of equal values in ``samples`` (oldest first) satisfies the settle rule.

    The same :class:`SettleTracker` decides as for a recording, fed only the trailing run, with no
    target and no "since": a status display asks "still now?", not "arrived?".
    """
    run: list[StateSample] = []
    for sample in reversed(list(samples)):
        values = tuple(get_path(sample.payload, f) for f in fields)
        if run and values != tuple(get_path(run[-1].payload, f) for f in fields):
            break
        run.append(sample)
    tracker = SettleTracker(
        "",
        fields,
        dict.fromkeys(fields),
        {},
        -math.inf,
        window_s,
        min_messages,
        moving_field,
        count_retained=True,
    )
    return any(tracker.feed(sample) for sample in reversed(run)) and tracker.settled
