"""Where decoded frames go: per-camera statistics, a short pre-roll, and attached recordings.

Runs on the event loop only. The pre-roll exists because the settle point is the arrival time of
the state message that completed the settle condition, a few milliseconds before the job can attach
its recording: frames that arrived in between are taken from the pre-roll, not lost.

Full rate and idle: while no job needs frames (between jobs, and while a job saves), the stream
clients answer each message late (``stream_client.idle_ack_delay_s``), and a rig that waits for the
answer sends about ten messages a second instead of every frame: reading, decoding and (in the rig)
sending frames nobody records would otherwise take CPU time from the encoders. A job holds
:attr:`FrameRouter.full_rate` from its start (:meth:`FrameRouter.want_full_rate`), so the stream
runs at full rate long before any settle point or recording start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from camera.frames import Frame, Rejection

# Overflow policy of the pre-roll: oldest frames are dropped first once either bound is reached.
PREROLL_MAX_BYTES = 256 * 1024 * 1024
FPS_WINDOW_S = 2.0


class FrameSink(Protocol):
    def on_frame(self, frame: Frame) -> None: ...

    def on_rejection(self, rejection: Rejection, received_mono: float) -> None: ...


@dataclass
class CameraStats:
    frames: int = 0
    rejected: int = 0
    last_frame_mono: float | None = None
    last_frame_at: float | None = None
    last_frame_index: int | None = None
    index_gaps: int = 0  # counted at full rate only: while idle the rig skips frames on purpose
    reasons: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2048))

    def fps(self, now_mono: float) -> float:
        while self.recent and now_mono - self.recent[0] > FPS_WINDOW_S:
            self.recent.popleft()
        return round(len(self.recent) / FPS_WINDOW_S, 2)


class FrameRouter:
    def __init__(self, cameras: Iterable[str], preroll_s: float) -> None:
        self._preroll_s = preroll_s
        self.cameras: dict[str, CameraStats] = {cam: CameraStats() for cam in cameras}
        self.unknown_camera_frames = 0
        self.unreadable_messages = 0
        self._preroll: deque[Frame] = deque()
        self._preroll_bytes = 0
        # Arrival time of the newest frame dropped from the pre-roll: every frame received after it
        # is still held (or was handed to the sinks attached then). See preroll_horizon().
        self._dropped_mono = time.monotonic()
        self._sinks: list[FrameSink] = []
        self.latest: dict[str, Frame] = {}
        self.full_rate = asyncio.Event()  # set while some job wants it (see the module text)
        self._full_rate_wanted: set[str] = set()

    def want_full_rate(self, holder: str, wanted: bool) -> None:
        """``holder`` (a job id) wants the streams at full rate, or no longer does. Idempotent."""
        if wanted:
            self._full_rate_wanted.add(holder)
        else:
            self._full_rate_wanted.discard(holder)
        if self._full_rate_wanted:
            self.full_rate.set()
        else:
            self.full_rate.clear()

    def dispatch(
        self, frames: Iterable[Frame], rejections: Iterable[Rejection], received_mono: float
    ) -> None:
        for frame in frames:
            stats = self.cameras.get(frame.camera_id)
            if stats is None:
                self.unknown_camera_frames += 1
                continue
            stats.frames += 1
            stats.last_frame_mono, stats.last_frame_at = frame.received_mono, frame.received_at
            if frame.frame_index is not None:
                last = stats.last_frame_index
                if last is not None and frame.frame_index > last + 1 and self.full_rate.is_set():
                    stats.index_gaps += 1
                stats.last_frame_index = frame.frame_index
            stats.recent.append(frame.received_mono)
            self.latest[frame.camera_id] = frame
            self._remember(frame)
            for sink in self._sinks:
                sink.on_frame(frame)
        for rej in rejections:
            stats = self.cameras.get(rej.camera_id) if rej.camera_id else None
            if stats is not None:
                stats.rejected += 1
                stats.reasons.append(rej.reason)
            elif rej.camera_id is None:
                self.unreadable_messages += 1
            else:
                self.unknown_camera_frames += 1
            for sink in self._sinks:
                sink.on_rejection(rej, received_mono)

    def _remember(self, frame: Frame) -> None:
        if self._preroll_s <= 0:
            self._dropped_mono = frame.received_mono  # nothing is kept: only what comes next
            return
        self._preroll.append(frame)
        self._preroll_bytes += len(frame.pixels)
        horizon = frame.received_mono - self._preroll_s
        while self._preroll and (
            self._preroll[0].received_mono < horizon or self._preroll_bytes > PREROLL_MAX_BYTES
        ):
            dropped = self._preroll.popleft()
            self._preroll_bytes -= len(dropped.pixels)
            self._dropped_mono = max(self._dropped_mono, dropped.received_mono)

    def preroll_horizon(self) -> float:
        """The earliest start (monotonic) a sink attached now can be given every frame from: every
        frame received strictly after this time is still in the pre-roll. A recording never starts
        earlier (docs/protocol.md §5)."""
        return self._dropped_mono

    @property
    def preroll_bytes(self) -> int:
        """Pixel bytes the pre-roll holds now (they count against a recording's memory cap)."""
        return self._preroll_bytes

    def attach(self, sink: FrameSink, since_mono: float) -> int:
        """Attach a sink and hand it the pre-roll frames received at or after ``since_mono``."""
        replayed = 0
        for frame in self._preroll:
            if frame.received_mono >= since_mono:
                sink.on_frame(frame)
                replayed += 1
        self._sinks.append(sink)
        return replayed

    def detach(self, sink: FrameSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            cam: {
                "frames": s.frames,
                "fps": s.fps(now),
                "rejected_frames": s.rejected,
                "recent_rejections": list(s.reasons),
                "frame_index_gaps": s.index_gaps,
                "last_frame_age_s": round(now - s.last_frame_mono, 3) if s.last_frame_mono else None,
                "last_frame_index": s.last_frame_index,
            }
            for cam, s in self.cameras.items()
        }
