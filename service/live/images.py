"""A camera frame as the message its live channel carries (pure: runs on the live encoder thread).

The schema of each camera's channel is the MCAP export's (sessions.mcap_export), so one Foxglove
layout serves a recorded session and the live rig:

* a camera that sends JPEG or PNG (``encoded``): ``foxglove.CompressedImage`` with its bytes as they
  came, in either mode;
* a raw camera (mono8, mono16, rgb8, bgr8) with ``foxglove.image`` ``raw``: ``foxglove.RawImage`` with
  the pixels at their own depth (bgr8 stays bgr8: Foxglove reads it, and no copy is made);
* a raw camera with ``compressed`` (the default): ``foxglove.CompressedImage``, a JPEG of the frame's
  display copy (camera.display: the camera's fixed range and colour map, else the percentile
  stretch), as the dashboard's live view shows it.

Times as the export's: the message is logged at the frame's capture time (``frame.capture``), and
the image's ``timestamp`` is the camera's own stamp when its clock is trusted, else the capture time.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from camera.capture_clock import TimeSource
from camera.display import display_8bit
from camera.frames import Frame, encoded_kind
from rigcore.config import DisplayConfig
from sessions.mcap_export import RawPixels, compressed_message

ImageMode = Literal["compressed", "raw"]
JPEG_QUALITY = 85
_RAW_ENCODINGS = {"mono8": ("mono8", 1), "mono16": ("mono16", 2), "rgb8": ("rgb8", 3), "bgr8": ("bgr8", 3)}
_COMPRESSED_FORMATS = {"jpg": "jpeg", "png": "png"}


class LiveImageError(ValueError):
    """A frame that cannot be shown (an ``encoded`` frame that is neither JPEG nor PNG, a bad size)."""


def image_schema(pixel_format: str, mode: ImageMode) -> type[Message]:
    """The message type of a camera's live channel: see the module docstring."""
    if pixel_format == "encoded" or mode == "compressed":
        return CompressedImage
    return RawImage


def frame_times(frame: Frame) -> tuple[int, int]:
    """(log time, image timestamp) in epoch ns: capture time, and the camera's stamp if trusted."""
    log_ns = round(frame.captured_at * 1e9)
    trusted = frame.time_source == TimeSource.STAMP and frame.timestamp_ns is not None
    return log_ns, frame.timestamp_ns if trusted and frame.timestamp_ns is not None else log_ns


def image_message(frame: Frame, mode: ImageMode, display: DisplayConfig | None) -> bytes:
    """The serialized message for ``frame`` on its camera's channel (LiveImageError if impossible)."""
    _, stamp_ns = frame_times(frame)
    stamp = Timestamp()
    stamp.FromNanoseconds(stamp_ns)
    if frame.pixel_format == "encoded":
        kind = encoded_kind(frame.pixels)
        if kind is None:
            raise LiveImageError(f"{frame.camera_id}: an encoded frame that is neither JPEG nor PNG")
        fmt = _COMPRESSED_FORMATS[kind]
        return compressed_message(stamp, frame.camera_id, frame.pixels, fmt)
    if frame.pixel_format not in _RAW_ENCODINGS:
        raise LiveImageError(f"{frame.camera_id}: unknown pixel format {frame.pixel_format!r}")
    encoding, depth = _RAW_ENCODINGS[frame.pixel_format]
    if len(frame.pixels) != frame.width * frame.height * depth:
        raise LiveImageError(f"{frame.camera_id}: {len(frame.pixels)} bytes for {frame.width}x{frame.height}")
    if mode == "raw":
        raw = RawPixels(encoding, frame.width, frame.height, frame.width * depth, frame.pixels)
        return raw.message(stamp, frame.camera_id)
    return compressed_message(stamp, frame.camera_id, _jpeg(_bgr_or_mono(frame), display), "jpeg")


def _bgr_or_mono(frame: Frame) -> npt.NDArray[Any]:
    """The pixels as an array cv2 encodes as they are: HxW mono, or HxWx3 in BGR order (no copy but
    for rgb8's channel swap)."""
    shape = (frame.height, frame.width)
    if frame.pixel_format == "mono8":
        return np.frombuffer(frame.pixels, dtype=np.uint8).reshape(shape)
    if frame.pixel_format == "mono16":
        return np.frombuffer(frame.pixels, dtype="<u2").reshape(shape)
    arr = np.frombuffer(frame.pixels, dtype=np.uint8).reshape((*shape, 3))
    if frame.pixel_format == "rgb8":
        swapped: npt.NDArray[Any] = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        return swapped
    return arr


def _jpeg(arr: npt.NDArray[Any], display: DisplayConfig | None) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", display_8bit(arr, display, bgr=True), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise LiveImageError("the JPEG encoder refused the frame")
    return bytes(buf)


__all__ = ["JPEG_QUALITY", "ImageMode", "LiveImageError", "frame_times", "image_message", "image_schema"]
