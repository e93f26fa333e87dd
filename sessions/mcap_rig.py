"""The rig's side of the MCAP export (sessions.mcap_export): ``/rig/state`` and ``/tf``.

``/rig/state`` is one JSON message per state sample kept with the session (``state.jsonl``, read
through :func:`sessions.state_log.read_state_log`): every device — pan-tilt, each camera's zoom lens
(its device id is the camera id), the range finder — from the batch's first command to the
recording's end, each message carrying the whole rig as known at that sample's arrival. A session
saved before the samples were kept falls back to what it has: its ``telemetry`` (pan-tilt and range
finder in the window, converted by ``read_state_log``), the pose at the start, and the zooms (and,
without telemetry, pan, tilt and distance too) from the frames' poses, one message per change.

``/tf`` follows the pan and tilt of those messages; see :func:`transforms` for the axes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.Quaternion_pb2 import Quaternion
from foxglove_schemas_protobuf.Vector3_pb2 import Vector3
from google.protobuf.timestamp_pb2 import Timestamp

from rigcore.state import is_number
from sessions.manifest import SessionManifest
from sessions.state_log import StateRecord

PAN_SIGN = 1.0
TILT_SIGN = -1.0
BASE_FRAME, PAN_FRAME, TILT_FRAME = "base", "pan", "tilt"
# base/body axes (x forward, y left, z up) to optical axes (z forward, x right, y down).
_OPTICAL = Quaternion(x=-0.5, y=0.5, z=-0.5, w=0.5)

RIG_STATE_SCHEMA: dict[str, Any] = {
    "title": "rigcapture.RigState",
    "description": "The rig's state as known at this moment of the recording (null: not known yet)",
    "type": "object",
    "properties": {
        "received_at": {"type": "number", "description": "epoch seconds the sample was received"},
        "source": {
            "type": "string",
            "enum": ["pose_at_start", "telemetry", "frame_pose"],
            "description": "telemetry: a state sample of device_id; the others: older sessions only",
        },
        "device_id": {"type": ["string", "null"]},
        "pan_deg_x100": {"type": ["number", "null"]},
        "tilt_deg_x100": {"type": ["number", "null"]},
        "pan_deg": {"type": ["number", "null"]},
        "tilt_deg": {"type": ["number", "null"]},
        "moving": {"type": ["boolean", "null"], "description": "the pan-tilt's own flag, where it sends one"},
        "distance_m": {"type": ["number", "null"], "description": "null: no valid reading"},
        "zoom": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
    },
}


def _number(value: Any) -> float | None:
    return value if is_number(value) else None  # finite, and a float can hold it


def _distance(value: Any) -> float | None:
    d = _number(value)
    return d if d is not None and d > 0 else None  # 0 or less: no valid reading (PROTOCOL.md §2)


@dataclass
class RigState:
    """The rig as known so far: what each ``/rig/state`` message carries (:func:`state_after`)."""

    pan_x100: float | None = None
    tilt_x100: float | None = None
    moving: bool | None = None
    distance_m: float | None = None
    zoom: dict[str, Any] = field(default_factory=dict)

    def message(self, received_at: float, source: str, device_id: str | None) -> dict[str, Any]:
        return {
            "received_at": received_at,
            "source": source,
            "device_id": device_id,
            "pan_deg_x100": self.pan_x100,
            "tilt_deg_x100": self.tilt_x100,
            "pan_deg": None if self.pan_x100 is None else self.pan_x100 / 100,
            "tilt_deg": None if self.tilt_x100 is None else self.tilt_x100 / 100,
            "moving": self.moving,
            "distance_m": self.distance_m,
            "zoom": dict(self.zoom),
        }

    def apply_pose(self, pose: Mapping[str, Any], with_axes: bool) -> None:
        if with_axes:
            self.pan_x100 = _number(pose.get("pan_deg_x100"))
            self.tilt_x100 = _number(pose.get("tilt_deg_x100"))
            self.distance_m = _distance(pose.get("distance_m"))

    def apply_sample(self, sample: StateRecord) -> None:
        values = sample.values
        if "pan_deg_x100" in values:
            self.pan_x100 = _number(values.get("pan_deg_x100"))
        if "tilt_deg_x100" in values:
            self.tilt_x100 = _number(values.get("tilt_deg_x100"))
        if "moving" in values:
            moving = values.get("moving")
            self.moving = moving if isinstance(moving, bool) else None
        if "distance_m" in values:
            self.distance_m = _distance(values.get("distance_m"))
        if "zoom" in values:
            self.zoom[sample.device_id] = _number(values.get("zoom"))


def state_after(state: RigState, sample: StateRecord) -> dict[str, Any]:
    """The ``/rig/state`` message of one state sample: ``state`` updated with ``sample`` (in place),
    the whole rig as known at its arrival. The one builder of a sample's message, for a session's
    export (:func:`rig_states`) and for the live view (service.live.rig)."""
    state.apply_sample(sample)
    return state.message(sample.received_at, "telemetry", sample.device_id)


def rig_states(manifest: SessionManifest, samples: Sequence[StateRecord] = ()) -> list[dict[str, Any]]:
    """The ``/rig/state`` messages, oldest first (see the module docstring).

    ``samples``: the session's state samples (``read_state_log(folder, manifest.model_extra)``). When
    the session kept them itself (it has a ``state_log``, or a sample reports a zoom), the messages
    are those samples alone; otherwise they are an older session's telemetry and the frames' poses
    fill in what it lacks."""
    ordered = sorted(samples, key=lambda s: s.received_at)
    if ordered and (manifest.state_log is not None or any("zoom" in s.values for s in ordered)):
        return _from_samples(ordered)
    return _from_telemetry_and_frames(manifest, ordered)


def _from_samples(samples: Sequence[StateRecord]) -> list[dict[str, Any]]:
    state = RigState()
    return [state_after(state, sample) for sample in samples]


def _from_telemetry_and_frames(
    manifest: SessionManifest, telemetry: Sequence[StateRecord]
) -> list[dict[str, Any]]:
    """An older session: the pose at the start, one message per telemetry sample (pan-tilt or range
    finder) and one per change of a camera's zoom seen in the frames' poses; without telemetry, pan,
    tilt and distance from the frames' poses too."""
    state = RigState()
    out: list[dict[str, Any]] = []
    start = manifest.record_started_at or manifest.settled_at
    pose = manifest.pose_at_start
    if pose is not None and start is not None:
        state.apply_pose(pose, with_axes=True)
        zooms = pose.get("zooms")
        state.zoom = {str(cam): _number(z) for cam, z in zooms.items()} if isinstance(zooms, dict) else {}
        out.append(state.message(start, "pose_at_start", None))
    events: list[tuple[float, int, str, Any]] = [(s.received_at, 0, "", s) for s in telemetry]
    for camera_id, camera in manifest.cameras.items():
        for record in camera.frames:
            at = record.captured_at if record.captured_at is not None else record.received_at
            if at is not None and record.pose is not None:
                events.append((at, 1, camera_id, record.pose))
    events.sort(key=lambda e: (e[0], e[1]))
    for at, _, camera_id, data in events:
        if isinstance(data, StateRecord):
            out.append(state_after(state, data))  # at: its received_at
            continue
        before = state.message(at, "frame_pose", None)
        state.apply_pose(data, with_axes=not telemetry)
        state.zoom[camera_id] = _number(data.get("zoom"))
        after = state.message(at, "frame_pose", None)
        if after != before:
            out.append(after)
    return out


