"""Camera frames: rendering with a per-camera cache, and the wire format of docs/protocol.md §4. No sockets.

Rendering is a pure function of a quantised view key (zoom, pan and tilt in whole output pixels), so a
stationary rig renders each camera once and then serves the cached bytes.
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import msgpack
import numpy as np

from .config import CameraSim
from .content import apply_layer, content_layer
from .scene import HFOV_DEG, Mode, Scene

# Cached views per camera (LRU). A stationary rig needs one; a little more absorbs jitter at a
# quantisation boundary. Overflow drops the least recently used view.
CACHE_VIEWS_PER_CAMERA = 4
# Frames whose device_id carries a stray space, like the real rig's (docs/protocol.md §4): one in this many.
PAD_ID_EVERY = 50
# Pixel format written to frames of the "unknown pixel_format" fault.
UNKNOWN_PIXEL_FORMAT = "yuv411_unknown"
NOT_MSGPACK = b"\xc1 simulated fault: this message is not MessagePack"  # 0xC1 is never used by msgpack

ViewKey = tuple[int, int, int]  # (zoom in 1/1000, pan in output pixels, tilt in output pixels)


@dataclass(frozen=True)
class CapturedFrame:
    """One camera's frame at one tick, shared by every connection that sends it.

    ``timestamp_ns`` is the stamp the camera puts on the wire (its own clock; None: no stamp at all),
    ``captured_ns`` the true capture time (epoch ns) and ``pose`` the true pose then,
    ``available_at_epoch`` when the camera's pipeline delay released it for sending (the last two
    are 0 on frames built by hand).
    """

    camera_id: str
    frame_index: int
    timestamp_ns: int | None
    pixel_format: str
    width: int
    height: int
    pixels: bytes
    pose: dict[str, Any] = field(hash=False)
    captured_ns: int = 0
    available_at_epoch: float = 0.0


class Malformed(enum.Enum):
    """Kinds of malformed messages the rig sends under the malformed_every fault, in rotation."""

    NOT_MSGPACK = "not_msgpack"
    WRONG_BYTE_COUNT = "wrong_byte_count"
    UNKNOWN_FORMAT = "unknown_pixel_format"


def malformed_kind(message_no: int, every: int | None) -> Malformed | None:
    """Kind of the ``message_no``-th (1-based) message of a connection, or None when it is good."""
    if every is None or every < 1 or message_no % every != 0:
        return None
    kinds = list(Malformed)
    return kinds[(message_no // every - 1) % len(kinds)]


def _mode_of(pixel_format: str) -> Mode:
    if pixel_format == "mono8":
        return "gray"
    if pixel_format == "mono16":
        return "thermal"
    return "colour"


class FrameRenderer:
    """Renders one camera's view and encodes it to its pixel format; ``render`` is thread-safe."""

    def __init__(self, camera_id: str, cam: CameraSim, scene: Scene, jpeg_quality: int = 90) -> None:
        self.camera_id = camera_id
        self.cam = cam
        self._scene = scene
        self._jpeg_quality = jpeg_quality
        self._cache: OrderedDict[ViewKey, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.renders = 0
        self.cache_hits = 0
        self._layer: np.ndarray[Any, Any] | None = None  # the content layer, made at the first render

    def key_for(self, pan_deg: float, tilt_deg: float, zoom: float) -> ViewKey:
        """Quantise a pose to whole output pixels at this camera's current field of view."""
        zoom_q = round(zoom * 1000)
        dpp = HFOV_DEG / (zoom_q / 1000) / self.cam.width
        pan = (pan_deg + 180.0) % 360.0 - 180.0
        return zoom_q, round(pan / dpp), round(tilt_deg / dpp)

    def cached(self, key: ViewKey) -> bytes | None:
        """Pixels of a view rendered before, or None."""
        with self._lock:
            pixels = self._cache.get(key)
            if pixels is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
            return pixels

    def render(self, key: ViewKey) -> bytes:
        """Render and encode the view (CPU-bound: call it from an executor), caching the result."""
        zoom = key[0] / 1000
        dpp = HFOV_DEG / zoom / self.cam.width
        pan, tilt = key[1] * dpp, key[2] * dpp
        caption = f"{self.camera_id} pan {pan:.2f} tilt {tilt:.2f} zoom {zoom:.2f}x"
        fmt = self.cam.pixel_format
        img = self._scene.render(_mode_of(fmt), self.cam.width, self.cam.height, pan, tilt, zoom, caption)
        if self.cam.noise_sigma > 0:
            img = add_noise(img, self.cam.noise_sigma, np.random.default_rng(hash(key) & 0xFFFFFFFF))
        if self.cam.content != "smooth":
            if self._layer is None:  # two renders racing here make the same layer: harmless
                self._layer = content_layer(self.cam.content, img.shape, img.dtype.itemsize, self.camera_id)
            img = apply_layer(img, self._layer)
        pixels = encode_pixels(img, fmt, self._jpeg_quality)
        with self._lock:
            self._cache[key] = pixels
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_VIEWS_PER_CAMERA:
                self._cache.popitem(last=False)
            self.renders += 1
        return pixels


def add_noise(img: np.ndarray[Any, Any], sigma: float, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """``img`` plus Gaussian noise of ``sigma`` counts, rounded and clipped to its integer type."""
    info = np.iinfo(img.dtype)
    noisy = img.astype(np.float32) + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    out: np.ndarray[Any, Any] = np.clip(np.rint(noisy), info.min, info.max).astype(img.dtype)
    return out


def encode_pixels(img: np.ndarray[Any, Any], pixel_format: str, jpeg_quality: int = 90) -> bytes:
    """Bytes of a rendered image (BGR uint8, grey uint8 or uint16) in ``pixel_format``."""
    if pixel_format == "encoded":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return bytes(buf)
    if pixel_format == "rgb8":
        rgb: np.ndarray[Any, Any] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return rgb.tobytes()
    if pixel_format == "mono16":
        return img.astype("<u2", copy=False).tobytes()  # docs/protocol.md §4: little-endian
    return img.tobytes()  # mono8, bgr8


def _wire_frame(frame: CapturedFrame) -> dict[str, Any]:
    """The frame map of docs/protocol.md §4, with the real rig's quirks: pixel_format on even frame indices
    only (clients must fall back to configured formats) and a stray space in some device ids. A camera
    that sends no stamps (``timestamp_ns`` None) leaves the key out."""
    image: dict[str, Any] = {"pixels": frame.pixels, "width": frame.width, "height": frame.height}
    if frame.frame_index % 2 == 0:
        image["pixel_format"] = frame.pixel_format
    device_id = frame.camera_id
    if frame.frame_index % PAD_ID_EVERY == PAD_ID_EVERY - 1:
        device_id += " "
    wire: dict[str, Any] = {"device_id": device_id, "image_data": image}
    if frame.timestamp_ns is not None:
        wire["timestamp_ns"] = frame.timestamp_ns
    wire["frame_index"] = frame.frame_index
    return wire


def _spoil(wire: dict[str, Any], frame: CapturedFrame, kind: Malformed) -> None:
    image = wire["image_data"]
    if kind is Malformed.UNKNOWN_FORMAT:
        image["pixel_format"] = UNKNOWN_PIXEL_FORMAT
        return
    # Wrong byte count: a raw frame one row short; an encoded frame cut to bytes that no decoder
    # takes (a JPEG has no expected length, so "cannot be decoded" is its wrong size).
    image["pixel_format"] = frame.pixel_format
    if frame.pixel_format == "encoded":
        image["pixels"] = b"\x00\x01 not an image"
    else:
        row = len(frame.pixels) // frame.height
        image["pixels"] = frame.pixels[: len(frame.pixels) - row]


def build_message(
    frames: Sequence[CapturedFrame], message_no: int, kind: Malformed | None
) -> tuple[bytes, list[tuple[CapturedFrame, bool]]]:
    """Pack one WS message; returns its bytes and (frame, valid) for every frame it carries.

    Odd messages put every frame in one packet, even ones give each frame its own packet: docs/protocol.md
    allows both and a client must handle both. A malformed frame replaces the first frame.
    """
    if kind is Malformed.NOT_MSGPACK:
        return NOT_MSGPACK, []
    wires = [_wire_frame(f) for f in frames]
    carried = [(f, True) for f in frames]
    if kind is not None and frames:
        _spoil(wires[0], frames[0], kind)
        carried[0] = (frames[0], False)
    packets = [{"camera_frames": wires}] if message_no % 2 == 1 else [{"camera_frames": [w]} for w in wires]
    payload: bytes = msgpack.packb(packets, use_bin_type=True)
    return payload, carried
