"""Frame files' bytes: how a frame's pixels become the file the writer saves, and back.

* ``encoded`` frames are written byte for byte (``.jpg`` / ``.png`` by their magic bytes).
* ``mono8`` / ``mono16`` / ``rgb8`` / ``bgr8`` are written lossless at their own bit depth in one of
  the :data:`IMAGE_FORMATS` (``fast`` stands for :data:`FAST_FORMAT`); ``mono16`` becomes a 16-bit
  greyscale image (Pillow mode ``I;16``), ``bgr8`` is stored in RGB order.
* A preview is a contrast-stretched 8-bit PNG display copy of a raw frame (:func:`preview_image`).

:class:`CameraWriteOptions` says which for one camera; :func:`encode_frame` makes the bytes (on the
writer's executor threads: sessions.writer). :func:`read_tiff` reads a TIFF frame file back.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import imagecodecs
import numpy as np
import numpy.typing as npt
import tifffile
from PIL import Image

from camera.display import display_8bit, display_index
from camera.frames import Frame, encoded_kind
from rigcore.config import DisplayConfig

# The format that "fast" stands for (bench/codec_bench.py measured the candidates; docs/performance.md).
FAST_FORMAT = "tiff-zstd"

# image_format -> (encoder, file extension, save options). All lossless. The encoder is a Pillow format
# ("PNG", "TIFF") or "tifffile" (tifffile.imwrite of the pixel array; its options are imwrite's).
IMAGE_FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "png": ("PNG", "png", {"compress_level": 1}),
    "png-small": ("PNG", "png", {"compress_level": 6}),
    "tiff": ("TIFF", "tif", {"compression": "raw"}),
    # Zstandard level 1 after the horizontal predictor (TIFF tag 317 = 2), in tifffile's strips of
    # about 256 KB (zstd's small-input settings: noisy 16-bit files 5-7 % smaller than one strip a
    # frame, at the same speed). Both steps run in imagecodecs without the GIL. No tifffile metadata
    # (a plain TIFF), native (little-endian) byte order. Any libtiff built with zstd reads it (Pillow's
    # wheels, Debian's libtiff); OpenCV's wheels are built without zstd: read_tiff() for them.
    "tiff-zstd": (
        "tifffile",
        "tif",
        {
            "compression": "zstd",
            "compressionargs": {"level": 1},
            "predictor": True,
            "metadata": None,
            "maxworkers": 1,  # one thread a frame: the writer's pool gives the parallelism
        },
    ),
}
IMAGE_FORMATS["fast"] = IMAGE_FORMATS[FAST_FORMAT]
# Formats whose frames are written at a setting sessions.encode_ladder picks per frame, cheaper while
# frames wait for their encode (issue 24): "fast" adapts, "tiff-zstd" is always Zstandard level 1.
ADAPTIVE_FORMATS = frozenset({"fast"})
PREVIEW_FORMAT = "png"  # a display copy: speed over size

# pixel_format -> (Pillow image mode, Pillow raw decoder mode) for Image.frombuffer.
_PIL_MODES: dict[str, tuple[str, str]] = {
    "mono8": ("L", "L"),
    "mono16": ("I;16", "I;16"),  # I;16 is little-endian, as the wire is
    "rgb8": ("RGB", "RGB"),
    "bgr8": ("RGB", "BGR"),  # Pillow's unpacker swaps to RGB while copying in
}
_COLOUR_FORMATS = frozenset({"rgb8", "bgr8"})


Pixels = bytes | memoryview  # a frame's own bytes, or a pool buffer holding a copy of them


def frame_to_array(frame: Frame, pixels: Pixels | None = None) -> npt.NDArray[Any]:
    """The frame's pixels (or ``pixels``, a copy of them) as an array: ``mono8`` HxW uint8, ``mono16``
    HxW ``<u2``, ``rgb8``/``bgr8`` HxWx3 uint8 in RGB order. Zero-copy except for ``bgr8``. Not for
    ``encoded`` (ValueError)."""
    data = frame.pixels if pixels is None else pixels
    shape: tuple[int, ...] = (frame.height, frame.width)
    if frame.pixel_format == "mono8":
        return np.frombuffer(data, dtype=np.uint8).reshape(shape)
    if frame.pixel_format == "mono16":
        return np.frombuffer(data, dtype="<u2").reshape(shape)
    if frame.pixel_format in _COLOUR_FORMATS:
        arr = np.frombuffer(data, dtype=np.uint8).reshape((*shape, 3))
        if frame.pixel_format == "bgr8":
            # cv2 swaps channels about 10x faster than a contiguous copy of arr[..., ::-1].
            result: npt.NDArray[Any] = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
            return result
        return arr
    raise ValueError(f"no pixel array for pixel format {frame.pixel_format!r}")


def preview_8bit(arr: npt.NDArray[Any], display: DisplayConfig | None = None) -> npt.NDArray[np.uint8]:
    """An 8-bit display copy (RGB order): the camera's fixed range and colour map when ``display`` is
    given, else the 2nd–98th percentile stretched to 0–255 (camera.display.display_8bit, the one
    mapping previews, thumbnails and the live view share). 3-channel uint8 input is returned as it is.
    """
    return display_8bit(arr, display)


def preview_image(arr: npt.NDArray[Any], display: DisplayConfig | None = None) -> Image.Image:
    """The preview of a mono frame as a Pillow image: grey (mode ``L``), or with a colour map a palette
    image (mode ``P``: the map's 256 colours and one index byte a pixel, so the PNG costs what a grey
    one does, where RGB would triple the encoding)."""
    if display is None or arr.ndim != 2 or arr.size == 0:
        return Image.fromarray(preview_8bit(arr, display))
    index, lut = display_index(arr, display)
    image = Image.fromarray(index)
    if lut is not None:
        image.putpalette(lut.tobytes(), rawmode="RGB")
    return image


@dataclass(frozen=True, kw_only=True)
class CameraWriteOptions:
    """How one camera's frames are written. Keyword-only: ``CameraWriteOptions("tiff")`` would
    otherwise quietly mean ``previews="tiff"``."""

    previews: bool = False  # also write previews/<name>.png (8-bit) for raw formats
    # For raw formats: a key of IMAGE_FORMATS, all lossless. The service passes the camera's
    # cameras.<id>.image_format (default "fast"); "png" here keeps the writer's own callers unchanged.
    image_format: str = "png"
    display: DisplayConfig | None = None  # the previews' fixed range and colour map (camera.display)

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(
                f"image_format {self.image_format!r} is not one of {', '.join(sorted(IMAGE_FORMATS))}"
            )


@dataclass(frozen=True, slots=True)
class TiffSetting:
    """One lossless way to write a raw frame as a TIFF: a rung of :mod:`sessions.encode_ladder`.

    ``share`` of the frame's strips (about 256 KB each, spread evenly) is compressed with Zstandard at
    ``level`` after the horizontal predictor; the other strips are *stored*: Zstandard frames of raw
    blocks (RFC 8878 §3.1.1.2), a copy, so the tags (Compression 50000, Predictor 2) hold for every
    strip and any reader with Zstandard opens the file. ``share`` 0 is an uncompressed TIFF
    (Compression 1, no predictor). ``name`` is what session.json counts (CameraRecord.encodings).
    """

    name: str
    share: float = 1.0
    level: int = 1


def encoded_ext(frame: Frame) -> str | None:
    """The file extension of an ``encoded`` frame (by its magic bytes); None for a raw frame.
    ValueError for a frame no writer takes."""
    if frame.pixel_format == "encoded":
        ext = encoded_kind(frame.pixels)
        if ext is None:
            raise ValueError(f"encoded frame of camera {frame.camera_id} is neither JPEG nor PNG")
        return ext
    if frame.pixel_format not in _PIL_MODES:
        raise ValueError(f"unknown pixel format {frame.pixel_format!r}")
    return None


def encode_frame(
    frame: Frame,
    options: CameraWriteOptions,
    pixels: Pixels | None = None,
    setting: TiffSetting | None = None,
) -> tuple[Pixels, bytes | None]:
    """The file's bytes and, if previews are on and the frame is raw, the preview's bytes. ``pixels``:
    the frame's pixels when they are held elsewhere (a pool buffer, the spill file). ``setting``: for a
    TIFF format written by tifffile, how to write this frame instead of the format's own options."""
    raw = frame.pixels if pixels is None else pixels
    if frame.pixel_format == "encoded":
        return raw, None  # byte for byte, never re-encoded
    encoder = IMAGE_FORMATS[options.image_format][0]
    colour = frame.pixel_format in _COLOUR_FORMATS
    if encoder == "tifffile":
        arr = frame_to_array(frame, raw)  # zero-copy but for bgr8 (swapped to RGB, as Pillow does)
        data = _save_tifffile(arr, options.image_format) if setting is None else save_tiff(arr, setting)
        if not options.previews:
            return data, None
        if colour:  # already 8-bit: the display copy is a PNG of the same pixels
            return data, _save(Image.fromarray(arr), PREVIEW_FORMAT)
    else:
        image = _pil_image(frame, raw)
        data = _save(image, options.image_format)
        if not options.previews:
            return data, None
        if colour:  # already 8-bit: a PNG file is itself the display copy; a TIFF is re-saved as PNG
            return data, data if encoder == "PNG" else _save(image, PREVIEW_FORMAT)
    preview = preview_image(frame_to_array(frame, raw), options.display)
    return data, _save(preview, PREVIEW_FORMAT)