def _about(axis: str, degrees: float) -> Quaternion:
    half = math.radians(degrees) / 2
    s, c = math.sin(half), math.cos(half)
    return Quaternion(x=0.0, y=s if axis == "y" else 0.0, z=s if axis == "z" else 0.0, w=c)


def transforms(pan_x100: float, tilt_x100: float, cameras: Collection[str], stamp_ns: int) -> FrameTransforms:
    """``base -> pan -> tilt -> <camera>`` for a pan and a tilt in hundredths of a degree."""
    ts = Timestamp()
    ts.FromNanoseconds(stamp_ns)
    zero = Vector3(x=0.0, y=0.0, z=0.0)

    def link(parent: str, child: str, rotation: Quaternion) -> FrameTransform:
        return FrameTransform(
            timestamp=ts, parent_frame_id=parent, child_frame_id=child, translation=zero, rotation=rotation
        )

    chain = [
        link(BASE_FRAME, PAN_FRAME, _about("z", PAN_SIGN * pan_x100 / 100)),
        link(PAN_FRAME, TILT_FRAME, _about("y", TILT_SIGN * tilt_x100 / 100)),
    ]
    chain += [link(TILT_FRAME, cam, _OPTICAL) for cam in cameras]
    return FrameTransforms(transforms=chain)


__all__ = [
    "BASE_FRAME",
    "PAN_FRAME",
    "PAN_SIGN",
    "RIG_STATE_SCHEMA",
    "TILT_FRAME",
    "TILT_SIGN",
    "RigState",
    "rig_states",
    "state_after",
    "transforms",
]
