"""A recording: the frames of chosen cameras received inside [start, end), handed to a writer.

Attached to the :class:`camera.router.FrameRouter` at the recording's start (which the router
replays from its pre-roll when it lies a little in the past); the writer encodes and
writes each frame in its thread pool while the recording runs (write-behind), so the loop only
moves references and memory holds only the frames not yet written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from camera.frames import Frame, Rejection
from mqtt_control.hub import StateHub
from rigcore.rig import RigLayout
from rigcore.state import StateSample
from sessions.writer import SessionWriter

# Telemetry samples kept per recording (pan-tilt and range finder at ~10-20 Hz); beyond this the
# newest are dropped and the count of dropped samples is reported.
MAX_TELEMETRY = 20_000
# Gaps listed per recording; a stream that stutters all the time is summarised by the first ones.
MAX_GAPS = 1000


class Recorder:
    def __init__(
        self,
        layout: RigLayout,
        cameras: Iterable[str],
        start_mono: float,
        end_mono: float,
        writer: SessionWriter,
        hub: StateHub,
    ) -> None:
        self._layout = layout
        self.cameras = frozenset(cameras)
        self.start_mono = start_mono
        self.end_mono = end_mono
        self._writer = writer
        self._hub = hub
        self.pose_at_start = hub.pose()
        self.frames_taken = 0
        self.frames_before_start = 0
        self.telemetry: list[dict[str, Any]] = []
        self.telemetry_dropped = 0
        self.first_frame_mono: float | None = None
        self.unreadable_messages = 0
        # frame_index gaps seen inside the recording: frames the rig numbered but we never got.
        self.gaps: list[dict[str, Any]] = []
        self._last: dict[str, tuple[int, float]] = {}
        self._taken: dict[str, int] = {}

    # -- FrameSink -----------------------------------------------------------------------------
    def on_frame(self, frame: Frame) -> None:
        if frame.camera_id not in self.cameras:
            return
        if frame.received_mono < self.start_mono:
            self.frames_before_start += 1
            return
        if frame.received_mono >= self.end_mono:
            return
        if self.first_frame_mono is None:
            self.first_frame_mono = frame.received_mono
        self.frames_taken += 1
        self._taken[frame.camera_id] = self._taken.get(frame.camera_id, 0) + 1
        if frame.frame_index is not None:
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
        self._writer.add(frame, self._hub.frame_pose(frame.camera_id))

    def on_rejection(self, rejection: Rejection, received_mono: float) -> None:
        if not self.start_mono <= received_mono < self.end_mono:
            return
        cam = rejection.camera_id
        if cam is None:
            self.unreadable_messages += 1
        elif cam in self.cameras:
            self._writer.reject(cam, rejection.reason)

    def cut_short(self, end_mono: float) -> None:
        """End the recording early (cancel): frames after ``end_mono`` are not taken."""
        self.end_mono = min(self.end_mono, end_mono)

    # -- state listener ------------------------------------------------------------------------
    def on_state(self, sample: StateSample) -> None:
        if not self.start_mono <= sample.received_mono < self.end_mono:
            return
        entry = self._layout.telemetry_entry(sample)
        if entry is None:
            return
        if len(self.telemetry) >= MAX_TELEMETRY:
            self.telemetry_dropped += 1
            return
        self.telemetry.append(entry)

    def frames_of(self, camera_id: str) -> int:
        """Frames of ``camera_id`` taken so far."""
        return self._taken.get(camera_id, 0)
