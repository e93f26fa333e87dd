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

from mqtt_control.state import SettleTracker, StateSample, get_path, is_number
from service.config import Config
from service.errors import NoStateError, SettleTimeout

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
    def __init__(self, config: Config) -> None:
        self._cfg = config
        self._history: dict[str, deque[StateSample]] = {}
        self.latest: dict[str, StateSample] = {}
        self.invalid: dict[str, int] = {}
        self._listeners: list[SampleListener] = []
        self._zoom_fields = {cam: c.zoom_field for cam, c in config.cameras.items() if c.zoom_field}
        self._pose: dict[str, Any] = {
            "pan_deg_x100": None,
            "tilt_deg_x100": None,
            "distance_m": None,
            "zooms": {},
        }

    def reconfigure(self, config: Config) -> None:
        """Use a new configuration's settle rule and moving flag from the next wait on."""
        self._cfg = config

    # -- input ---------------------------------------------------------------------------------
    def on_invalid(self, device_id: str) -> None:
        """A payload that was not a JSON object: counted, never fatal (PROTOCOL §2)."""
        self.invalid[device_id] = self.invalid.get(device_id, 0) + 1

    def on_sample(self, sample: StateSample) -> None:
        dev = sample.device_id
        self._history.setdefault(dev, deque(maxlen=HISTORY_LEN)).append(sample)
        self.latest[dev] = sample
        self._update_pose(sample)
        for listener in tuple(self._listeners):
            listener(sample)

    def _update_pose(self, sample: StateSample) -> None:
        pt, rf = self._cfg.pantilt, self._cfg.rangefinder
        pose = self._pose
        if sample.device_id == pt.device_id:
            pan, tilt = get_path(sample.payload, pt.pan_field), get_path(sample.payload, pt.tilt_field)
            # A new dict each time: recorders keep references to old poses without copying.
            pose = {**pose, "pan_deg_x100": pan if pan is not None else pose["pan_deg_x100"]}
            pose["tilt_deg_x100"] = tilt if tilt is not None else pose["tilt_deg_x100"]
        elif sample.device_id == rf.device_id:
            dist = get_path(sample.payload, rf.distance_field)
            if is_number(dist):
                pose = {**pose, "distance_m": dist if dist > 0 else None}
        elif sample.device_id in self._zoom_fields:
            zoom = get_path(sample.payload, self._zoom_fields[sample.device_id])
            if zoom is not None:
                pose = {**pose, "zooms": {**pose["zooms"], sample.device_id: zoom}}
        self._pose = pose

    # -- queries -------------------------------------------------------------------------------
    def pose(self) -> dict[str, Any]:
        """The last pan, tilt, distance and zooms known (an immutable snapshot: do not modify)."""
        return self._pose

    def frame_pose(self, camera_id: str) -> dict[str, Any]:
        p = self._pose
        return {
            "pan_deg_x100": p["pan_deg_x100"],
            "tilt_deg_x100": p["tilt_deg_x100"],
            "zoom": p["zooms"].get(camera_id),
            "distance_m": p["distance_m"],
        }

    def add_listener(self, listener: SampleListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SampleListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def history_since(self, device_id: str, since_mono: float) -> list[StateSample]:
        return [s for s in self._history.get(device_id, ()) if s.received_mono >= since_mono]

    def watched_fields(self, device_id: str) -> tuple[str, ...]:
        """The fields that define "settled" for a device with no explicit command."""
        cfg = self._cfg
        if device_id == cfg.pantilt.device_id:
            return (cfg.pantilt.pan_field, cfg.pantilt.tilt_field)
        cam = cfg.cameras.get(device_id)
        if cam is not None and cam.zoom_field:
            return (cam.zoom_field,)
        return ()

    def is_stable(self, device_id: str, now_mono: float | None = None) -> bool | None:
        """Whether a device's watched values are holding still now (for /status; None = unknown).

        True when the newest ``min_messages`` samples agree, span the settle window, and the newest
        is recent (no older than twice the window plus a second).
        """
        fields = self.watched_fields(device_id)
        hist = self._history.get(device_id)
        if not fields or not hist:
            return None
        settle = self._cfg.settle
        now = time.monotonic() if now_mono is None else now_mono
        newest = hist[-1]
        if now - newest.received_mono > settle.window_s * 2 + 1.0:
            return False
        want = tuple(get_path(newest.payload, f) for f in fields)
        for count, sample in enumerate(reversed(hist), start=1):
            if tuple(get_path(sample.payload, f) for f in fields) != want:
                break
            run_start = sample.received_mono
            if count >= settle.min_messages and newest.received_mono - run_start >= settle.window_s:
                return True
        return False

    def status(self) -> dict[str, Any]:
        now_mono, out = time.monotonic(), {}
        for dev in sorted(self._cfg.state_devices()):
            sample = self.latest.get(dev)
            out[dev] = {
                "topic": self._cfg.mqtt.state_topic(dev),
                "state": dict(sample.payload) if sample else None,
                "age_s": round(now_mono - sample.received_mono, 3) if sample else None,
                "retained": sample.retained if sample else None,
                "settled": self.is_stable(dev, now_mono),
                "invalid_messages": self.invalid.get(dev, 0),
            }
        return out

    # -- settle --------------------------------------------------------------------------------
    async def wait_settled(self, specs: Iterable[SettleSpec], timeout_s: float) -> dict[str, SettleTracker]:
        """Wait until every spec's device has settled (PROTOCOL §5); raise a SettleError otherwise.

        Messages received since each spec's ``since_mono`` that are already in the history count,
        so the wait may start well after the command was sent.
        """
        settle = self._cfg.settle
        moving = self._cfg.pantilt.moving_field
        trackers = {
            spec.device_id: SettleTracker(
                spec.device_id,
                spec.fields,
                spec.targets,
                spec.tolerances,
                spec.since_mono,
                settle.window_s,
                settle.min_messages,
                moving if spec.device_id == self._cfg.pantilt.device_id else None,
            )
            for spec in specs
        }
        if not trackers:
            return trackers
        done = asyncio.Event()

        def feed(sample: StateSample) -> None:
            tracker = trackers.get(sample.device_id)
            if tracker is not None and tracker.feed(sample) and all(t.settled for t in trackers.values()):
                done.set()

        for dev, tracker in trackers.items():
            for sample in self.history_since(dev, tracker.since_mono):
                tracker.feed(sample)
        if all(t.settled for t in trackers.values()):
            return trackers
        started = time.monotonic()
        self.add_listener(feed)
        try:
            async with asyncio.timeout(timeout_s):
                await done.wait()
        except TimeoutError:
            waited = time.monotonic() - started
            for dev, tracker in trackers.items():
                if tracker.settled:
                    continue
                if tracker.counted == 0 and tracker.ignored_missing == 0:
                    raise NoStateError(dev, self._cfg.mqtt.state_topic(dev), waited) from None
                raise SettleTimeout(
                    dev, dict(tracker.targets), tracker.last_values, waited, tracker.reason()
                ) from None
            raise
        finally:
            self.remove_listener(feed)
        return trackers
