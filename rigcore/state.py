"""Pure state logic: reading fields by dotted path and deciding "settled" (docs/protocol.md §5).

No sockets here; the MQTT adapter (:mod:`mqtt_control.link`) feeds :class:`StateSample` objects in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

_MISSING = object()


def get_path(obj: Any, dotted: str) -> Any:
    """Value at ``a.b.c`` in nested mappings, or ``None`` when any step is missing."""
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float that float arithmetic can use (every caller compares with floats)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond a float's range (JSON and MessagePack can carry one)
        return False


@dataclass(frozen=True, slots=True)
class StateSample:
    """One entity_state message as received."""

    device_id: str
    payload: Mapping[str, Any]
    received_mono: float
    received_at: float
    retained: bool


@dataclass
class SettleTracker:
    """Decides when one device has settled.

    Counts only messages received at or after ``since_mono`` and not delivered retained; requires
    every watched field within tolerance of its target (where a target was commanded) and the
    watched values unchanged for ``min_messages`` consecutive messages spanning ``window_s``.
    The settle point is the arrival time of the message that completed the condition.
    """

    device_id: str
    fields: tuple[str, ...]
    targets: Mapping[str, float | None]
    tolerances: Mapping[str, float]
    since_mono: float
    window_s: float
    min_messages: int
    moving_field: str | None = None
    # A retained message never proves a move ended (docs/protocol.md §5); a status display that only
    # asks "is it still now?" may count it.
    count_retained: bool = False

    counted: int = 0
    ignored_stale: int = 0
    ignored_missing: int = 0
    last_values: dict[str, Any] | None = None
    settled_mono: float | None = None
    settled_at: float | None = None
    _run_values: tuple[Any, ...] | None = field(default=None, repr=False)
    _run_start: float = field(default=0.0, repr=False)
    _run_count: int = field(default=0, repr=False)

    @property
    def settled(self) -> bool:
        return self.settled_mono is not None

    def feed(self, sample: StateSample) -> bool:
        """Take one message; return True once the device is settled (it then stays settled)."""
        if self.settled:
            return True
        if (sample.retained and not self.count_retained) or sample.received_mono < self.since_mono:
            self.ignored_stale += 1
            return False
        values = tuple(get_path(sample.payload, f) for f in self.fields)
        if any(v is None for v in values):
            self.ignored_missing += 1
            return False
        self.counted += 1
        self.last_values = dict(zip(self.fields, values, strict=True))
        moving = get_path(sample.payload, self.moving_field) if self.moving_field else False
        if values != self._run_values or moving:
            self._run_values = values if not moving else None
            self._run_start = sample.received_mono
            self._run_count = 1
        else:
            self._run_count += 1
        if (
            not moving
            and self._within_tolerance()
            and self._run_count >= self.min_messages
            and sample.received_mono - self._run_start >= self.window_s
        ):
            self.settled_mono = sample.received_mono
            self.settled_at = sample.received_at
            return True
        return False

    def proof(self) -> dict[str, Any]:
        """What shows the device settled (call once it has): how long it took from the moment its
        state started to count, the residual error to each target, and the steady run that decided."""
        assert self.settled_mono is not None and self.last_values is not None
        residual = {
            name: round(float(value) - target, 6)
            for name, target in self.targets.items()
            if target is not None and is_number(value := self.last_values.get(name))
        }
        return {
            "time_to_settle_s": round(self.settled_mono - self.since_mono, 3)
            if math.isfinite(self.since_mono)
            else None,
            "values": dict(self.last_values),
            "targets": {k: v for k, v in self.targets.items() if v is not None},
            "residual": residual,
            "steady_messages": self._run_count,
            "steady_window_s": round(self.settled_mono - self._run_start, 3),
        }

    @property
    def steady_since_mono(self) -> float:
        """When the run of equal values that settled the device began."""
        return self._run_start

    def _within_tolerance(self) -> bool:
        assert self.last_values is not None
        for name, target in self.targets.items():
            if target is None:
                continue
            value = self.last_values.get(name)
            if not is_number(value) or abs(value - target) > self.tolerances.get(name, 0.0):
                return False
        return True

    def reason(self) -> str:
        """Why the device is not settled yet, in words."""
        if self.counted == 0:
            return "no fresh state received since the command"
        if not self._within_tolerance():
            return "value not within tolerance of the target"
        return (
            f"value still changing (held {self._run_count} message(s); needs {self.min_messages} "
            f"over {self.window_s} s)"
        )
