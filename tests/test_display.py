"""Thermal display: fixed-range colour maps for mono frames (camera.display), their configuration
(cameras.<id>.display), and the places that show frames: previews, the live view, thumbnails."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from api import create_app
from api.dashboard import _live_image
from camera.display import COLORMAPS, colormap_lut, display_8bit, fixed_range_8bit, stretch_8bit
from camera.frames import Frame
from rigcore.atomic import write_json_atomic
from rigcore.config import Config, ConfigError, DisplayConfig
from rigcore.config_policy import Place, change_report, plan_change
from service.capture import CaptureService
from sessions.image_codecs import CameraWriteOptions, preview_8bit, preview_image
from sessions.writer import SessionWriter, create_session_dir

LWIR = "cameradevice_lwir_1"
IRON = DisplayConfig(min=1000, max=3000, colormap="ironbow")


def two_frames(value: int = 2000) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Two mono16 frames with different content (a cold and a hot scene, different ranges) that both
    hold ``value`` in a block at a different place."""
    a = np.tile(np.linspace(500, 2500, 64, dtype=np.uint16), (48, 1))
    b = np.full((48, 64), 5000, np.uint16)
    b[::2, ::3] = 800
    a[4:20, 4:20] = value
    b[28:44, 40:56] = value
    return a, b


def mono16_frame(arr: np.ndarray[Any, Any], index: int) -> Frame:
    return Frame(
        LWIR,
        arr.astype("<u2").tobytes(),
        arr.shape[1],
        arr.shape[0],
        "mono16",
        None,
        index,
        time.time(),
        time.monotonic() + index,
    )


# -- the mapping -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", COLORMAPS)
def test_every_colormap_is_a_256_entry_rgb_table(name: str) -> None:
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert not lut.flags.writeable


def test_unknown_colormap_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="inferno"):
        colormap_lut("rainbow-ish")


