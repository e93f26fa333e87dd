"""The rig's state samples of the last seconds, kept for events (loop thread only).

An event's frames reach back up to ``events.pre_max_s``, and each frame's pose is the rig's state at
its capture time (rigcore.pose_timeline), so the state samples of that span are kept too: every
device's samples received within the last ``seconds``, and each device's newest sample before them
(the value it held when the span began). A listener of the state hub (mqtt_control.hub).

Overflow policy: at most ``max_samples`` are kept; beyond, the oldest are dropped first (and
counted). At 5-20 messages a second per device, the default bound covers far more than any ring.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rigcore.state import StateSample
from sessions.state_log import MAX_STATE_SAMPLES


class StateRing:
    def __init__(self, seconds: float, max_samples: int = MAX_STATE_SAMPLES) -> None:
        self._seconds = seconds
        self._max = max_samples
        self._samples: deque[StateSample] = deque()
        self._before: dict[str, StateSample] = {}  # per device, the newest sample let go of
        self.dropped = 0

    def resize(self, seconds: float) -> None:
        self._seconds = seconds
        if self._samples:
            self._trim(self._samples[-1].received_mono)

    def seed(self, samples: Iterable[StateSample]) -> None:
        """Samples received before this ring listened (the hub's history), oldest first."""
        for sample in sorted(samples, key=lambda s: s.received_mono):
            self.on_state(sample)

    def clear(self) -> None:
        self._samples.clear()
        self._before.clear()

    def on_state(self, sample: StateSample) -> None:
        self._samples.append(sample)
        self._trim(sample.received_mono)

    def _trim(self, now_mono: float) -> None:
        oldest = now_mono - self._seconds
        while self._samples and (self._samples[0].received_mono < oldest or len(self._samples) > self._max):
            gone = self._samples.popleft()
            self._before[gone.device_id] = gone
            if gone.received_mono >= oldest:
                self.dropped += 1

    def since(self, mono: float) -> list[StateSample]:
        """Every sample received at or after ``mono``, and each device's newest one before it, oldest
        first."""
        before = dict(self._before)
        after = []
        for sample in self._samples:
            if sample.received_mono < mono:
                before[sample.device_id] = sample
            else:
                after.append(sample)
        return sorted(before.values(), key=lambda s: s.received_mono) + after

    def __len__(self) -> int:
        return len(self._samples)


__all__ = ["StateRing"]