def _pil_image(frame: Frame, raw: Pixels) -> Image.Image:
    mode, raw_mode = _PIL_MODES[frame.pixel_format]
    # frombuffer shares the bytes for L and I;16; RGB is copied once (Pillow keeps RGB as 4 bytes/pixel).
    # A uint8 array is the typed way to hand Pillow any buffer, pool memory included.
    buffer = np.frombuffer(raw, dtype=np.uint8)
    return Image.frombuffer(mode, (frame.width, frame.height), buffer, "raw", raw_mode, 0, 1)


def _save(image: Image.Image, image_format: str) -> bytes:
    pil_format, _, params = IMAGE_FORMATS[image_format]
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **params)
    return buffer.getvalue()


def _save_tifffile(arr: npt.NDArray[Any], image_format: str) -> bytes:
    """A TIFF of ``arr`` (HxW grey, HxWx3 RGB) by tifffile with the format's options."""
    _, _, params = IMAGE_FORMATS[image_format]
    buffer = io.BytesIO()
    photometric = "rgb" if arr.ndim == 3 else "minisblack"
    tifffile.imwrite(buffer, arr, photometric=photometric, **params)
    return buffer.getvalue()


STRIP_BYTES = 2**18  # tifffile's default strip size: about 256 KB
_ZSTD_MAGIC = struct.pack("<I", 0xFD2FB528)
_ZSTD_BLOCK = 128 * 1024  # the largest block a Zstandard frame may hold