@pytest.mark.parametrize("name", [n for n in COLORMAPS if n != "gray"])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32])
def test_min_maps_to_the_first_entry_max_to_the_last_and_outside_is_clipped(name: str, dtype: Any) -> None:
    lo, hi = 40, 200
    lut = colormap_lut(name)
    arr = np.array([[lo, hi, 0, 255, (lo + hi) // 2]], dtype=dtype)
    out = display_8bit(arr, DisplayConfig(min=lo, max=hi, colormap=name))
    assert out.shape == (1, 5, 3)
    assert (out[0, 0] == lut[0]).all() and (out[0, 1] == lut[255]).all()
    assert (out[0, 2] == lut[0]).all(), "below min: clipped to the first entry"
    assert (out[0, 3] == lut[255]).all(), "above max: clipped to the last entry"
    assert (out[0, 4] == lut[128]).all(), "the middle of the range: the middle of the table (rounded)"


def test_gray_fixed_range_is_linear_monotonic_and_single_channel() -> None:
    ramp = np.arange(0, 65536, 7, dtype=np.uint16).reshape(1, -1)
    out = display_8bit(ramp, DisplayConfig(min=10000, max=50000))
    assert out.ndim == 2 and out.dtype == np.uint8
    assert (np.diff(out.astype(int)) >= 0).all()
    assert out.min() == 0 and out.max() == 255
    assert fixed_range_8bit(np.array([[20000]], np.uint16), 10000, 50000)[0, 0] == 64  # 63.75 rounded


def test_fixed_range_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="min < max"):
        fixed_range_8bit(np.zeros((2, 2), np.uint16), 5, 5)


def test_ironbow_gets_brighter_all_the_way() -> None:
    lut = colormap_lut("ironbow").astype(float)
    luma = lut @ np.array([0.2126, 0.7152, 0.0722])
    assert (np.diff(luma) > 0).all()
    assert tuple(lut[0]) == (0, 0, 0) and tuple(lut[255]) == (255, 255, 255)


def test_inferno_is_opencvs_table_in_rgb_order() -> None:
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_INFERNO)
    assert (colormap_lut("inferno") == bgr.reshape(256, 3)[:, ::-1]).all()
    arr = np.array([[0, 65535]], np.uint16)
    rgb = display_8bit(arr, DisplayConfig(min=0, max=65535, colormap="inferno"))
    assert (
        display_8bit(arr, DisplayConfig(min=0, max=65535, colormap="inferno"), bgr=True) == rgb[..., ::-1]
    ).all()


def test_without_display_settings_the_percentile_stretch_stays() -> None:
    a, b = two_frames()
    assert (display_8bit(a) == stretch_8bit(a)).all()
    assert (preview_8bit(b) == stretch_8bit(b)).all()
    colour = np.zeros((4, 4, 3), np.uint8)
    assert display_8bit(colour, IRON) is colour  # display settings concern mono frames only


def test_a_colormap_without_a_range_colours_the_stretch() -> None:
    a, _ = two_frames()
    out = display_8bit(a, DisplayConfig(colormap="inferno"))
    assert (out == colormap_lut("inferno")[stretch_8bit(a)]).all()


def test_the_same_raw_value_has_the_same_colour_in_two_different_frames() -> None:
    a, b = two_frames(2000)
    pa, pb = display_8bit(a, IRON), display_8bit(b, IRON)
    assert (pa[10, 10] == pb[36, 48]).all()
    assert (pa[10, 10] == colormap_lut("ironbow")[128]).all()
    # The percentile stretch gives the same value two different greys: why the fixed range exists.
    assert stretch_8bit(a)[10, 10] != stretch_8bit(b)[36, 48]


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("display", "message"),
    [
        ({"min": 3000, "max": 1000}, "min (3000) must be less than max (1000)"),
        ({"min": 1000, "max": 1000}, "must be less than max"),
        ({"min": 1000, "max": 3000, "colormap": "rainbow"}, "display.colormap"),
        ({"min": 1000}, "give both min and max"),
        ({"min": 1, "max": 2, "gamma": 2}, "display.gamma: unknown key"),
    ],
)
def test_a_bad_display_setting_fails_config_load_naming_the_key(
    tmp_path: Path, display: dict[str, Any], message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"cameras": {LWIR: {"pixel_format": "mono16", "display": display}}}))
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    assert f"cameras.{LWIR}.display" in str(info.value)
    assert message in str(info.value)


def test_display_is_optional_and_absent_by_default() -> None:
    assert all(cam.display is None for cam in Config().cameras.values())
    cfg = Config.from_dict({"cameras": {LWIR: {"pixel_format": "mono16", "display": {"min": 1, "max": 2}}}})
    assert cfg.cameras[LWIR].display == DisplayConfig(min=1, max=2, colormap="gray")


def test_put_config_may_set_the_display_and_needs_no_restart_for_it(tmp_path: Path) -> None:
    config = Config()
    config_file = (tmp_path / "config.json").resolve()
    write_json_atomic(config_file, config.to_json())
    place = Place(config_file, tmp_path, config.resolve(tmp_path))
    patch = {"cameras": {LWIR: {"display": {"min": 2900, "max": 3300, "colormap": "inferno"}}}}
    new = plan_change(config, patch, place)
    assert new.cameras[LWIR].display == DisplayConfig(min=2900, max=3300, colormap="inferno")
    report = change_report(config, new)
    assert report["changed"] == ["cameras"] and "cameras" not in report["restart_required"]
    moved = plan_change(config, {"cameras": {LWIR: {"previews": True}}}, place)
    assert "cameras" in change_report(config, moved)["restart_required"]


# -- where frames are shown ------------------------------------------------------------------------
def test_preview_image_is_a_palette_image_with_the_exact_colours() -> None:
    a, _ = two_frames()
    image = preview_image(a, IRON)
    assert image.mode == "P" and (np.asarray(image.convert("RGB")) == display_8bit(a, IRON)).all()
    assert preview_image(a, DisplayConfig(min=0, max=4000)).mode == "L"
    assert preview_image(a).mode == "L"


