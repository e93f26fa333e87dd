"""A recording: the frames of chosen cameras **captured** inside [start, end), handed to a writer.

Membership follows each frame's capture time (camera.capture_clock, docs/protocol.md §5), never its
arrival: frames travel behind the state topics, so a frame that arrives after the settle point may
have been captured while the rig still moved; it is dropped, wherever it arrives. Frames captured
before the window (the rig's backlog, the move) and after it are only counted, never written.

Attached to the :class:`camera.router.FrameRouter` at the recording's start (which the router
replays from its pre-roll when it lies a little in the past); the writer encodes and writes each
frame in its thread pool while the recording runs (write-behind), so the loop only moves references
and memory holds only the frames not yet written. The window closes once every camera has delivered
a frame captured after its end and the pan-tilt a state sample received after it
(:attr:`Recorder.all_confirmed`: every frame's pose then lies between two samples), or the recording
stops waiting.

The recorder also keeps the rig's state samples (every device) from the batch start on: the pose of
each frame at its capture time is looked up in them when the session is saved
(rigcore.pose_timeline), and they are kept with the session (sessions.state_log).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any

from camera.capture_clock import CaptureClock, ClockStatus, TimeSource
from camera.frames import Frame, Rejection
from camera.pool import PoolBuffer
from mqtt_control.hub import StateHub
from rigcore.rig import RigLayout
from rigcore.state import StateSample
from sessions.state_log import MAX_STATE_SAMPLES
from sessions.writer import SessionWriter

# Gaps listed per recording; a stream that stutters all the time is summarised by the first ones.
MAX_GAPS = 1000


class Recorder:
    def __init__(
        self,
        layout: RigLayout,
        cameras: Iterable[str],
        window: tuple[float, float],
        writer: SessionWriter,
        hub: StateHub,
        clocks: Mapping[str, CaptureClock],
    ) -> None:
        self._layout = layout
        self.cameras = frozenset(cameras)
        self.start_mono, self.end_mono = window
        self._writer = writer
        self._clocks = {cam: clocks[cam] for cam in self.cameras if cam in clocks}
        self._clock_seq = {cam: clock.seq for cam, clock in self._clocks.items()}
        self.pose_at_start = hub.pose()
        self.frames_taken = 0
        self.dropped_before = 0
        self.dropped_after = 0
        self.latest_dropped_before: float | None = None  # capture time (epoch) of the newest of those
        self.earliest_saved: float | None = None  # capture time (epoch) of the earliest frame taken
        self.first_frame_mono: float | None = None  # capture time (monotonic) of that frame
        self.unreadable_messages = 0
        # frame_index gaps seen inside the recording: frames the rig numbered but we never got.
        self.gaps: list[dict[str, Any]] = []
        self._last: dict[str, tuple[int, float]] = {}
        self._taken: dict[str, int] = {}
        self._delays: dict[str, list[float]] = {cam: [] for cam in self.cameras}
        self._confirmed: set[str] = set()
        # A pan-tilt sample received after the end: every frame inside has a sample on both sides, so
        # its pose is interpolated at its capture time rather than held from the last one before it.
        self._pose_after_end = False
        self.cameras_confirmed_mono: float | None = None  # when the last camera confirmed (monotonic)
        # Every camera delivered a frame captured after the end, and the pan-tilt a sample after it.
        self.all_confirmed = asyncio.Event()
        self.states: list[StateSample] = []
        self.states_dropped = 0

    # -- FrameSink -----------------------------------------------------------------------------
    def on_frame(self, frame: Frame, held: PoolBuffer | None = None) -> None:
        """``held``: the pool buffer holding the frame's pixels (an event's frames, camera.ring)."""
        if frame.camera_id not in self.cameras:
            return
        t = frame.captured_mono
        if t < self.start_mono:
            self.dropped_before += 1
            latest, at = self.latest_dropped_before, frame.captured_at
            self.latest_dropped_before = at if latest is None else max(latest, at)
            return
        if t >= self.end_mono:
            self.dropped_after += 1
            self._confirm(frame.camera_id)
            return
        self._take(frame, held)

    def _take(self, frame: Frame, held: PoolBuffer | None) -> None:
        if self.first_frame_mono is None or frame.captured_mono < self.first_frame_mono:
            self.first_frame_mono = frame.captured_mono
            self.earliest_saved = frame.captured_at
        self.frames_taken += 1
        self._taken[frame.camera_id] = self._taken.get(frame.camera_id, 0) + 1
        if frame.time_source == TimeSource.STAMP:
            self._delays[frame.camera_id].append(frame.received_mono - frame.captured_mono)
        self._note_gap(frame)
        self._writer.add(frame, held=held)

    def _note_gap(self, frame: Frame) -> None:
        if frame.frame_index is None:
            return
        last = self._last.get(frame.camera_id)
        if last is not None and frame.frame_index > last[0] + 1 and len(self.gaps) < MAX_GAPS:
            self.gaps.append(
                {
                    "camera_id": frame.camera_id,
                    "missing_frame_index": [last[0] + 1, frame.frame_index - 1],
                    "missing_frames": frame.frame_index - last[0] - 1,
                    "from_received_at": last[1],
                    "to_received_at": frame.received_at,
                }
            )
        self._last[frame.camera_id] = (frame.frame_index, frame.received_at)

    def _confirm(self, camera_id: str) -> None:
        self._confirmed.add(camera_id)
        self._check_confirmed()

    def _check_confirmed(self) -> None:
        if self._confirmed >= self.cameras:
            if self.cameras_confirmed_mono is None:
                self.cameras_confirmed_mono = time.monotonic()
            if self._pose_after_end:
                self.all_confirmed.set()

    def on_rejection(self, rejection: Rejection, received_mono: float) -> None:
        # A rejected frame has no capture time: counted while the recording is attached.
        if received_mono < self.start_mono:
            return
        cam = rejection.camera_id
        if cam is None:
            self.unreadable_messages += 1
        elif cam in self.cameras:
            self._writer.reject(cam, rejection.reason)

    def cut_short(self, end_mono: float) -> None:
        """End the recording early (cancel): frames captured after ``end_mono`` are not taken."""
        self.end_mono = min(self.end_mono, end_mono)

    # -- state listener ------------------------------------------------------------------------
    def on_state(self, sample: StateSample) -> None:
        if (
            sample.device_id == self._layout.pantilt_id
            and sample.received_mono >= self.end_mono
            and not sample.retained  # an old message the broker replays on (re)subscribing
        ):
            self._pose_after_end = True
            self._check_confirmed()
        if len(self.states) >= MAX_STATE_SAMPLES:
            self.states_dropped += 1
            return
        self.states.append(sample)

    # -- what it found -------------------------------------------------------------------------
    def frames_of(self, camera_id: str) -> int:
        """Frames of ``camera_id`` taken so far."""
        return self._taken.get(camera_id, 0)

    def unconfirmed(self) -> list[str]:
        """Cameras that have not delivered a frame captured after the end (sorted)."""
        return sorted(self.cameras - self._confirmed)

    def delay_stats(self) -> dict[str, dict[str, Any]]:
        """Per camera, arrival − capture of its stamped frames taken: median, p99, max (seconds)."""
        return {cam: _spread(delays) for cam, delays in sorted(self._delays.items()) if delays}

    def clock_report(self) -> dict[str, dict[str, Any]]:
        """Per camera, its clock's verdict now and every failure seen since the recording began."""
        out = {}
        for cam, clock in sorted(self._clocks.items()):
            events = clock.events_since(self._clock_seq[cam])
            reasons = [e.reason for e in events if e.reason and e.status == ClockStatus.FAILED]
            if clock.status == ClockStatus.FAILED and clock.reason and clock.reason not in reasons:
                reasons.insert(0, clock.reason)
            out[cam] = {"status": str(clock.status), "reasons": reasons}
        return out


def _spread(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered), 4),
        "p99": round(p99, 4),
        "max": round(ordered[-1], 4),
        "frames": len(ordered),
    }
