"""Latest state per device, a short history, and waiting for "settled" (loop-thread only).

The MQTT adapter (:mod:`mqtt_control.link`) hands every parsed entity_state message to
:meth:`StateHub.on_sample` on the event loop; everything here runs on that loop, so no locks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rigcore.config import SettleConfig
from rigcore.errors import NoStateError, SettleTimeout
from rigcore.rig import EMPTY_POSE, Pose, RigLayout, frame_pose, is_holding_still
from rigcore.state import SettleTracker, StateSample

# Per-device history kept for settle decisions that start after the command was sent.
# At 20 messages/s this covers more than three minutes; the oldest samples are dropped first.
HISTORY_LEN = 4096

SampleListener = Callable[[StateSample], None]


@dataclass(frozen=True, slots=True)
class SettleSpec:
    """What to wait for on one device."""

    device_id: str
    fields: tuple[str, ...]
    targets: Mapping[str, float | None]
    tolerances: Mapping[str, float]
    since_mono: float


class StateHub:
    """Takes the few settings it needs: the rig's layout (devices and fields), the settle rule, and how
    a device's state topic is named (for error messages)."""

    def __init__(self, layout: RigLayout, settle: SettleConfig, state_topic: Callable[[str], str]) -> None:
        self._layout = layout
        self._settle = settle
        self._state_topic = state_topic
        self._history: dict[str, deque[StateSample]] = {}
        self.latest: dict[str, StateSample] = {}
        self.invalid: dict[str, int] = {}
        self._listeners: list[SampleListener] = []
        self._pose: Pose = EMPTY_POSE

    def reconfigure(self, layout: RigLayout, settle: SettleConfig) -> None:
        """Use a new configuration's devices and settle rule from the next wait on."""
        self._layout, self._settle = layout, settle

    # -- input ---------------------------------------------------------------------------------
    def on_invalid(self, device_id: str) -> None:
        """A payload that was not a JSON object: counted, never fatal (docs/protocol.md §2)."""
        self.invalid[device_id] = self.invalid.get(device_id, 0) + 1

    def on_sample(self, sample: StateSample) -> None:
        dev = sample.device_id
        self._history.setdefault(dev, deque(maxlen=HISTORY_LEN)).append(sample)
        self.latest[dev] = sample
        self._pose = self._layout.pose_after(self._pose, sample)
        for listener in tuple(self._listeners):
            listener(sample)

    # -- queries -------------------------------------------------------------------------------
    def pose(self) -> Pose:
        """The last pan, tilt, distance and zooms known (an immutable snapshot: do not modify)."""
        return self._pose

    def frame_pose(self, camera_id: str) -> dict[str, Any]:
        return frame_pose(self._pose, camera_id)

    def add_listener(self, listener: SampleListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SampleListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def history_since(self, device_id: str, since_mono: float) -> list[StateSample]:
        return [s for s in self._history.get(device_id, ()) if s.received_mono >= since_mono]

    def is_stable(self, device_id: str, now_mono: float | None = None) -> bool | None:
        """Whether a device's reported values are holding still now (for /status; None = unknown).

        The settle rule on the newest run of equal values, and the newest message recent (no older than
        twice the window plus a second).
        """
        fields = self._layout.reported_fields(device_id)
        hist = self._history.get(device_id)
        if not fields or not hist:
            return None
        settle = self._settle
        now = time.monotonic() if now_mono is None else now_mono
        if now - hist[-1].received_mono > settle.window_s * 2 + 1.0:
            return False
        recent = list(hist)[-max(settle.min_messages * 4, 64) :]
        return is_holding_still(
            recent, fields, settle.window_s, settle.min_messages, self._layout.moving_flag(device_id)
        )

    def status(self, devices: Iterable[str]) -> dict[str, Any]:
        now_mono, out = time.monotonic(), {}
        for dev in sorted(devices):
            sample = self.latest.get(dev)
            out[dev] = {
                "topic": self._state_topic(dev),
                "state": dict(sample.payload) if sample else None,
                "age_s": round(now_mono - sample.received_mono, 3) if sample else None,
                "retained": sample.retained if sample else None,
                "settled": self.is_stable(dev, now_mono),
                "invalid_messages": self.invalid.get(dev, 0),
            }
        return out

    # -- settle --------------------------------------------------------------------------------
    async def wait_settled(self, specs: Iterable[SettleSpec], timeout_s: float) -> dict[str, SettleTracker]:
        """Wait until every spec's device has settled (docs/protocol.md §5); raise a SettleError otherwise.

        Messages received since each spec's ``since_mono`` that are already in the history count,
        so the wait may start well after the command was sent.
        """
        trackers = {spec.device_id: self._tracker(spec) for spec in specs}
        for dev, tracker in trackers.items():
            for sample in self.history_since(dev, tracker.since_mono):
                tracker.feed(sample)
        if all(t.settled for t in trackers.values()):
            return trackers
        done = asyncio.Event()

        def feed(sample: StateSample) -> None:
            tracker = trackers.get(sample.device_id)
            if tracker is not None and tracker.feed(sample) and all(t.settled for t in trackers.values()):
                done.set()

        started = time.monotonic()
        self.add_listener(feed)
        try:
            async with asyncio.timeout(timeout_s):
                await done.wait()
        except TimeoutError:
            raise self._settle_error(trackers, time.monotonic() - started) from None
        finally:
            self.remove_listener(feed)
        return trackers

    def _tracker(self, spec: SettleSpec) -> SettleTracker:
        return SettleTracker(
            spec.device_id,
            spec.fields,
            spec.targets,
            spec.tolerances,
            spec.since_mono,
            self._settle.window_s,
            self._settle.min_messages,
            self._layout.moving_flag(spec.device_id),
        )

    def _settle_error(self, trackers: Mapping[str, SettleTracker], waited: float) -> Exception:
        """The error naming the first device that did not settle, its target and its last value."""
        for dev, tracker in trackers.items():
            if tracker.settled:
                continue
            if tracker.counted == 0 and tracker.ignored_missing == 0:
                return NoStateError(dev, self._state_topic(dev), waited)
            return SettleTimeout(dev, dict(tracker.targets), tracker.last_values, waited, tracker.reason())
        return TimeoutError(f"settle wait ended after {waited:.1f} s with every device settled")
