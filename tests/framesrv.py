"""A small, real WebSocket frame server for tests that need to know every byte sent.

It speaks docs/protocol.md §4 (msgpack array of packets, ``received`` ack) and produces frames whose
content is a pure function of ``frame_index``, so a test can recompute what any saved frame must be.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
from PIL import Image
from websockets.asyncio.server import ServerConnection, serve

W, H = 64, 48


def mono16(idx: int) -> np.ndarray:
    rng = np.random.default_rng(idx)
    return rng.integers(0, 65536, size=(H, W), dtype=np.uint16)


def bgr8(idx: int) -> np.ndarray:
    rng = np.random.default_rng(10_000 + idx)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def jpeg(idx: int) -> bytes:
    rng = np.random.default_rng(20_000 + idx)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def default_message(idx: int) -> list[dict[str, Any]]:
    """Two packets, three cameras: every frame of every packet must be kept."""
    return [
        {
            "camera_frames": [
                {
                    "device_id": "cameradevice_lwir_1",
                    "frame_index": idx,
                    "timestamp_ns": time.time_ns(),
                    "image_data": {"pixels": mono16(idx).astype("<u2").tobytes(), "width": W, "height": H},
                },
                {
                    "device_id": " cameradevice_rgb_1 ",
                    "frame_index": idx,
                    "timestamp_ns": time.time_ns(),
                    "image_data": {"pixels": jpeg(idx), "width": W, "height": H, "pixel_format": "encoded"},
                },
            ]
        },
        {
            "camera_frames": [
                {
                    "device_id": "cameradevice_swir_1",
                    "frame_index": idx,
                    "timestamp_ns": time.time_ns(),
                    "image_data": {
                        "pixels": bgr8(idx).tobytes(),
                        "width": W,
                        "height": H,
                        "pixel_format": "bgr8",
                    },
                },
            ]
        },
    ]


class FrameServer:
    """Sends ``make_message(i)`` at ``rate_hz`` to each client, waiting for the ack each time."""

    def __init__(
        self,
        make_message: Callable[[int], Any] = default_message,
        rate_hz: float = 20.0,
        raw: Callable[[int], bytes | None] | None = None,
    ) -> None:
        self._make = make_message
        self._raw = raw
        self._period = 1.0 / rate_hz
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self.url = ""
        self.sent = 0

    def __enter__(self) -> FrameServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", 0, max_size=None, compression=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"

    async def _close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handler(self, ws: ServerConnection) -> None:
        idx = 0
        next_t = time.monotonic()
        while True:
            raw = self._raw(idx) if self._raw else None
            data = raw if raw is not None else msgpack.packb(self._make(idx), use_bin_type=True)
            await ws.send(data)
            self.sent += 1
            ack = await asyncio.wait_for(ws.recv(), 5)
            assert ack == "received"
            idx += 1
            next_t += self._period
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
