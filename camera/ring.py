"""The event ring: the last seconds of chosen cameras' frames, kept in warm memory (loop thread only).

A sink of the frame router (camera.router), attached while events are enabled (service.events). It
copies each frame of its cameras into the frame pool's warm memory (camera.pool) and keeps it until
it was captured more than ``seconds`` before the newest frame's arrival, then gives the memory back,
oldest first. Nothing is decoded or encoded here: an event that needs the frames takes them as they
are (:meth:`FrameRing.attach` hands a sink every frame held since a moment, then every new one, each
with the pool buffer that holds its pixels, which the event's writer shares instead of copying).

Overflow policy: besides its length in time, the ring holds at most ``max_bytes`` (the memory cap's
share for it, rigcore.config_events); beyond, the oldest frame of any camera is let go of first. A
frame the pool has no warm buffer for is kept as it arrived (a "cold" frame, counted).

The horizon (:meth:`FrameRing.horizon`): per camera, the capture time of the newest frame let go of
(or of the moment the camera was first kept); every frame captured after it that has arrived is held.
An event never starts before it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from camera.frames import Frame, Rejection
from camera.pool import FramePool, PoolBuffer

# A held frame keeps the first bytes of its pixels beside the pool buffer: enough to tell a JPEG from
# a PNG (camera.frames encoded_kind), so a writer can name the file without reading the buffer.
PREFIX_BYTES = 16


class RingSink(Protocol):
    """What an event attaches to the ring (service.jobs.recorder.Recorder is one)."""

    def on_frame(self, frame: Frame, held: PoolBuffer | None = None) -> None: ...

    def on_rejection(self, rejection: Rejection, received_mono: float) -> None: ...


@dataclass(eq=False, slots=True)
class _Held:
    frame: Frame  # its pixels: the first PREFIX_BYTES when ``buffer`` holds them, else all of them
    buffer: PoolBuffer | None
    nbytes: int


@dataclass(eq=False, slots=True)
class _CameraRing:
    horizon: float  # capture time (monotonic) of the newest frame let go of
    entries: deque[_Held] = field(default_factory=deque)
    bytes: int = 0
    released: int = 0


class FrameRing:
    """See the module text. ``pool`` None: frames are kept as they arrived."""

    def __init__(self, pool: FramePool | None) -> None:
        self._pool = pool
        self._cams: dict[str, _CameraRing] = {}
        self._seconds = 0.0
        self._max_bytes: int | None = None
        self._bytes = 0
        self._sinks: list[RingSink] = []
        self.cold_frames = 0
        self.released_for_bytes = 0  # frames let go of early, to stay within max_bytes

    def configure(
        self, cameras: Iterable[str], seconds: float, max_bytes: int | None, horizon_mono: float
    ) -> None:
        """Keep ``cameras`` for ``seconds`` within ``max_bytes`` from now on; a camera kept from now
        starts with ``horizon_mono``. A shorter length or a lower bound applies at once."""
        chosen = set(cameras)
        for cam in [c for c in self._cams if c not in chosen]:
            self._drop(self._cams.pop(cam))
        for cam in chosen - set(self._cams):
            self._cams[cam] = _CameraRing(horizon_mono)
        self._seconds, self._max_bytes = seconds, max_bytes
        self._evict(time.monotonic())

    @property
    def cameras(self) -> frozenset[str]:
        return frozenset(self._cams)

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        """Let go of every frame and camera (events disabled)."""
        self.configure((), 0.0, None, time.monotonic())

    # -- FrameSink (camera.router) -------------------------------------------------------------
    def on_frame(self, frame: Frame) -> None:
        ring = self._cams.get(frame.camera_id)
        if ring is not None:
            held = self._hold(frame)
            ring.entries.append(held)
            ring.bytes += held.nbytes
            self._bytes += held.nbytes
            self._evict(frame.received_mono)
            frame, buffer = held.frame, held.buffer
        else:
            buffer = None
        for sink in self._sinks:
            sink.on_frame(frame, buffer)

    def on_rejection(self, rejection: Rejection, received_mono: float) -> None:
        for sink in self._sinks:
            sink.on_rejection(rejection, received_mono)

    def _hold(self, frame: Frame) -> _Held:
        buffer = self._pool.copy_in(frame.pixels) if self._pool is not None else None
        if buffer is None:
            self.cold_frames += 1
            return _Held(frame, None, len(frame.pixels))
        # The message's bytes can go now: the buffer holds the pixels.
        return _Held(dataclasses.replace(frame, pixels=frame.pixels[:PREFIX_BYTES]), buffer, buffer.nbytes)

    # -- events --------------------------------------------------------------------------------
    def attach(self, sink: RingSink, since_mono: float) -> int:
        """Hand ``sink`` every frame held that was captured at or after ``since_mono``, then every
        frame that comes (of any camera; the sink picks its own). Returns how many were handed."""
        handed = 0
        for ring in self._cams.values():
            for held in ring.entries:
                if held.frame.captured_mono >= since_mono:
                    sink.on_frame(held.frame, held.buffer)
                    handed += 1
        self._sinks.append(sink)
        return handed

    def detach(self, sink: RingSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def horizon(self, cameras: Iterable[str]) -> float:
        """The earliest capture time (monotonic) from which the ring holds every frame of
        ``cameras`` that has arrived (see the module text); +inf for a camera it does not keep."""
        return max((self._cams[c].horizon if c in self._cams else float("inf") for c in cameras), default=0.0)

    # -- letting go ----------------------------------------------------------------------------
    def _evict(self, now_mono: float) -> None:
        oldest = now_mono - self._seconds
        for ring in self._cams.values():
            while ring.entries and ring.entries[0].frame.captured_mono < oldest:
                self._release(ring)
        while self._max_bytes is not None and self._bytes > self._max_bytes:
            ring = min(
                (r for r in self._cams.values() if r.entries),
                key=lambda r: r.entries[0].frame.captured_mono,
            )
            self._release(ring)
            self.released_for_bytes += 1

    def _release(self, ring: _CameraRing) -> None:
        held = ring.entries.popleft()
        ring.bytes -= held.nbytes
        self._bytes -= held.nbytes
        ring.released += 1
        ring.horizon = max(ring.horizon, held.frame.captured_mono)
        if held.buffer is not None and self._pool is not None:
            self._pool.release(held.buffer)

    def _drop(self, ring: _CameraRing) -> None:
        while ring.entries:
            self._release(ring)

    # -- /status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per camera the seconds an event can reach back now, frames and bytes held, frames let go of."""
        now = time.monotonic()
        return {
            "cameras": {
                cam: {
                    "seconds": round(max(0.0, min(self._seconds, now - ring.horizon)), 2),
                    "frames": len(ring.entries),
                    "bytes": ring.bytes,
                    "released": ring.released,
                }
                for cam, ring in sorted(self._cams.items())
            },
            "bytes": self._bytes,
            "max_bytes": self._max_bytes,
            "cold_frames": self.cold_frames,
            "released_for_bytes": self.released_for_bytes,
        }


__all__ = ["PREFIX_BYTES", "FrameRing", "RingSink"]
