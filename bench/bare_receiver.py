"""The ingest limit: a bare WebSocket + msgpack receive loop on a rig stream (docs/protocol.md §4).

It does what any reader of the stream must do and nothing else: read a message, unpack it, note each
frame's camera, ``frame_index`` and pixel bytes, answer ``received``. What it takes in over a window
is the most a reader in one Python process can take from that stream on this machine.

    python bench/bare_receiver.py ws://127.0.0.1:PORT --duration 10 [--warmup 1]

prints one JSON line: the receive window (epoch seconds) and, per camera, the frame indices and pixel
bytes received inside it. :func:`receive` is the same loop for use in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
from websockets.asyncio.client import connect

ACK = "received"
OPEN_TIMEOUT_S = 10.0
# A message must come at least this often once connected; the rig sends 30-60 a second.
MESSAGE_TIMEOUT_S = 10.0


@dataclass
class CameraTally:
    frame_indices: list[int] = field(default_factory=list)
    pixel_bytes: int = 0


@dataclass
class BareResult:
    url: str
    window_start: float  # epoch seconds, like session.json's record_started_at
    window_end: float
    messages: int = 0
    message_bytes: int = 0
    cameras: dict[str, CameraTally] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def receive(url: str, duration_s: float, warmup_s: float = 1.0) -> BareResult:
    """Read ``url`` for ``warmup_s`` + ``duration_s``; tally frames received in the last ``duration_s``.

    Frames are counted by the time their message was read, as the service counts them.
    """
    async with connect(url, compression=None, max_size=None, open_timeout=OPEN_TIMEOUT_S) as ws:
        start = time.time() + warmup_s
        result = BareResult(url, start, start + duration_s)
        while True:
            async with asyncio.timeout(MESSAGE_TIMEOUT_S):
                message = await ws.recv()
            received_at = time.time()
            if received_at >= result.window_end:
                break
            if isinstance(message, str):
                continue
            packets = msgpack.unpackb(message)
            await ws.send(ACK)
            if received_at < start:
                continue
            result.messages += 1
            result.message_bytes += len(message)
            for packet in packets:
                for frame in packet.get("camera_frames", ()):
                    tally = result.cameras.setdefault(str(frame["device_id"]).strip(), CameraTally())
                    index = frame.get("frame_index")
                    if isinstance(index, int):
                        tally.frame_indices.append(index)
                    tally.pixel_bytes += len(frame["image_data"]["pixels"])
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    args = ap.parse_args(argv)
    result = asyncio.run(receive(args.url, args.duration, args.warmup))
    print(json.dumps(result.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
