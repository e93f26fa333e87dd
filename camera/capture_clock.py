"""Capture time per frame (docs/protocol.md §5): a camera's stamps, judged plausible, or its arrival.

Pure logic, no I/O: the frame router feeds each frame's ``timestamp_ns`` and arrival time to its
camera's :class:`CaptureClock` and gets the frame's capture time on the service's clocks back.

The rules, per camera:

* A frame with ``timestamp_ns`` is captured at that stamp (epoch ns on the rig's clock, which the rig
  keeps in sync with NTP or PTP), unless the camera's clock has **failed**. Its delay is
  ``arrival − capture``.
* The clock fails when a stamp is **ahead** of its arrival by more than ``ahead_tolerance_s``, when
  stamps go **backwards**, or when the **smallest** delay over a sliding window of ``window_s``
  stays above ``max_delay_s`` (**late**). The smallest delay is what a prompt frame shows; a backlog
  (the rig's send queue draining) raises the delays of the frames behind it but not the minimum of a
  window longer than the backlog, so a backlog does not count against the clock. Only frames read at
  full rate count for "late": while the service answers the stream late on purpose (idle, see
  camera.router) a rig that queues frames builds a backlog by design.
* A failed clock, and a camera that sends no stamps, time their frames by **arrival** less the
  camera's ``latency_s``; the frame says which (:class:`TimeSource`). A failed clock is trusted again
  once a whole window has passed with plausible stamps (and, after "late", a window whose smallest
  delay is back under the bound).
* Until a camera's delay has been judged over one whole window at full rate, its clock asks for the
  stream at full rate (:attr:`CaptureClock.probing`): a verdict is ready before the first recording
  needs it, rather than turning up in the middle of one. A delay that stays flat above the bound for
  a second (a slow pipeline, not a backlog, whose delays fall as it drains) is judged at once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rigcore.config import CaptureTimeConfig

# Verdict changes remembered per camera (oldest dropped first): enough for any recording to look back.
MAX_EVENTS = 64
# How long after its first frame a camera may keep the stream at full rate to prove its clock (in
# windows): a camera that stops sending must not hold the full rate forever.
PROBE_WINDOWS = 3
# The early "late" verdict (CaptureClock._steadily_late): at least this long and this many frames at
# full rate, every delay above the bound and within this spread of the smallest.
EARLY_S = 1.0
EARLY_FRAMES = 5
FLAT_S = 0.15
FLAT_SHARE = 0.1


class TimeSource(StrEnum):
    STAMP = "stamp"
    ARRIVAL = "arrival"  # no stamp on the frame
    FALLBACK = "fallback"  # the camera's clock has failed


class ClockStatus(StrEnum):
    UNKNOWN = "unknown"  # no frame yet
    OK = "ok"
    FAILED = "failed"
    NO_STAMPS = "no_stamps"


@dataclass(frozen=True, slots=True)
class CaptureTime:
    """When a frame was captured, on the service's clocks, and how that was known."""

    mono: float  # time.monotonic() scale
    at: float  # epoch seconds (the service's clock)
    source: TimeSource


@dataclass(frozen=True, slots=True)
class ClockEvent:
    """A change of a camera clock's verdict."""

    seq: int
    at: float  # epoch seconds
    status: ClockStatus
    reason: str | None


