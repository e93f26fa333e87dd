"""Lossless formats for raw frames (issue 15): every ``image_format`` × every raw pixel format round
trips bit-exact through the writer, read back by Pillow and, for TIFFs, by tifffile; ``fast`` is a
Zstandard TIFF with the horizontal predictor; the camera's own JPEG/PNG stay byte for byte.

Real files under tmp_path and a real ThreadPoolExecutor, as the service writes them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from PIL import Image

from api.dashboard import _decode
from camera.frames import Frame
from rigcore.config import CameraConfig, Config, ImageFormat
from sessions.image_codecs import FAST_FORMAT, CameraWriteOptions, read_tiff
from sessions.image_codecs import IMAGE_FORMATS as _IMAGE_FORMATS
from sessions.recovery import _camera_record
from sessions.writer import SessionWriter, create_session_dir

TIMEOUT = 20.0
POSE = {"pan_deg": 1.0, "tilt_deg": 2.0, "zoom": 1, "distance_m": None}
FORMATS = sorted(_IMAGE_FORMATS)
TIFF_FORMATS = [f for f in FORMATS if _IMAGE_FORMATS[f][1] == "tif"]
ZSTD, HORIZONTAL = 50000, 2  # TIFF Compression and Predictor tag values


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-formats")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def frames_of(pixel_format: str, width: int, height: int, seed: int) -> tuple[Frame, npt.NDArray[Any]]:
    """A frame with noisy full-range content and what a reader must give back (colour in RGB order)."""
    rng = np.random.default_rng(seed)
    if pixel_format == "mono16":
        # The full 16-bit range (values > 255 and > 32767: no sign or byte-order slip hides), with a
        # smooth ramp under the noise so the predictor has something to predict.
        ramp = np.linspace(0, 60000, width, dtype=np.float64)[None, :] + np.zeros((height, 1))
        want = np.clip(ramp + rng.normal(0, 300, (height, width)), 0, 65535).astype(np.uint16)
        want[0, :3] = (0, 65535, 256)
        return Frame("cam", want.astype("<u2").tobytes(), width, height, "mono16", None, 1, 0.0, 0.0), want
    shape = (height, width, 3) if pixel_format in ("rgb8", "bgr8") else (height, width)
    want = rng.integers(0, 256, shape, dtype=np.uint8)
    wire = want[..., ::-1] if pixel_format == "bgr8" else want  # bgr8 arrives in BGR order
    pixels = np.ascontiguousarray(wire).tobytes()
    return Frame("cam", pixels, width, height, pixel_format, None, 1, 0.0, 0.0), want


def write_one(
    tmp_path: Path, executor: ThreadPoolExecutor, frame: Frame, options: CameraWriteOptions
) -> Path:
    session_id, folder = create_session_dir(tmp_path / "save")
    writer = SessionWriter(folder, session_id, {"cam": options}, executor)
    writer.add(frame, POSE)
    manifest = writer.finish({}, timeout=TIMEOUT)
    (record,) = manifest.cameras["cam"].frames
    return folder / record.file


# Odd widths (rows of an odd byte count), and sizes large enough for several TIFF strips.
SHAPES = [("mono8", 37, 23), ("mono8", 640, 512), ("mono16", 37, 23), ("mono16", 641, 512)]
SHAPES += [("rgb8", 37, 23), ("rgb8", 333, 301), ("bgr8", 37, 23), ("bgr8", 333, 301)]


@pytest.mark.parametrize("image_format", FORMATS)
@pytest.mark.parametrize(("pixel_format", "width", "height"), SHAPES)
def test_every_raw_pixel_format_round_trips_bit_exact_in_pillow_and_tifffile(
    tmp_path: Path,
    executor: ThreadPoolExecutor,
    image_format: str,
    pixel_format: str,
    width: int,
    height: int,
) -> None:
    frame, want = frames_of(pixel_format, width, height, seed=width + height)
    path = write_one(tmp_path, executor, frame, CameraWriteOptions(image_format=image_format))
    assert path.suffix == "." + _IMAGE_FORMATS[image_format][1]
    with Image.open(path) as image:
        assert image.mode == {"mono8": "L", "mono16": "I;16"}.get(pixel_format, "RGB")
        got = np.asarray(image)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    if image_format in TIFF_FORMATS:
        back = tifffile.imread(path)
        assert back.dtype == want.dtype and np.array_equal(back, want)
        # The service's own TIFF reader (dashboard thumbnails, ?view=1) gives the same values.
        other = read_tiff(path.read_bytes())
        assert other is not None and np.array_equal(other, want)


@pytest.mark.parametrize("image_format", ["fast", "tiff-zstd"])
def test_fast_is_a_zstd_tiff_with_the_horizontal_predictor(
    tmp_path: Path, executor: ThreadPoolExecutor, image_format: str
) -> None:
    assert FAST_FORMAT == "tiff-zstd" and _IMAGE_FORMATS["fast"] == _IMAGE_FORMATS[FAST_FORMAT]
    frame, want = frames_of("mono16", 641, 512, seed=1)
    path = write_one(tmp_path, executor, frame, CameraWriteOptions(image_format=image_format))
    assert path.name == "000001.tif"
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
        page = tif.pages.first
        assert (page.compression, page.predictor) == (ZSTD, HORIZONTAL)
        assert (page.imagewidth, page.imagelength, page.bitspersample) == (641, 512, 16)
        assert len(page.dataoffsets) > 1  # strips of about 256 KB, not one strip a frame
        assert "ImageDescription" not in page.tags  # a plain TIFF: no tifffile metadata
        assert np.array_equal(page.asarray(), want)
    # Noise-free content compresses: the predictor is at work.
    smooth = np.tile(np.arange(641, dtype="<u2") * 50, (512, 1))
    flat = Frame("cam", smooth.tobytes(), 641, 512, "mono16", None, 2, 0.0, 0.0)
    small = write_one(tmp_path / "b", executor, flat, CameraWriteOptions(image_format=image_format))
    assert small.stat().st_size < smooth.nbytes / 20


def test_camera_jpeg_and_png_stay_byte_for_byte_with_fast(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    for kind, ext in (("JPEG", ".jpg"), ("PNG", ".png")):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, kind)
        data = buffer.getvalue()
        frame = Frame("cam", data, 24, 16, "encoded", None, 1, 0.0, 0.0)
        path = write_one(
            tmp_path / kind, executor, frame, CameraWriteOptions(image_format="fast", previews=True)
        )
        assert path.suffix == ext and path.read_bytes() == data
        assert not (path.parent / "previews").exists()


def test_fast_previews_are_8bit_pngs_beside_the_tiff(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    options = CameraWriteOptions(image_format="fast", previews=True)
    for pixel_format in ("mono16", "bgr8"):
        frame, want = frames_of(pixel_format, 37, 23, seed=5)
        path = write_one(tmp_path / pixel_format, executor, frame, options)
        preview = path.parent / "previews" / "000001.png"
        with Image.open(preview) as image:
            assert image.format == "PNG" and image.mode in ("L", "P", "RGB")
            shown = np.asarray(image.convert("RGB"))
        if pixel_format == "bgr8":
            assert np.array_equal(shown, want)  # colour is 8-bit already: the same pixels, RGB order
        assert np.array_equal(tifffile.imread(path), want)  # the lossless file is intact


def test_dashboard_decodes_fast_tiffs_which_opencv_cannot(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    for pixel_format in ("mono8", "mono16", "rgb8"):
        frame, want = frames_of(pixel_format, 37, 23, seed=6)
        path = write_one(tmp_path / pixel_format, executor, frame, CameraWriteOptions(image_format="fast"))
        got = _decode(path.read_bytes())
        assert np.array_equal(got, want[..., ::-1] if want.ndim == 3 else want)  # cv2 order: BGR
    assert read_tiff(b"\x89PNG\r\n\x1a\n") is None and read_tiff(b"II*\x00 torn") is None


def test_recovery_lists_a_torn_fast_tiff_as_damaged(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    frame, _ = frames_of("mono16", 641, 512, seed=7)
    path = write_one(tmp_path, executor, frame, CameraWriteOptions(image_format="fast"))
    whole = path.read_bytes()
    (path.parent / "000002.tif").write_bytes(whole[: len(whole) // 2])  # a write cut short by a crash
    record, damaged = _camera_record(path.parent)  # what recover_session lists for the camera
    assert [f.file for f in record.frames] == ["cam/000001.tif"]
    assert damaged == record.damaged_files == ["cam/000002.tif"]


def test_config_knows_exactly_the_writers_formats_and_defaults_to_fast() -> None:
    assert set(get_args(ImageFormat)) == set(_IMAGE_FORMATS)
    assert CameraConfig().image_format == "fast"
    assert all(c.image_format == "fast" for c in Config().cameras.values())
    cam = Config.from_dict({"cameras": {"x": {"pixel_format": "mono16", "image_format": "tiff-zstd"}}})
    assert cam.cameras["x"].image_format == "tiff-zstd"
    with pytest.raises(ValueError, match="image_format"):
        CameraWriteOptions(image_format="jxl")
