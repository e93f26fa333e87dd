"""Camera frame messages (docs/protocol.md §4): MessagePack bytes in, frames and rejections out.

Pure decoding with no I/O, so the WebSocket adapter only moves bytes and the rules are tested
without a socket. Nothing here raises on bad input: a message that cannot be read gives one
:class:`Rejection` with ``camera_id=None``; a bad frame gives a :class:`Rejection` for that frame and
leaves the other frames of the message alone.

Pixel bytes are checked by length and magic bytes only (no per-pixel Python work) and are never
copied past the one copy msgpack makes when it turns a ``bin`` into ``bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgpack

from camera.capture_clock import CaptureTime, TimeSource

PIXEL_FORMATS: frozenset[str] = frozenset({"encoded", "mono8", "mono16", "rgb8", "bgr8"})

# Bytes per pixel of the raw formats; "encoded" has no fixed size.
_BYTES_PER_PIXEL: dict[str, int] = {"mono8": 1, "mono16": 2, "rgb8": 3, "bgr8": 3}

_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"
# Every PNG ends with an empty IEND chunk: length 0, type "IEND", CRC AE 42 60 82.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True, slots=True)
class Frame:
    """One accepted camera frame."""

    camera_id: str  # device_id with surrounding white space trimmed
    pixels: bytes  # as received
    width: int
    height: int
    pixel_format: str  # the frame's own image_data.pixel_format, else the camera's configured one
    timestamp_ns: int | None
    frame_index: int | None
    received_at: float  # epoch seconds when the message was read
    received_mono: float  # time.monotonic() when the message was read
    # When it was captured (camera.capture_clock), set by the frame router; None: not judged yet.
    capture: CaptureTime | None = None

    @property
    def captured_mono(self) -> float:
        """Capture time on the monotonic scale (arrival until the router has judged it)."""
        return self.received_mono if self.capture is None else self.capture.mono

    @property
    def captured_at(self) -> float:
        """Capture time, epoch seconds on the service's clock."""
        return self.received_at if self.capture is None else self.capture.at

    @property
    def time_source(self) -> str:
        return TimeSource.ARRIVAL if self.capture is None else self.capture.source


@dataclass(frozen=True, slots=True)
class Rejection:
    """A frame (or a whole message, ``camera_id=None``) that could not be used, and why."""

    camera_id: str | None
    reason: str