class CaptureClock:
    """One camera's capture clock (loop thread only)."""

    def __init__(self, cfg: CaptureTimeConfig, latency_s: float = 0.0) -> None:
        self._cfg = cfg
        self.latency_s = latency_s
        self.status = ClockStatus.UNKNOWN
        self.reason: str | None = None
        self._failure: str | None = None  # "stamps" or "late" while failed
        self._last_ns: int | None = None
        # Full-rate delays of the current window as (arrival mono, delay), and a deque of candidates
        # for its minimum (increasing delays): the window's smallest delay in O(1).
        self._window: deque[tuple[float, float]] = deque()
        self._mins: deque[tuple[float, float]] = deque()
        self._full_since: float | None = None
        self._good_since: float | None = None  # while failed: since when stamps were plausible
        self._first_mono: float | None = None
        self.proven = False  # a whole window was judged at full rate
        self.delay_s: float | None = None  # of the newest stamped frame
        self.events: deque[ClockEvent] = deque(maxlen=MAX_EVENTS)
        self._seq = 0

    # -- the one entry -----------------------------------------------------------------------------
    def time_of(
        self, timestamp_ns: int | None, received_at: float, received_mono: float, full_rate: bool
    ) -> CaptureTime:
        """The capture time of a frame that arrived at ``received_at``/``received_mono``."""
        if self._first_mono is None:
            self._first_mono = received_mono
        if timestamp_ns is None:
            if self.status is ClockStatus.UNKNOWN:
                self._set(ClockStatus.NO_STAMPS, "the camera sends no timestamp_ns", received_at)
            return self._arrival(received_at, received_mono, TimeSource.ARRIVAL)
        delay = received_at - timestamp_ns / 1e9
        self.delay_s = delay
        self._judge(timestamp_ns, delay, received_at, received_mono, full_rate)
        self._last_ns = timestamp_ns
        if self.status is ClockStatus.FAILED:
            return self._arrival(received_at, received_mono, TimeSource.FALLBACK)
        return CaptureTime(received_mono - delay, timestamp_ns / 1e9, TimeSource.STAMP)

    def _arrival(self, received_at: float, received_mono: float, source: TimeSource) -> CaptureTime:
        return CaptureTime(received_mono - self.latency_s, received_at - self.latency_s, source)

    # -- judging -----------------------------------------------------------------------------------
    def _judge(self, ts: int, delay: float, at: float, mono: float, full_rate: bool) -> None:
        problem = self._stamp_problem(ts, delay)
        late = self._late(delay, mono, full_rate)
        if problem is not None:
            self._good_since = None
            self._fail("stamps", problem, at)
        elif late is not None and late > self._cfg.max_delay_s:
            self._fail(
                "late",
                f"its smallest delay over {self._cfg.window_s:g} s was {late:.2f} s, above "
                f"max_delay_s {self._cfg.max_delay_s:g} s",
                at,
            )
        elif self.status is ClockStatus.FAILED:
            self._maybe_recover(late, at, mono)
        elif self.status is not ClockStatus.OK:
            self._set(ClockStatus.OK, None, at)

    def _stamp_problem(self, ts: int, delay: float) -> str | None:
        if delay < -self._cfg.ahead_tolerance_s:
            return (
                f"its stamps are {-delay:.2f} s ahead of their arrival "
                f"(tolerance {self._cfg.ahead_tolerance_s:g} s)"
            )
        if self._last_ns is not None and ts < self._last_ns:
            return f"its stamps went backwards by {(self._last_ns - ts) / 1e9:.3f} s"
        return None

    def _late(self, delay: float, mono: float, full_rate: bool) -> float | None:
        """The smallest delay over the last whole window read at full rate; None until there is one."""
        if not full_rate:
            self._full_since = None
            return None
        if self._full_since is None:
            # The first frames at full rate are the backlog the idle rate left: start a fresh window.
            self._full_since = mono
            self._window.clear()
            self._mins.clear()
        self._window.append((mono, delay))
        while self._mins and self._mins[-1][1] >= delay:
            self._mins.pop()
        self._mins.append((mono, delay))
        horizon = mono - self._cfg.window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()
        while self._mins and self._mins[0][0] < horizon:
            self._mins.popleft()
        if mono - self._full_since < self._cfg.window_s and not self._steadily_late(mono):
            return None
        self.proven = True
        return self._mins[0][1]

    def _steadily_late(self, mono: float) -> bool:
        """An early verdict: for a second or more at full rate every frame was later than the bound by
        about the same delay. A backlog draining shows falling delays, a reader falling behind rising
        ones; a flat delay is the camera's own (a pipeline, a clock behind), and waiting out the rest
        of the window would only let a recording start on stamps that are about to be refused."""
        since = self._full_since
        early = min(EARLY_S, self._cfg.window_s)
        if since is None or mono - since < early or len(self._window) < EARLY_FRAMES:
            return False
        smallest = self._mins[0][1]
        if smallest <= self._cfg.max_delay_s:
            return False
        largest = max(d for _, d in self._window)
        return largest - smallest <= max(FLAT_S, FLAT_SHARE * smallest)

    def _maybe_recover(self, late: float | None, at: float, mono: float) -> None:
        if self._good_since is None:
            self._good_since = mono
        # After "late": a whole window whose smallest delay is back under the bound (``late`` is
        # under it whenever it is given here). After bad stamps: a whole window of good ones.
        whole_window = mono - self._good_since >= self._cfg.window_s
        if late is not None if self._failure == "late" else whole_window:
            self._set(ClockStatus.OK, None, at)

    def _fail(self, kind: str, reason: str, at: float) -> None:
        self._good_since = None
        if self.status is not ClockStatus.FAILED or self._failure != kind:
            self._set(ClockStatus.FAILED, reason, at)
            self._failure = kind
        else:
            self.reason = reason  # the figures move; the verdict does not

    def _set(self, status: ClockStatus, reason: str | None, at: float) -> None:
        self.status, self.reason = status, reason
        if status is not ClockStatus.FAILED:
            self._failure = None
        self._seq += 1
        self.events.append(ClockEvent(self._seq, at, status, reason))

    # -- queries -----------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """Increases with every verdict change (a recording notes it at its start)."""
        return self._seq

    def events_since(self, seq: int) -> list[ClockEvent]:
        return [e for e in self.events if e.seq > seq]

    def probing(self, now_mono: float) -> bool:
        """Whether this clock wants the stream at full rate to judge its delay (see the module text)."""
        if self.proven or self._first_mono is None or self.status is ClockStatus.NO_STAMPS:
            return False
        return now_mono - self._first_mono < PROBE_WINDOWS * self._cfg.window_s

    def min_delay_s(self) -> float | None:
        return self._mins[0][1] if self._mins else None

    def status_json(self) -> dict[str, Any]:
        """For /status: the verdict, why, and the delays now."""
        return {
            "status": str(self.status),
            "reason": self.reason,
            "delay_s": _round(self.delay_s),
            "min_delay_s": _round(self.min_delay_s()),
            "latency_s": self.latency_s,
            "judged": self.proven,  # its delay was judged over a whole window at full rate
        }


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)
