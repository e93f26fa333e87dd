"""Where decoded frames go: per-camera statistics, a short pre-roll, and attached recordings.

Runs on the event loop only. Every frame is given its capture time here (camera.capture_clock:
its stamp, or its arrival when the camera's clock cannot be trusted) before any sink sees it; sinks
judge frames by that time, never by arrival (docs/protocol.md §5). The pre-roll exists because the
settle point is the arrival time of the state message that completed the settle condition, a few
milliseconds before the job can attach its recording: frames captured after it that arrived in
between are taken from the pre-roll, not lost.

Full rate and idle: while no job needs frames (between jobs, and while a job saves), the stream
clients answer each message late (``stream_client.idle_ack_delay_s``), and a rig that waits for the
answer sends about ten messages a second instead of every frame: reading, decoding and (in the rig)
sending frames nobody records would otherwise take CPU time from the encoders. A job holds
:attr:`FrameRouter.full_rate` from its start (:meth:`FrameRouter.want_full_rate`), so the stream
runs at full rate long before any settle point or recording start. The event ring's cameras run at
full rate all the time (:meth:`FrameRouter.keep_full_rate`): it keeps every frame of the last seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from camera.capture_clock import CaptureClock
from camera.frames import Frame, Rejection
from rigcore.config import CaptureTimeConfig

# Overflow policy of the pre-roll: oldest frames are dropped first once either bound is reached.
PREROLL_MAX_BYTES = 256 * 1024 * 1024
FPS_WINDOW_S = 2.0
# The holder of the full rate while a camera's clock is being judged (camera.capture_clock).
CLOCK_PROBE = "capture-clock"


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
    # The byte rate (what the disk guard estimates a recording's size from): frames' sizes over the
    # last FPS_WINDOW_S, and the rate last measured while the stream ran at full rate for a whole window.
    recent_bytes: deque[tuple[float, int]] = field(default_factory=deque)
    window_bytes: int = 0
    full_rate_bps: float | None = None

    def fps(self, now_mono: float) -> float:
        while self.recent and now_mono - self.recent[0] > FPS_WINDOW_S:
            self.recent.popleft()
        return round(len(self.recent) / FPS_WINDOW_S, 2)

    def count_bytes(self, now_mono: float, size: int, full_rate_for_s: float | None) -> None:
        self.recent_bytes.append((now_mono, size))
        self.window_bytes += size
        while now_mono - self.recent_bytes[0][0] > FPS_WINDOW_S:
            self.window_bytes -= self.recent_bytes.popleft()[1]
        if full_rate_for_s is not None and full_rate_for_s >= FPS_WINDOW_S:
            self.full_rate_bps = self.window_bytes / FPS_WINDOW_S

    def byte_rate(self, now_mono: float) -> float:
        """Bytes per second received now, or at full rate when that was more (while no job needs
        frames the stream is slowed down on purpose, see the module text)."""
        while self.recent_bytes and now_mono - self.recent_bytes[0][0] > FPS_WINDOW_S:
            self.window_bytes -= self.recent_bytes.popleft()[1]
        return max(self.window_bytes / FPS_WINDOW_S, self.full_rate_bps or 0.0)


class FrameRouter:
    def __init__(
        self,
        cameras: Iterable[str],
        preroll_s: float,
        capture_time: CaptureTimeConfig | None = None,
        latencies: Mapping[str, float] | None = None,
    ) -> None:
        self._preroll_s = preroll_s
        self.cameras: dict[str, CameraStats] = {cam: CameraStats() for cam in cameras}
        cfg = capture_time or CaptureTimeConfig()
        self.clocks: dict[str, CaptureClock] = {
            cam: CaptureClock(cfg, (latencies or {}).get(cam, 0.0)) for cam in self.cameras
        }
        self.unknown_camera_frames = 0
        self.unreadable_messages = 0
        self._preroll: deque[Frame] = deque()
        self._preroll_bytes = 0
        # Capture time of the newest frame dropped from the pre-roll: every frame captured after it
        # that has arrived is still held (or was handed to the sinks attached then). See
        # preroll_horizon().
        self._dropped_mono = time.monotonic()
        self._sinks: list[FrameSink] = []
        self.latest: dict[str, Frame] = {}
        self.full_rate = asyncio.Event()  # set while some job wants it (see the module text)
        self._full_rate_wanted: set[str] = set()
        self._full_rate_since: float | None = None  # monotonic; None while idle
        # Cameras at full rate whatever the jobs want (the event ring), and since when.
        self.full_rate_cameras: frozenset[str] = frozenset()
        self._cameras_full_since = time.monotonic()

    def keep_full_rate(self, cameras: Iterable[str]) -> None:
        """The streams of ``cameras`` run at full rate from now on, jobs or not (the event ring);
        an empty set ends that. Idempotent."""
        chosen = frozenset(cameras)
        if chosen != self.full_rate_cameras:
            self.full_rate_cameras, self._cameras_full_since = chosen, time.monotonic()

    def at_full_rate(self, camera_id: str) -> bool:
        return self.full_rate.is_set() or camera_id in self.full_rate_cameras

    def _full_for(self, camera_id: str, now_mono: float) -> float | None:
        """How long ``camera_id``'s stream has run at full rate (None: idle now)."""
        since = [self._full_rate_since] if self._full_rate_since is not None else []
        if camera_id in self.full_rate_cameras:
            since.append(self._cameras_full_since)
        return now_mono - min(since) if since else None

    def want_full_rate(self, holder: str, wanted: bool) -> None:
        """``holder`` (a job id) wants the streams at full rate, or no longer does. Idempotent."""
        if wanted:
            self._full_rate_wanted.add(holder)
        else:
            self._full_rate_wanted.discard(holder)
        if self._full_rate_wanted:
            if not self.full_rate.is_set():
                self._full_rate_since = time.monotonic()
            self.full_rate.set()
        else:
            self.full_rate.clear()
            self._full_rate_since = None

    def dispatch(
        self, frames: Iterable[Frame], rejections: Iterable[Rejection], received_mono: float
    ) -> None:
        for raw in frames:
            stats = self.cameras.get(raw.camera_id)
            if stats is None:
                self.unknown_camera_frames += 1
                continue
            frame = self._timed(raw)
            stats.frames += 1
            stats.last_frame_mono, stats.last_frame_at = frame.received_mono, frame.received_at
            if frame.frame_index is not None:
                last = stats.last_frame_index
                if last is not None and frame.frame_index > last + 1 and self.at_full_rate(raw.camera_id):
                    stats.index_gaps += 1
                stats.last_frame_index = frame.frame_index
            stats.recent.append(frame.received_mono)
            full_for = self._full_for(frame.camera_id, frame.received_mono)
            stats.count_bytes(frame.received_mono, len(frame.pixels), full_for)
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

    def _timed(self, frame: Frame) -> Frame:
        """The frame with its capture time; holds the full rate while a camera's clock is judged."""
        clock = self.clocks[frame.camera_id]
        capture = clock.time_of(
            frame.timestamp_ns, frame.received_at, frame.received_mono, self.at_full_rate(frame.camera_id)
        )
        probing = clock.probing(frame.received_mono)
        if probing != (CLOCK_PROBE in self._full_rate_wanted):
            probing = any(c.probing(frame.received_mono) for c in self.clocks.values())
            self.want_full_rate(CLOCK_PROBE, probing)
        return dataclasses.replace(frame, capture=capture)

    def _remember(self, frame: Frame) -> None:
        if self._preroll_s <= 0:
            self._dropped_mono = max(self._dropped_mono, frame.captured_mono)  # nothing is kept
            return
        self._preroll.append(frame)
        self._preroll_bytes += len(frame.pixels)
        horizon = frame.received_mono - self._preroll_s
        while self._preroll and (
            self._preroll[0].received_mono < horizon or self._preroll_bytes > PREROLL_MAX_BYTES
        ):
            dropped = self._preroll.popleft()
            self._preroll_bytes -= len(dropped.pixels)
            self._dropped_mono = max(self._dropped_mono, dropped.captured_mono)

    def preroll_horizon(self) -> float:
        """The earliest start (monotonic, capture time) a sink attached now can be given every frame
        from: every frame captured strictly after this time is still in the pre-roll or not yet
        arrived (a camera's frames arrive in capture order). A recording never starts earlier
        (docs/protocol.md §5)."""
        return self._dropped_mono

    @property
    def preroll_bytes(self) -> int:
        """Pixel bytes the pre-roll holds now (they count against a recording's memory cap)."""
        return self._preroll_bytes

    def attach(self, sink: FrameSink, since_mono: float) -> int:
        """Attach a sink and hand it the pre-roll frames captured at or after ``since_mono``."""
        replayed = 0
        for frame in self._preroll:
            if frame.captured_mono >= since_mono:
                sink.on_frame(frame)
                replayed += 1
        self._sinks.append(sink)
        return replayed

    def detach(self, sink: FrameSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def byte_rates(self) -> dict[str, float]:
        """Per camera, the bytes per second it sends (camera.router CameraStats.byte_rate)."""
        now = time.monotonic()
        return {cam: s.byte_rate(now) for cam, s in self.cameras.items()}

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
                # How its frames are timed now, and how far behind capture they arrive.
                "capture_clock": self.clocks[cam].status_json(),
            }
            for cam, s in self.cameras.items()
        }
