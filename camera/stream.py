"""WebSocket frame streams (docs/protocol.md §4): one reconnecting client per configured URL.

Each binary message is decoded by :func:`camera.frames.decode_message`, routed, and only then
acknowledged with ``received`` — so a recording that ends on a timer has seen every frame stamped
before its end, and a rig that waits for the ack is slowed rather than made to drop frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from camera.frames import decode_message
from camera.router import FrameRouter
from rigcore.config import StreamClientConfig

log = logging.getLogger(__name__)

ACK = "received"
# Outages remembered per stream (oldest dropped first): enough for any recording to look back on.
MAX_OUTAGES = 100


@dataclass
class StreamOutage:
    """A span during which a stream was not connected (for sessions that span it)."""

    started_at: float
    started_mono: float
    ended_at: float | None = None
    ended_mono: float | None = None
    reason: str = ""


@dataclass
class StreamState:
    url: str
    connected: bool = False
    connects: int = 0
    messages: int = 0
    bytes: int = 0
    last_error: str | None = None
    outages: list[StreamOutage] = field(default_factory=list)


class StreamClient:
    def __init__(
        self, url: str, formats: Mapping[str, str], cfg: StreamClientConfig, router: FrameRouter
    ) -> None:
        self.url = url
        self._formats = dict(formats)
        self._cfg = cfg
        self._router = router
        self.state = StreamState(url)
        # wss:// checks the rig's certificate against stream_client.ca_file, else the system's CAs
        # (websockets takes no ssl argument for ws://, and makes its own default context for wss://).
        secure = url.startswith("wss://") and cfg.ca_file is not None
        self._tls: dict[str, Any] = {"ssl": ssl.create_default_context(cafile=cfg.ca_file)} if secure else {}

    @property
    def cameras(self) -> frozenset[str]:
        return frozenset(self._formats)

    def outages_between(self, start_mono: float, end_mono: float) -> list[dict[str, Any]]:
        """Spans in [start, end) during which this stream was not connected."""
        out = []
        for o in self.state.outages:
            o_end = o.ended_mono if o.ended_mono is not None else end_mono
            if o.started_mono < end_mono and o_end > start_mono:
                out.append(
                    {
                        "url": self.url,
                        "from": o.started_at,
                        "to": o.ended_at,
                        "duration_s": round(min(o_end, end_mono) - max(o.started_mono, start_mono), 3),
                        "reason": o.reason,
                    }
                )
        return out

    def status(self) -> dict[str, Any]:
        s = self.state
        return {f.name: getattr(s, f.name) for f in fields(s) if f.name != "outages"}

    def _outage_begins(self, reason: str) -> None:
        self.state.outages.append(StreamOutage(time.time(), time.monotonic(), reason=reason))
        del self.state.outages[:-MAX_OUTAGES]

    def _outage_ends(self) -> None:
        if self.state.outages and self.state.outages[-1].ended_mono is None:
            self.state.outages[-1].ended_at = time.time()
            self.state.outages[-1].ended_mono = time.monotonic()

    async def _idle_pause(self) -> None:
        """While no job needs frames, answer late (see camera.router); at once when one starts. A
        stream that carries a camera of the event ring is never idle (camera.router keep_full_rate)."""
        delay = self._cfg.idle_ack_delay_s
        ring = self.cameras & self._router.full_rate_cameras
        if delay > 0 and not self._router.full_rate.is_set() and not ring:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._router.full_rate.wait()

    async def run_loop(self) -> None:
        """Connect, read until the connection ends, reconnect with capped jittered back-off."""
        delay = self._cfg.reconnect_min_s
        self._outage_begins("not connected yet")
        while True:
            try:
                async with connect(
                    self.url,
                    **self._tls,
                    max_size=self._cfg.max_message_bytes,
                    open_timeout=self._cfg.open_timeout_s,
                    # Frames are already compressed or are raw pixels: deflate would only cost CPU.
                    compression=None,
                    ping_interval=20,
                    ping_timeout=20,
                ) as ws:
                    self.state.connected = True
                    self.state.connects += 1
                    self.state.last_error = None
                    self._outage_ends()
                    delay = self._cfg.reconnect_min_s
                    log.info("stream %s connected", self.url)
                    async for message in ws:
                        received_mono, received_at = time.monotonic(), time.time()
                        if isinstance(message, str):
                            continue
                        self.state.messages += 1
                        self.state.bytes += len(message)
                        frames, rejections = decode_message(
                            message, self._formats, received_at, received_mono
                        )
                        self._router.dispatch(frames, rejections, received_mono)
                        await self._idle_pause()
                        await ws.send(ACK)
                    reason = "closed by the rig"
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if self.state.connected:
                self.state.connected = False
                self._outage_begins(reason)
                log.warning("stream %s lost (%s); reconnecting", self.url, reason)
            self.state.last_error = reason
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._cfg.reconnect_max_s)
