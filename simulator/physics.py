"""Motion of the rig's axes: start delay, finite speed, reporting jitter. No I/O, time is passed in.

Each axis keeps a short chain of move segments. A command at time ``t`` adds a segment that starts at
``t + start_delay`` from wherever the previous segment has taken the axis by then, so a retarget
mid-move keeps the old move going through the delay, as a real motor controller does.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any

from .config import (
    PAN_RANGE_X100,
    RGB_ID,
    SWIR_ID,
    TILT_RANGE_X100,
    ZOOM_STEP_RANGE,
    ZOOM_VALUE_RANGE,
    SimConfig,
)

# A chain longer than this means commands arrive faster than one per start delay: refuse more.
MAX_PENDING_MOVES = 64
# Reported jitter in x100 units: while moving, and at rest under the never_settle fault.
MOVING_JITTER_X100 = 3
NEVER_SETTLE_JITTER_X100 = 4
# Range finder: mounting height and the readings it clamps to (docs/protocol.md: <= 0 means no reading).
LRF_HEIGHT_M = 12.0
LRF_RANGE_M = (25.0, 400.0)
LRF_NO_READING = -1.0


class MoveRejected(ValueError):
    """A move could not be queued (too many pending moves)."""


@dataclass(frozen=True)
class _Segment:
    start_time: float
    start_pos: float
    target: float


class Axis:
    """One motor axis moving linearly at ``speed`` units/s, ``delay`` seconds after each command."""

    def __init__(self, initial: float, speed: float, delay: float, lo: float, hi: float) -> None:
        self._base = float(initial)
        self._speed = speed
        self._delay = delay
        self.lo = lo
        self.hi = hi
        self._segments: list[_Segment] = []

    def _active(self, now: float) -> _Segment | None:
        active = None
        for seg in self._segments:
            if seg.start_time > now:
                break
            active = seg
        return active

    def value(self, now: float) -> float:
        """True (noise-free) position at ``now``."""
        seg = self._active(now)
        if seg is None:
            return self._base
        travel = self._speed * (now - seg.start_time)
        delta = seg.target - seg.start_pos
        if abs(delta) <= travel:
            return seg.target
        return seg.start_pos + math.copysign(travel, delta)

    def command(self, target: float, now: float) -> None:
        """Retarget: the new move starts ``delay`` after ``now``."""
        start = now + self._delay
        # Segments are in start order; one starting at or after ours can only exist if the delay
        # was changed, and ours supersedes it.
        self._segments = [s for s in self._segments if s.start_time < start]
        # Drop segments whose successor has already begun: they no longer shape any position >= now.
        while len(self._segments) >= 2 and self._segments[1].start_time <= now:
            self._segments.pop(0)
        if len(self._segments) >= MAX_PENDING_MOVES:
            raise MoveRejected(f"more than {MAX_PENDING_MOVES} moves pending")
        pos = self.value(start)
        self._segments.append(_Segment(start, pos, float(target)))

    def final_target(self) -> float:
        """Where the axis ends up once every queued move is done."""
        return self._segments[-1].target if self._segments else self._base

    def is_busy(self, now: float) -> bool:
        """A move is pending (start delay) or in progress."""
        return self.value(now) != self.final_target() or any(s.start_time > now for s in self._segments)

    def is_moving(self, now: float) -> bool:
        """The motor is actually turning (not waiting out the start delay, not arrived)."""
        seg = self._active(now)
        return seg is not None and self.value(now) != seg.target


@dataclass(frozen=True)
class TruePose:
    """Noise-free pose at one instant."""

    pan_deg_x100: float
    tilt_deg_x100: float
    zooms: dict[str, float]  # camera id -> zoom_value (value style) or zoom_step (step style)
    moving: bool

    @property
    def pan_deg(self) -> float:
        return self.pan_deg_x100 / 100.0

    @property
    def tilt_deg(self) -> float:
        return self.tilt_deg_x100 / 100.0


def lrf_distance(pan_deg: float, tilt_deg: float) -> float:
    """Range to the ground from a mast of LRF_HEIGHT_M; no reading (<= 0) when aimed at the sky."""
    if tilt_deg > 0.5:
        return LRF_NO_READING
    down = math.radians(max(-tilt_deg, 0.01))
    # A gentle pan-dependent undulation so that a pan move shows in the reading too.
    terrain = 1.0 + 0.1 * math.sin(math.radians(3.0 * pan_deg))
    dist = LRF_HEIGHT_M / math.sin(down) * terrain
    return round(min(max(dist, LRF_RANGE_M[0]), LRF_RANGE_M[1]), 2)


class RigPhysics:
    """Pan, tilt and each zoom lens of the rig; all methods are thread-safe."""

    def __init__(self, cfg: SimConfig, rng: random.Random | None = None) -> None:
        self._cfg = cfg
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        delay = cfg.start_delay_s
        self.pan = Axis(0.0, cfg.pan_speed_deg_s * 100.0, delay, *PAN_RANGE_X100)
        self.tilt = Axis(0.0, cfg.tilt_speed_deg_s * 100.0, delay, *TILT_RANGE_X100)
        self.zoom_style: dict[str, str] = {}
        self.zooms: dict[str, Axis] = {}
        for cid, cam in cfg.zoom_cameras().items():
            self.zoom_style[cid] = cam.zoom_style
            if cam.zoom_style == "step":
                lo, hi = ZOOM_STEP_RANGE
                self.zooms[cid] = Axis(lo, cfg.swir_zoom_speed, delay, lo, hi)
            else:
                zlo, zhi = ZOOM_VALUE_RANGE
                self.zooms[cid] = Axis(zlo, cfg.rgb_zoom_speed, delay, zlo, zhi)

    def _axes(self) -> list[Axis]:
        return [self.pan, self.tilt, *self.zooms.values()]

    def move(self, axis: Axis, target: float, now: float) -> None:
        """Command ``axis`` (one of this rig's) to ``target``; raises MoveRejected."""
        with self._lock:
            axis.command(target, now)

    def true_pose(self, now: float) -> TruePose:
        """Noise-free pose; ``moving`` is True while any move is pending or in progress."""
        with self._lock:
            return TruePose(
                pan_deg_x100=self.pan.value(now),
                tilt_deg_x100=self.tilt.value(now),
                zooms={cid: ax.value(now) for cid, ax in self.zooms.items()},
                moving=any(ax.is_busy(now) for ax in self._axes()),
            )

    def zoom_factor(self, camera_id: str, pose: TruePose) -> float:
        """Optical magnification of a camera (1 for a fixed lens)."""
        if camera_id not in pose.zooms:
            return 1.0
        if self.zoom_style[camera_id] == "step":
            return 1.0 + pose.zooms[camera_id] / 100.0
        return pose.zooms[camera_id]

    def _reported_x100(self, axis: Axis, now: float, never_settle: bool, previous: int | None) -> int:
        value = axis.value(now)
        if axis.is_moving(now):
            jitter = self._rng.randint(-MOVING_JITTER_X100, MOVING_JITTER_X100)
        elif never_settle:
            # Never zero and never the previous report, so no two consecutive reports are equal.
            base = round(value)
            choices = [
                base + j
                for j in range(-NEVER_SETTLE_JITTER_X100, NEVER_SETTLE_JITTER_X100 + 1)
                if j != 0 and base + j != previous
            ]
            return int(min(max(self._rng.choice(choices), axis.lo), axis.hi))
        else:
            # At rest the controller reports the target exactly.
            return round(value)
        return int(min(max(round(value) + jitter, axis.lo), axis.hi))

    def pantilt_state(
        self, now: float, never_settle: bool = False, previous: dict[str, Any] | None = None
    ) -> dict[str, int]:
        """entity_state payload of the pan-tilt; ``previous`` is the last one published."""
        prev = previous or {}
        with self._lock:
            return {
                "pan_deg_x100": self._reported_x100(self.pan, now, never_settle, prev.get("pan_deg_x100")),
                "tilt_deg_x100": self._reported_x100(self.tilt, now, never_settle, prev.get("tilt_deg_x100")),
            }

    def zoom_state(self, camera_id: str, now: float) -> dict[str, Any]:
        """entity_state payload of a zoom camera (docs/protocol.md §2)."""
        with self._lock:
            axis = self.zooms[camera_id]
            value = axis.value(now)
            if self.zoom_style[camera_id] == "step":
                return {"zoom_lens_state": {"zoom_step": round(value)}}
            # At rest the exact commanded value; while moving, two decimals as a lens encoder would.
            return {"zoom_value": value if not axis.is_moving(now) else round(value, 2)}

    def lrf_state(self, now: float) -> dict[str, float]:
        """entity_state payload of the range finder."""
        with self._lock:
            pan, tilt = self.pan.value(now), self.tilt.value(now)
        return {"measured_distance_meters": lrf_distance(pan / 100.0, tilt / 100.0)}

    def pose_dict(self, now: float) -> dict[str, Any]:
        """Ground-truth pose for tests: rounded true values, no reporting jitter."""
        return self.describe(self.true_pose(now))

    def describe(self, pose: TruePose) -> dict[str, Any]:
        """A TruePose as a JSON-able dict (the shape of SimRig.pose())."""
        rgb = _first_zoom(self.zoom_style, pose.zooms, "value", RGB_ID)
        swir = _first_zoom(self.zoom_style, pose.zooms, "step", SWIR_ID)
        return {
            "pan_deg_x100": round(pose.pan_deg_x100),
            "tilt_deg_x100": round(pose.tilt_deg_x100),
            "rgb_zoom": round(rgb, 4) if rgb is not None else 1.0,
            "swir_zoom_step": round(swir) if swir is not None else 0,
            "moving": pose.moving,
            "lrf_distance_m": lrf_distance(pose.pan_deg, pose.tilt_deg),
            "zooms": {cid: round(v, 4) for cid, v in pose.zooms.items()},
        }


def _first_zoom(styles: dict[str, str], zooms: dict[str, float], style: str, preferred: str) -> float | None:
    if styles.get(preferred) == style:
        return zooms[preferred]
    for cid, value in zooms.items():
        if styles[cid] == style:
            return value
    return None
