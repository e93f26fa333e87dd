"""The simulated cameras' content (issue 24): the smooth scene, fixed per-pixel sensor noise, or a
structured high-frequency pattern — each a layer held constant per camera, the same at every pose."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tifffile

from simulator.__main__ import _parser, config_from_args
from simulator.config import CameraSim
from simulator.content import CONTENTS, NOISE_SIGMA, apply_layer, content_layer
from simulator.frames import FrameRenderer, _mode_of
from simulator.scene import shared_scene

SHAPES = [("mono8", 64, 48), ("mono16", 64, 48), ("rgb8", 64, 48), ("bgr8", 64, 48)]


def view(renderer: FrameRenderer, pan: float) -> npt.NDArray[Any]:
    cam = renderer.cam
    pixels = renderer.render(renderer.key_for(pan, 2.0, 1.0))
    dtype = np.dtype("<u2") if cam.pixel_format == "mono16" else np.dtype(np.uint8)
    shape = (cam.height, cam.width, 3) if cam.pixel_format in ("rgb8", "bgr8") else (cam.height, cam.width)
    return np.frombuffer(pixels, dtype).reshape(shape).astype(np.int64)


@pytest.mark.parametrize("content", ["noise", "pattern"])
@pytest.mark.parametrize(("pixel_format", "width", "height"), SHAPES)
def test_the_layer_is_held_constant_at_every_pose(
    content: str, pixel_format: str, width: int, height: int
) -> None:
    scene = shared_scene()
    cam = CameraSim(pixel_format, width, height, 30.0, content=content)  # type: ignore[arg-type]
    renderer = FrameRenderer("cameradevice_swir_1", cam, scene)
    plain = FrameRenderer("cameradevice_swir_1", dataclasses.replace(cam, content="smooth"), scene)
    img = scene.render(_mode_of(pixel_format), width, height, 0.0, 2.0, 1.0)
    layer = content_layer(content, img.shape, img.dtype.itemsize, "cameradevice_swir_1")  # type: ignore[arg-type]
    assert layer is not None and layer.any()
    want = layer[..., ::-1] if pixel_format == "rgb8" else layer  # rendered in BGR order
    top = np.iinfo(img.dtype).max
    for pan in (0.0, 25.0):  # the same layer at two poses, wherever the scene leaves it room
        smooth = view(plain, pan)
        room = (smooth - np.abs(want) >= 0) & (smooth + np.abs(want) <= top)
        assert room.mean() > 0.5
        assert np.array_equal((view(renderer, pan) - smooth)[room], want[room])


def test_layers_are_per_camera_repeatable_and_of_the_stated_size() -> None:
    a = content_layer("noise", (480, 640), 2, "cameradevice_swir_1")
    b = content_layer("noise", (480, 640), 2, "cameradevice_swir_1")
    c = content_layer("noise", (480, 640), 2, "cameradevice_lwir_1")
    assert a is not None and b is not None and c is not None
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(float(a.std()) - NOISE_SIGMA) < 0.1 and abs(float(a.mean())) < 0.05
    assert content_layer("smooth", (480, 640), 2, "x") is None
    img = np.full((4, 4), 65530, np.uint16)
    assert apply_layer(img, np.full((4, 4), 100, np.int32)).max() == 65535  # clipped, not wrapped
    with pytest.raises(ValueError, match="content"):
        CameraSim("mono16", 64, 48, 30.0, content="stars")  # type: ignore[arg-type]


def test_the_pattern_compresses_but_less_than_the_smooth_scene() -> None:
    """What the benchmarks rely on: smooth frames compress 20-30x, noise 2-3x, the
    pattern in between — structured, not random."""
    scene = shared_scene()
    ratios = {}
    for content in CONTENTS:
        renderer = FrameRenderer("cam", CameraSim("mono16", 640, 512, 30.0, content=content), scene)
        arr = view(renderer, 12.0).astype("<u2")
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, arr, compression="zstd", predictor=True, metadata=None)
        ratios[content] = arr.nbytes / len(buffer.getvalue())
    assert ratios["smooth"] > 3 * ratios["pattern"] and ratios["pattern"] > ratios["noise"] > 1.5


def test_the_command_line_sets_every_cameras_content() -> None:
    cfg = config_from_args(_parser().parse_args(["--content", "pattern"]))
    assert {cam.content for cam in cfg.cameras.values()} == {"pattern"}
    assert {cam.content for cam in config_from_args(_parser().parse_args([])).cameras.values()} == {"smooth"}
    with pytest.raises(SystemExit):
        _parser().parse_args(["--content", "stars"])
