"""The world the simulated cameras look at. Pure image code: numpy and OpenCV, no I/O.

A 360°×180° equirectangular panorama (sky, ground tinted in 30° azimuth sectors, a mountain ridge,
buildings, a sun, a checkerboard target) is generated once per process in three flavours: colour
(BGR), grey and thermal (uint16, 20000–45000, so a 16→8-bit mistake is obvious). A view is an affine
crop of it around (pan, tilt) with a horizontal field of view of ``HFOV_DEG / zoom``; the degree grid,
its labels and a caption are drawn on the view afterwards so they stay sharp at any zoom.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, cast

import cv2
import numpy as np
from numpy.typing import NDArray

PPD = 8  # panorama pixels per degree: 2880×1440, ~12 MB in colour
HFOV_DEG = 60.0  # horizontal field of view at zoom 1
PAD_DEG = 45  # columns repeated on each side so a crop across ±180° needs no wrap logic
AZ0 = -180.0 - PAD_DEG  # azimuth of the padded panorama's left edge

Mode = Literal["colour", "gray", "thermal"]
Image = NDArray[np.uint8] | NDArray[np.uint16]

_T_SKY_ZENITH, _T_SKY_HORIZON = 20000, 24000
_T_GROUND_NEAR, _T_GROUND_FAR = 33000, 30000
_T_LINE, _T_TEXT, _T_OUTLINE = 38000, 45000, 20000


def _lerp(a: NDArray[Any], b: NDArray[Any], t: NDArray[Any]) -> NDArray[np.floating[Any]]:
    out: NDArray[np.floating[Any]] = a + (b - a) * t
    return out


def _grid_step(hfov: float) -> float:
    """Largest grid spacing that still shows at least ~3 lines across the view."""
    for step in (10.0, 5.0, 1.0, 0.5, 0.1):
        if hfov / step >= 3.0:
            return step
    return 0.05


def _fmt_deg(value: float, step: float) -> str:
    return f"{round(value):d}" if step >= 1.0 else f"{value:.1f}" if step >= 0.1 else f"{value:.2f}"


class Scene:
    """Panoramas in three flavours and a renderer of views into them (thread-safe: read-only)."""

    def __init__(self, seed: int = 7) -> None:
        colour, thermal = _build_panorama(seed)
        gray = np.asarray(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), np.uint8)
        pad = PAD_DEG * PPD
        self._pano: dict[Mode, Image] = {
            "colour": _pad(colour, pad),
            "gray": _pad(gray, pad),
            "thermal": _pad(thermal, pad),
        }

    def render(
        self,
        mode: Mode,
        width: int,
        height: int,
        pan_deg: float,
        tilt_deg: float,
        zoom: float,
        caption: str = "",
    ) -> Image:
        """View of ``width``×``height`` centred on (pan, tilt); uint16 for thermal, else uint8."""
        src = self._pano[mode]
        pan = (pan_deg + 180.0) % 360.0 - 180.0
        dpp = HFOV_DEG / max(zoom, 1e-3) / width  # degrees per output pixel, square pixels
        scale = dpp * PPD
        # Output pixel centre (x, y) looks at az = pan + (x + 0.5 - W/2)·dpp, el = tilt - (y + 0.5 - H/2)·dpp;
        # panorama pixel centres sit at (az - AZ0)·PPD - 0.5 and (90 - el)·PPD - 0.5.
        off_x = (pan + (0.5 - width / 2) * dpp - AZ0) * PPD - 0.5
        off_y = (90.0 - tilt_deg + (0.5 - height / 2) * dpp) * PPD - 0.5
        matrix = np.array([[scale, 0.0, off_x], [0.0, scale, off_y]], dtype=np.float64)
        # warpAffine keeps the source's dtype.
        view = cast(
            Image,
            cv2.warpAffine(
                src,
                matrix,
                (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            ),
        )
        _draw_overlay(view, mode, pan, tilt_deg, dpp, caption)
        return view


@functools.cache
def shared_scene() -> Scene:
    """One Scene per process: building the panoramas takes a fraction of a second."""
    return Scene()


def _pad(img: Image, pad: int) -> Image:
    out: Image = np.ascontiguousarray(np.concatenate([img[:, -pad:], img, img[:, :pad]], axis=1))
    return out


def _overlay_values(mode: Mode) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
    """(line, text, outline) colours and line type for one image flavour."""
    if mode == "colour":
        return (255, 255, 255), (255, 255, 255), (0, 0, 0), cv2.LINE_AA
    if mode == "gray":
        return (255,), (255,), (0,), cv2.LINE_AA
    # Thermal views are drawn as codes on an 8-bit ink mask (OpenCV 5 putText is 8-bit only), then
    # mapped through _THERMAL_INK; codes must not be blended, hence no anti-aliasing.
    return (1,), (3,), (2,), cv2.LINE_8


_THERMAL_INK = np.array([0, _T_LINE, _T_OUTLINE, _T_TEXT], np.uint16)


def _draw_overlay(view: Image, mode: Mode, pan: float, tilt: float, dpp: float, caption: str) -> None:
    if mode != "thermal":
        _draw_ink(cast(NDArray[np.uint8], view), mode, pan, tilt, dpp, caption)
        return
    ink = np.zeros(view.shape[:2], np.uint8)
    _draw_ink(ink, mode, pan, tilt, dpp, caption)
    inked = ink > 0
    view[inked] = _THERMAL_INK[ink[inked]]


def _draw_ink(img: NDArray[np.uint8], mode: Mode, pan: float, tilt: float, dpp: float, caption: str) -> None:
    """Degree grid with labels, a centre cross and the caption, drawn in place."""
    height, width = img.shape[:2]
    line, text, outline, line_type = _overlay_values(mode)
    font = cv2.FONT_HERSHEY_SIMPLEX
    fscale = max(0.35, width / 1280.0)
    thick = max(1, round(fscale * 2))
    hfov = width * dpp
    step = _grid_step(hfov)
    label_band = round(28 * fscale / 0.5)

    def put(label: str, x: int, y: int) -> None:
        cv2.putText(img, label, (x, y), font, fscale, outline, thick + 2, line_type)
        cv2.putText(img, label, (x, y), font, fscale, text, thick, line_type)

    # Vertical lines: azimuth.
    az = math.ceil((pan - width / 2 * dpp) / step) * step
    while az <= pan + width / 2 * dpp:
        x = round((az - pan) / dpp + width / 2 - 0.5)
        major = abs(az / 10.0 - round(az / 10.0)) < 1e-6
        cv2.line(img, (x, 0), (x, height - 1), line, 2 if major else 1, line_type)
        put(_fmt_deg((az + 180.0) % 360.0 - 180.0, step), x + 3, label_band - 6)
        az += step
    # Horizontal lines: elevation, only where the world has it.
    el = math.ceil((tilt - height / 2 * dpp) / step) * step
    while el <= tilt + height / 2 * dpp:
        if -90.0 <= el <= 90.0:
            y = round((tilt - el) / dpp + height / 2 - 0.5)
            major = abs(el / 10.0 - round(el / 10.0)) < 1e-6
            cv2.line(img, (0, y), (width - 1, y), line, 2 if major else 1, line_type)
            if y > label_band:  # keep clear of the azimuth labels along the top
                put(("+" if el > 0 else "") + _fmt_deg(el, step), 3, y - 4)
        el += step
    # Centre cross, then the caption (camera id and pose) at the bottom.
    cx, cy, arm = width // 2, height // 2, max(6, width // 40)
    cv2.line(img, (cx - arm, cy), (cx + arm, cy), text, thick, line_type)
    cv2.line(img, (cx, cy - arm), (cx, cy + arm), text, thick, line_type)
    if caption:
        put(caption, 3, height - 6)


def _build_panorama(seed: int) -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
    """Colour (BGR uint8) and thermal (uint16) panoramas of the same world, 360·PPD × 180·PPD."""
    rng = np.random.default_rng(seed)
    col8, th16 = _landscape()
    _draw_trees(col8, th16, rng)
    _draw_buildings(col8, th16)
    # Sun, hot.
    cv2.circle(col8, _pano_px(135.0, 35.0), 3 * PPD, (80, 230, 255), -1, cv2.LINE_AA)
    cv2.circle(th16, _pano_px(135.0, 35.0), 3 * PPD, 45000, -1)
    _draw_target(col8, th16)
    _draw_compass_letters(col8, th16)
    return col8, th16


def _pano_px(az_deg: float, el_deg: float) -> tuple[int, int]:
    """Panorama pixel (x, y) of an azimuth and elevation in degrees."""
    return round((az_deg + 180.0) * PPD), round((90.0 - el_deg) * PPD)


def _landscape() -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
    """Sky, ground tinted by azimuth sector and the mountain ridge, in colour and thermal."""
    h, w = 180 * PPD, 360 * PPD
    el = (90.0 - (np.arange(h, dtype=np.float32) + 0.5) / PPD)[:, None]  # degrees, column vector
    az = (-180.0 + (np.arange(w, dtype=np.float32) + 0.5) / PPD)[None, :]

    # Sky and ground gradients, per row.
    sky_t = np.clip(el / 90.0, 0.0, 1.0)[..., None]
    ground_t = np.clip(-el / 90.0, 0.0, 1.0)[..., None]
    sky = _lerp(np.array([250, 220, 180], np.float32), np.array([150, 60, 20], np.float32), sky_t)
    ground = _lerp(np.array([80, 150, 110], np.float32), np.array([40, 70, 100], np.float32), ground_t)
    is_sky = (el >= 0.0)[..., None]
    colour = np.where(is_sky, sky, ground) * np.ones((1, w, 1), np.float32)

    # Azimuth sectors of 30°, each with its own hue, strong on the ground, faint in the sky.
    sector = ((az + 180.0) // 30.0).astype(np.int32) % 12
    hues = np.array([[[(i * 15) % 180, 200, 220]] for i in range(12)], np.uint8)
    tints = cv2.cvtColor(hues, cv2.COLOR_HSV2BGR).reshape(12, 3).astype(np.float32)
    tint = tints[sector[0]][None, :, :]
    colour = np.where(is_sky, colour * 0.9 + tint * 0.1, colour * 0.6 + tint * 0.4)

    thermal = np.where(
        el >= 0.0,
        _T_SKY_HORIZON + (_T_SKY_ZENITH - _T_SKY_HORIZON) * np.clip(el / 90.0, 0, 1),
        _T_GROUND_FAR + (_T_GROUND_NEAR - _T_GROUND_FAR) * np.clip(-el / 30.0, 0, 1),
    ) * np.ones((1, w), np.float32)
    thermal = thermal + (sector[0][None, :] % 3) * 600.0  # sectors show in thermal too

    # Mountain ridge: a smooth periodic skyline 1–7° high.
    ridge = 3.5 + 1.8 * np.sin(np.radians(az * 3)) + 1.2 * np.sin(np.radians(az * 7 + 40))
    ridge = ridge + 0.6 * np.sin(np.radians(az * 19))
    mountain = (el >= 0.0) & (el < ridge)
    colour = np.where(mountain[..., None], np.array([120, 110, 125], np.float32), colour)
    thermal = np.where(mountain, 28000.0 + 300.0 * el, thermal)

    col8 = np.ascontiguousarray(np.clip(colour, 0, 255).astype(np.uint8))
    th16 = np.ascontiguousarray(np.clip(thermal, 0, 65535).astype(np.uint16))
    return col8, th16


def _draw_trees(col8: NDArray[np.uint8], th16: NDArray[np.uint16], rng: np.random.Generator) -> None:
    """Trees on the ground: small dark triangles scattered over the near field."""
    for _ in range(400):
        taz, tel = float(rng.uniform(-180, 180)), float(rng.uniform(-40, -1))
        size = 0.4 + 1.2 * (-tel / 40.0)
        x, y = _pano_px(taz, tel)
        s = max(2, round(size * PPD))
        pts = np.array([[x, y - 2 * s], [x - s, y], [x + s, y]], np.int32)
        cv2.fillPoly(col8, [pts], (30, 80 + int(rng.integers(0, 60)), 30))
        cv2.fillPoly(th16, [pts], 34500)


def _draw_buildings(col8: NDArray[np.uint8], th16: NDArray[np.uint16]) -> None:
    """Buildings on the horizon, with lit windows (hot in thermal)."""
    for i, baz in enumerate(range(-170, 180, 40)):
        bw, bh = 3.0 + (i % 3) * 2.0, 4.0 + (i * 7 % 5) * 1.5
        x0, y0 = _pano_px(baz, bh)
        x1, y1 = _pano_px(baz + bw, 0.0)
        wall = (60 + i * 12 % 80, 70 + i * 31 % 90, 150 + i * 17 % 100)
        cv2.rectangle(col8, (x0, y0), (x1, y1), wall, -1)
        cv2.rectangle(th16, (x0, y0), (x1, y1), 36000, -1)
        for wx in range(x0 + 4, x1 - 4, 8):
            for wy in range(y0 + 4, y1 - 4, 10):
                cv2.rectangle(col8, (wx, wy), (wx + 3, wy + 5), (120, 230, 250), -1)
                cv2.rectangle(th16, (wx, wy), (wx + 3, wy + 5), 42000, -1)


def _draw_target(col8: NDArray[np.uint8], th16: NDArray[np.uint16]) -> None:
    """A checkerboard target straight ahead below the horizon: 4°×4°, 8×8 squares."""
    for i in range(8):
        for j in range(8):
            x0, y0 = _pano_px(-2.0 + i * 0.5, -1.0 - j * 0.5)
            x1, y1 = _pano_px(-1.5 + i * 0.5, -1.5 - j * 0.5)
            dark = (i + j) % 2 == 0
            cv2.rectangle(col8, (x0, y0), (x1 - 1, y1 - 1), (20, 20, 20) if dark else (240, 240, 240), -1)
            cv2.rectangle(th16, (x0, y0), (x1 - 1, y1 - 1), 26000 if dark else 40000, -1)


def _draw_compass_letters(col8: NDArray[np.uint8], th16: NDArray[np.uint16]) -> None:
    """Compass letters painted large on the ground, one per quadrant (8-bit mask: see _overlay_values)."""
    letters = np.zeros(th16.shape[:2], np.uint8)
    for name, caz in (("N", 0.0), ("E", 90.0), ("S", 180.0), ("W", -90.0)):
        for a in (caz, caz - 360.0):
            x, y = _pano_px(a - 2.0, -12.0)
            cv2.putText(col8, name, (x, y), cv2.FONT_HERSHEY_DUPLEX, 3.0, (255, 255, 255), 6, cv2.LINE_AA)
            cv2.putText(letters, name, (x, y), cv2.FONT_HERSHEY_DUPLEX, 3.0, 255, 6)
    th16[letters > 0] = 41000
