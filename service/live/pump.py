"""Live images: the newest frame of each camera, at most ``max_fps`` a second, encoded off the loop.

Like the dashboard's live view, the pump reads the frame router's newest frame per camera
(``FrameRouter.latest``); it never attaches to the router, so the recording path does not know it is
there. One task per camera on the event loop wakes every ``1 / max_fps`` seconds and, when somebody
subscribes to that camera's channel and a frame has come since the last one sent, hands that frame
to the live encoder thread and waits for it. Bounds and overflow policy:

* per camera at most one frame is being encoded; the frames that come meanwhile are skipped (the
  newest wins at the next tick), so a slow encoder lowers the live rate, never the capture's;
* the frame is a router frame (its pixels are the received message's bytes, never a buffer of the
  recorder's warm pool, camera.pool): the pump holds it only while it is encoded and keeps no
  reference afterwards (it remembers the frame's arrival time, not the frame);
* per client the SDK queues at most ``BACKLOG`` messages and drops the oldest when a client reads
  too slowly (service.live.server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

from camera.frames import Frame
from service.live.images import frame_times
from service.live.rig import Publisher

log = logging.getLogger(__name__)

# How often an encoding error is logged again for one camera (it is counted every time).
ERROR_LOG_EVERY_S = 60.0

Encoder = Callable[[Frame], bytes]


@dataclass
class CameraCount:
    sent: int = 0
    errors: int = 0
    last_error: str | None = None
    last_logged: float = float("-inf")


class ImagePump:
    """One camera task each (:meth:`camera_loop`), started and cancelled by service.live.server."""

    def __init__(
        self,
        latest: Mapping[str, Frame],
        channels: Mapping[str, Publisher],
        encode: Encoder,
        executor: Executor,
        period_s: float,
    ) -> None:
        self._latest = latest
        self._channels = channels
        self._encode = encode
        self._executor = executor
        self._period = period_s
        self.counts: dict[str, CameraCount] = {cam: CameraCount() for cam in channels}

    async def camera_loop(self, camera_id: str) -> None:
        loop = asyncio.get_running_loop()
        channel = self._channels[camera_id]
        last: tuple[float, int | None] | None = None
        while True:
            started = loop.time()
            frame = self._latest.get(camera_id)
            if frame is not None and (frame.received_mono, frame.frame_index) != last and channel.has_sinks():
                last = (frame.received_mono, frame.frame_index)
                await loop.run_in_executor(self._executor, self._publish, camera_id, frame, channel)
            frame = None  # held no longer than its encoding
            await asyncio.sleep(max(0.0, self._period - (loop.time() - started)))

    def _publish(self, camera_id: str, frame: Frame, channel: Publisher) -> None:
        """On the encoder thread: encode and log one frame; an error is counted, never raised."""
        count = self.counts[camera_id]
        try:
            data = self._encode(frame)
            channel.log(data, log_time=frame_times(frame)[0])
        except Exception as exc:  # cv2, protobuf or the SDK: the live view goes on with the next frame
            count.errors += 1
            count.last_error = f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if now - count.last_logged >= ERROR_LOG_EVERY_S:
                count.last_logged = now
                log.warning("live view of %s: %s (%d so far)", camera_id, count.last_error, count.errors)
            return
        count.sent += 1


__all__ = ["ImagePump"]