def test_previews_with_a_fixed_range_give_equal_values_the_same_colour(tmp_path: Path) -> None:
    session_id, folder = create_session_dir(tmp_path)
    a, b = two_frames(2000)
    with ThreadPoolExecutor(2) as executor:
        writer = SessionWriter(
            folder, session_id, {LWIR: CameraWriteOptions(previews=True, display=IRON)}, executor
        )
        pose = {"pan_deg_x100": 0, "tilt_deg_x100": 0, "zoom": None, "distance_m": None}
        writer.add(mono16_frame(a, 1), pose)
        writer.add(mono16_frame(b, 2), pose)
        manifest = writer.finish({}, timeout=30)
    previews = []
    for frame in manifest.cameras[LWIR].frames:
        with Image.open(folder / frame.preview) as image:
            assert image.mode == "P", "a palette PNG: one byte a pixel, the colour map as its palette"
            previews.append(np.asarray(image.convert("RGB")))
    assert previews[0].shape == (48, 64, 3)
    assert (previews[0][10, 10] == previews[1][36, 48]).all()
    assert (previews[0][10, 10] == colormap_lut("ironbow")[128]).all()
    # The lossless file is untouched by the display settings.
    assert (np.asarray(Image.open(folder / manifest.cameras[LWIR].frames[1].file)) == b).all()


def test_live_view_gives_the_same_raw_value_the_same_colour_in_two_frames() -> None:
    a, b = two_frames(2000)
    images = []
    for i, arr in enumerate((a, b)):
        data, mimetype = _live_image(mono16_frame(arr, i), "png", 640, IRON)
        assert mimetype == "image/png"
        images.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))  # BGR
    expected = colormap_lut("ironbow")[128][::-1]
    assert (images[0][10, 10] == expected).all() and (images[1][36, 48] == expected).all()
    plain, _ = _live_image(mono16_frame(a, 0), "png", 640, None)
    assert cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_UNCHANGED).ndim == 2  # stretch: grey


@pytest.mark.integration
def test_thumbnails_and_views_use_the_cameras_display_settings(
    start_service: Callable[..., CaptureService],
) -> None:
    cameras = Config().to_json()["cameras"]
    cameras[LWIR]["display"] = {"min": 1000, "max": 3000, "colormap": "ironbow"}
    service = start_service(cameras=cameras)
    client = create_app(service).test_client()
    folder = service.paths.save_dir / "20260101-000000-000"
    (folder / LWIR / "previews").mkdir(parents=True)
    a, b = two_frames(2000)
    for name, arr in (("000001.png", a), ("000002.png", b)):
        Image.fromarray(arr).save(folder / LWIR / name)
    expected = colormap_lut("ironbow")[128]
    views = []
    for name in ("000001.png", "000002.png"):
        resp = client.get(f"/sessions/{folder.name}/files/{LWIR}/{name}?view=1")
        assert resp.status_code == 200
        views.append(np.asarray(Image.open(io.BytesIO(resp.data)).convert("RGB")))
    assert (views[0][10, 10] == expected).all() and (views[1][36, 48] == expected).all()
    thumbs = []
    for name in ("000001.png", "000002.png"):
        resp = client.get(f"/sessions/{folder.name}/thumbs/{LWIR}/{name}?size=64")
        assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
        thumbs.append(np.asarray(Image.open(io.BytesIO(resp.data)).convert("RGB")).astype(int))
    # JPEG is lossy (and subsamples colour): the centre of each 16x16 block of the value is within a
    # few levels of the table's entry; the percentile stretch would put them 100 levels apart.
    assert np.abs(thumbs[0][12, 12] - expected).max() <= 12
    assert np.abs(thumbs[1][36, 48] - expected).max() <= 12
    # A preview is already a display copy: shown as it is, not mapped again.
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(folder / LWIR / "previews" / "000001.png")
    resp = client.get(f"/sessions/{folder.name}/files/{LWIR}/previews/000001.png?view=1")
    assert np.asarray(Image.open(io.BytesIO(resp.data)))[0, 0] == 200