def save_tiff(arr: npt.NDArray[Any], setting: TiffSetting) -> bytes:
    """A TIFF of ``arr`` (HxW grey, HxWx3 RGB) at ``setting``; bit-exact in Pillow and tifffile. At
    ``share`` 1 the same bytes as ``IMAGE_FORMATS["tiff-zstd"]`` (the same strips, predictor and
    Zstandard), made with a faster predictor for RGB (see :func:`horizontal_delta`)."""
    buffer = io.BytesIO()
    photometric = "rgb" if arr.ndim == 3 else "minisblack"
    if setting.share <= 0:
        tifffile.imwrite(buffer, arr, photometric=photometric, metadata=None)
        return buffer.getvalue()
    rows = max(1, STRIP_BYTES // arr.strides[0])  # tifffile's own rows per strip
    tifffile.imwrite(
        buffer,
        _strips(arr, rows, setting),
        shape=arr.shape,
        dtype=arr.dtype,
        photometric=photometric,
        compression="zstd",
        predictor=True,
        rowsperstrip=rows,
        metadata=None,
    )
    return buffer.getvalue()


def horizontal_delta(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """TIFF Predictor 2 of ``arr`` (HxW, or HxWx3 with the samples interleaved): each sample less the
    same sample of the pixel before, modulo 2^bits, the first pixel of a row as it is. numpy's
    subtraction on each row as one run of samples, without the GIL: 12x faster than
    ``imagecodecs.delta_encode(axis=-2)`` on a 1080p RGB frame (0.15 against 1.9 ms)."""
    step = arr.shape[2] if arr.ndim == 3 else 1
    flat = arr.reshape(arr.shape[0], -1)
    out = np.empty_like(flat)
    out[:, :step] = flat[:, :step]
    np.subtract(flat[:, step:], flat[:, :-step], out=out[:, step:])
    return out


def _strips(arr: npt.NDArray[Any], rows: int, setting: TiffSetting) -> Iterator[bytes]:
    """The strips of ``arr`` after the horizontal predictor, ``share`` of them compressed, evenly
    spread, the rest stored. The C calls (the subtraction, Zstandard) run without the GIL."""
    delta = horizontal_delta(arr)
    for i, top in enumerate(range(0, arr.shape[0], rows)):
        strip = delta[top : top + rows]
        if int((i + 1) * setting.share) > int(i * setting.share):
            # Any C-contiguous buffer is taken (the stub names only bytes-like types).
            yield bytes(imagecodecs.zstd_encode(strip, level=setting.level))  # type: ignore[arg-type]
        else:
            yield stored_zstd(strip.data)


def stored_zstd(data: memoryview) -> bytes:
    """A Zstandard frame holding ``data`` as it is (raw blocks): what zstd itself writes for data it
    cannot compress, made without trying to. Single segment, with the content size."""
    view = data.cast("B")
    size = len(view)
    parts: list[bytes | memoryview] = [_ZSTD_MAGIC, b"\xa0", struct.pack("<I", size)]  # 4-byte size
    if size == 0:
        parts.append(b"\x01\x00\x00")  # one empty last block
    for start in range(0, size, _ZSTD_BLOCK):
        block = view[start : start + _ZSTD_BLOCK]
        last = start + _ZSTD_BLOCK >= size
        parts += [(len(block) << 3 | last).to_bytes(3, "little"), block]  # block type 0: raw
    return b"".join(parts)


def read_tiff(data: bytes) -> npt.NDArray[Any] | None:
    """The pixels of a TIFF frame file at their own depth (HxW, or HxWx3 RGB), by tifffile and
    imagecodecs: readers whose libtiff lacks Zstandard (OpenCV's wheels) cannot open ``tiff-zstd``
    files. None if ``data`` is not a TIFF tifffile can read."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if not tif.pages:
                return None
            arr: npt.NDArray[Any] = tif.pages.first.asarray()
    except (ValueError, OSError, RuntimeError):  # TiffFileError is a ValueError; codec errors Runtime
        return None
    return arr


__all__ = [
    "ADAPTIVE_FORMATS",
    "FAST_FORMAT",
    "IMAGE_FORMATS",
    "PREVIEW_FORMAT",
    "CameraWriteOptions",
    "Pixels",
    "TiffSetting",
    "encode_frame",
    "encoded_ext",
    "frame_to_array",
    "horizontal_delta",
    "preview_8bit",
    "preview_image",
    "read_tiff",
    "save_tiff",
    "stored_zstd",
]
