"""The rig's pose at any moment, from the state samples kept around a recording (pure, no I/O).

A frame's pose is the rig's state at the frame's capture time (docs/protocol.md §5), not the last
state known when the frame arrived: frames travel behind the state topics. Pan and tilt are
interpolated linearly between the pan-tilt samples around the moment; a zoom and the distance are
held (the last sample at or before it). A sample's time is its arrival: the state topics are prompt.
Each answer says how it was found:

* ``interpolated`` — pan/tilt samples on both sides of the moment;
* ``held`` — only samples before it (the newest is held);
* ``earliest`` — only samples after it (the first is taken);
* ``None`` — no pan-tilt sample at all: the base pose (the last known before the samples began).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from rigcore.rig import Pose, RigLayout, frame_pose
from rigcore.state import StateSample, is_number

_Series = tuple[list[float], list[Any]]


class PoseTimeline:
    def __init__(self, layout: RigLayout, samples: Iterable[StateSample], base: Pose) -> None:
        self._base = base
        pantilt: list[tuple[float, float, float]] = []
        zooms: dict[str, list[tuple[float, Any]]] = {}
        distance: list[tuple[float, Any]] = []
        for sample in sorted(samples, key=lambda s: s.received_mono):
            values = layout.state_values(sample)
            if values is None:
                continue
            t = sample.received_mono
            if sample.device_id == layout.pantilt_id:
                pan, tilt = values["pan_deg_x100"], values["tilt_deg_x100"]
                if is_number(pan) and is_number(tilt):
                    pantilt.append((t, float(pan), float(tilt)))
            elif sample.device_id == layout.rangefinder_id:
                distance.append((t, values["distance_m"]))
            elif values.get("zoom") is not None:
                zooms.setdefault(sample.device_id, []).append((t, values["zoom"]))
        self._pt_times = [p[0] for p in pantilt]
        self._pantilt = pantilt
        self._zooms = {cam: _series(points) for cam, points in zooms.items()}
        self._distance = _series(distance)

    def pose_at(self, camera_id: str, mono: float) -> tuple[dict[str, Any], str | None]:
        """The pose of ``camera_id``'s frame captured at ``mono``, and how it was found."""
        pose = frame_pose(self._base, camera_id)
        pan_tilt, method = self._pan_tilt(mono)
        if pan_tilt is not None:
            pose["pan_deg_x100"], pose["tilt_deg_x100"] = pan_tilt
        zoom = self._zooms.get(camera_id)
        if zoom is not None:
            pose["zoom"] = _held(zoom, mono)
        if self._distance[0]:
            pose["distance_m"] = _held(self._distance, mono)
        return pose, method

    def _pan_tilt(self, mono: float) -> tuple[tuple[float, float] | None, str | None]:
        times, points = self._pt_times, self._pantilt
        if not times:
            return None, None
        i = bisect.bisect_right(times, mono)
        if i == 0:
            return _whole(points[0][1:]), "earliest"
        if i == len(times):
            return _whole(points[-1][1:]), "held"
        (t0, pan0, tilt0), (t1, pan1, tilt1) = points[i - 1], points[i]
        f = 0.0 if t1 <= t0 else (mono - t0) / (t1 - t0)
        pan, tilt = round(pan0 + f * (pan1 - pan0), 2), round(tilt0 + f * (tilt1 - tilt0), 2)
        return _whole((pan, tilt)), "interpolated"


def _series(points: list[tuple[float, Any]]) -> _Series:
    return [p[0] for p in points], [p[1] for p in points]


def _held(series: _Series, mono: float) -> Any:
    times, values = series
    i = bisect.bisect_right(times, mono)
    return values[max(i - 1, 0)]


def _whole(values: tuple[float, float]) -> tuple[float, float]:
    """Whole values as integers, as the rig sends them (4500, not 4500.0, in the manifest)."""
    pan, tilt = (int(v) if float(v).is_integer() else v for v in values)
    return pan, tilt

