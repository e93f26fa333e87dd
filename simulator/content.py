"""What the simulated cameras' frames hold besides the rendered scene (``CameraSim.content``). Pure numpy.

The rendered scene is smooth: lossless formats compress it 25-90x at a fraction of their cost on a
real sensor's frames, so a benchmark of saving must not rely on it alone. Two other contents, both
*held constant* (one fixed layer per camera, added to every view; a frame at a fixed pose is the
same frame every time, so the rig's cost does not change):

- ``noise``: fixed per-pixel sensor noise, Gaussian with a standard deviation of
  :data:`NOISE_SIGMA` counts of the pixel format (a sensor's fixed-pattern and read noise);
- ``pattern``: a structured high-frequency texture over the scene: a checkerboard whose period
  changes every 24 pixels (1-5 pixels across and down) plus a texture of 8-pixel "words" drawn from
  a dictionary of 16 (four levels each). Lossless coders find it compressible (4-5x) but costly:
  Zstandard after the horizontal predictor spends about twice as long on an rgb8 frame of it as on
  one with noise (bench/codec_bench.py).

Each camera's layer is seeded by its id, so two cameras never share it and a run repeats exactly.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Content = Literal["smooth", "noise", "pattern"]
CONTENTS: tuple[Content, ...] = ("smooth", "noise", "pattern")

NOISE_SIGMA = 3.0  # counts of the pixel format (8-bit or 16-bit alike), as --sim-noise 3
PATTERN_AMPLITUDE = {1: 60, 2: 600}  # counts, by bytes per sample: 8-bit, 16-bit
PATTERN_CELL = 24  # pixels: the checker's period changes this often
WORD = 8  # pixels in one texture word
WORDS = 16  # words in the texture's dictionary
WORD_LEVELS = 4  # values a word's pixel takes


def content_layer(
    content: Content, shape: tuple[int, ...], itemsize: int, seed_text: str
) -> npt.NDArray[Any] | None:
    """The fixed layer (int32, ``shape``: HxW or HxWx3) added to every view of one camera, or None for
    ``smooth``. ``itemsize``: bytes per sample (1 or 2); ``seed_text``: the camera id."""
    if content == "smooth":
        return None
    rng = np.random.default_rng(zlib.crc32(seed_text.encode("utf-8")))
    if content == "noise":
        return np.rint(rng.normal(0.0, NOISE_SIGMA, shape)).astype(np.int32)
    if content == "pattern":
        height, width = shape[:2]
        layer = _pattern(height, width, PATTERN_AMPLITUDE[itemsize], rng)
        return np.ascontiguousarray(np.broadcast_to(layer[..., None], shape)) if len(shape) == 3 else layer
    raise ValueError(f"content {content!r} not in {CONTENTS}")


def _pattern(height: int, width: int, amplitude: int, rng: np.random.Generator) -> npt.NDArray[np.int32]:
    y, x = np.mgrid[0:height, 0:width]
    period_x = 1 + (y // PATTERN_CELL) % 5
    period_y = 1 + (x // PATTERN_CELL) % 5
    checker = ((x // period_x + y // period_y) % 2) * amplitude
    words = rng.integers(0, WORD_LEVELS, (WORDS, WORD)) * (amplitude // WORD_LEVELS)
    picks = rng.integers(0, WORDS, (height, -(-width // WORD)))
    texture = words[picks].reshape(height, -1)[:, :width]
    out: npt.NDArray[np.int32] = (checker // 2 + texture // 2).astype(np.int32)
    return out


def apply_layer(img: npt.NDArray[Any], layer: npt.NDArray[Any] | None) -> npt.NDArray[Any]:
    """``img`` plus the layer, clipped to its integer type (``img`` itself when there is none)."""
    if layer is None:
        return img
    info = np.iinfo(img.dtype)
    out: npt.NDArray[Any] = np.clip(img.astype(np.int32) + layer, info.min, info.max).astype(img.dtype)
    return out


__all__ = ["CONTENTS", "NOISE_SIGMA", "Content", "apply_layer", "content_layer"]