class _Reject(Exception):
    """Internal: one frame is rejected; carries the camera id if it was known by then."""

    def __init__(self, reason: str, camera_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.camera_id = camera_id


def expected_size(pixel_format: str, width: int, height: int) -> int | None:
    """Byte count of a raw frame; ``None`` for ``encoded``. Raises ValueError for an unknown format."""
    if pixel_format == "encoded":
        return None
    try:
        return width * height * _BYTES_PER_PIXEL[pixel_format]
    except KeyError:
        raise ValueError(f"unknown pixel format {pixel_format!r}") from None


def encoded_kind(data: bytes) -> str | None:
    """``"jpg"`` or ``"png"`` by the file's magic bytes, else ``None``."""
    if data.startswith(_JPEG_START):
        return "jpg"
    if data.startswith(_PNG_START):
        return "png"
    return None


def decode_message(
    data: bytes,
    formats: Mapping[str, str],
    received_at: float,
    received_mono: float,
) -> tuple[list[Frame], list[Rejection]]:
    """Decode one binary WebSocket message: an array of packets, each with ``camera_frames``.

    ``formats`` maps each known camera id to its configured pixel format; frames of other cameras
    are rejected. Frames come back in message order (packet by packet, frame by frame).
    """
    try:
        # max_*_len of -1 would be derived from len(data) as well; spelled out because msgpack < 1.0
        # capped bin at 1 MiB. The real bound on a message is the WebSocket reader's max_size.
        message = msgpack.unpackb(
            data,
            raw=False,
            max_bin_len=len(data),
            max_str_len=len(data),
            max_array_len=len(data),
            max_map_len=len(data) // 2,
            max_ext_len=len(data),
        )
    except Exception as exc:  # msgpack raises ValueError, TypeError, FormatError, StackError, ExtraData…
        return [], [Rejection(None, f"message is not MessagePack: {type(exc).__name__}: {exc}")]
    if not isinstance(message, list):
        return [], [Rejection(None, f"message is {_kind(message)}, expected an array of packets")]

    frames: list[Frame] = []
    rejections: list[Rejection] = []
    for packet_no, packet in enumerate(message):
        if not isinstance(packet, dict):
            rejections.append(Rejection(None, f"packet {packet_no} is {_kind(packet)}, expected a map"))
            continue
        raw_frames = packet.get("camera_frames")
        if not isinstance(raw_frames, list):
            what = "missing" if raw_frames is None else _kind(raw_frames)
            rejections.append(
                Rejection(None, f"packet {packet_no}: camera_frames is {what}, expected an array")
            )
            continue
        for raw in raw_frames:
            try:
                frames.append(_decode_frame(raw, formats, received_at, received_mono))
            except _Reject as rej:
                rejections.append(Rejection(rej.camera_id, rej.reason))
    return frames, rejections


def _decode_frame(raw: Any, formats: Mapping[str, str], received_at: float, received_mono: float) -> Frame:
    if not isinstance(raw, dict):
        raise _Reject(f"frame is {_kind(raw)}, expected a map")
    camera_id = _known_camera_id(raw.get("device_id"), formats)
    image = raw.get("image_data")
    if not isinstance(image, dict):
        raise _Reject(f"image_data is {_describe(image)}, expected a map", camera_id)
    pixels, width, height = _pixels_and_size(image, camera_id)
    pixel_format = _frame_pixel_format(image.get("pixel_format"), formats[camera_id], camera_id)
    timestamp_ns = _optional_int(raw, "timestamp_ns", camera_id)
    frame_index = _optional_int(raw, "frame_index", camera_id)
    _check_pixel_bytes(pixels, pixel_format, width, height, camera_id)
    return Frame(
        camera_id=camera_id,
        pixels=pixels,
        width=width,
        height=height,
        pixel_format=pixel_format,
        timestamp_ns=timestamp_ns,
        frame_index=frame_index,
        received_at=received_at,
        received_mono=received_mono,
    )


def _known_camera_id(device_id: Any, formats: Mapping[str, str]) -> str:
    """The frame's device_id, trimmed; rejected unless it names a configured camera."""
    if not isinstance(device_id, str) or not device_id.strip():
        raise _Reject(f"device_id is {_describe(device_id)}, expected a non-empty string")
    camera_id = device_id.strip()
    if camera_id not in formats:
        raise _Reject(f"unknown camera {camera_id}", camera_id)
    return camera_id


def _pixels_and_size(image: dict[Any, Any], camera_id: str) -> tuple[bytes, int, int]:
    """image_data's pixels, width and height, checked for type and a positive size."""
    pixels = image.get("pixels")
    if not isinstance(pixels, bytes):
        raise _Reject(f"image_data.pixels is {_describe(pixels)}, expected bin", camera_id)
    width = image.get("width")
    height = image.get("height")
    if not _is_int(width) or not _is_int(height):
        raise _Reject(
            f"image_data.width/height are {_describe(width)}/{_describe(height)}, expected int", camera_id
        )
    if width <= 0 or height <= 0:
        raise _Reject(f"frame size {width}x{height} is not positive", camera_id)
    return pixels, width, height


def _frame_pixel_format(own_format: Any, configured: str, camera_id: str) -> str:
    """The frame's own image_data.pixel_format if it has one, else the camera's configured one."""
    if own_format is None:
        pixel_format = configured
    elif isinstance(own_format, str):
        pixel_format = own_format
    else:
        raise _Reject(f"image_data.pixel_format is {_describe(own_format)}, expected a string", camera_id)
    if pixel_format not in PIXEL_FORMATS:
        raise _Reject(f"unknown pixel format {pixel_format!r}", camera_id)
    return pixel_format


def _optional_int(raw: dict[Any, Any], key: str, camera_id: str) -> int | None:
    value = raw.get(key)
    if value is not None and not _is_int(value):
        raise _Reject(f"{key} is {_describe(value)}, expected int", camera_id)
    return value


def _check_pixel_bytes(pixels: bytes, pixel_format: str, width: int, height: int, camera_id: str) -> None:
    """Raw formats: exactly width x height x bytes per pixel. Encoded: a whole JPEG or PNG."""
    size = expected_size(pixel_format, width, height)
    if size is None:
        _check_encoded(pixels, camera_id)
    elif len(pixels) != size:
        raise _Reject(
            f"{pixel_format} frame {width}x{height} needs {size} bytes, got {len(pixels)}", camera_id
        )


def _check_encoded(pixels: bytes, camera_id: str) -> None:
    kind = encoded_kind(pixels)
    if kind is None:
        raise _Reject(f"encoded frame of {len(pixels)} bytes is neither JPEG nor PNG", camera_id)
    if kind == "jpg" and not pixels.endswith(_JPEG_END):
        raise _Reject(
            f"encoded JPEG of {len(pixels)} bytes lacks the end marker FF D9 (truncated)", camera_id
        )
    if kind == "png" and not pixels.endswith(_PNG_END):
        raise _Reject(f"encoded PNG of {len(pixels)} bytes lacks the IEND chunk (truncated)", camera_id)


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass; a msgpack true is not a width.
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    names = {dict: "a map", list: "an array", str: "a string", bytes: "bin", type(None): "nil"}
    return names.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    return "missing" if value is None else _kind(value)
