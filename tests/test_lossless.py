"""Saved frames are bit-exact: 16-bit stays 16-bit, JPEG byte for byte, bgr8 in the right order; raw
frames in the default format ("fast", tests/test_image_formats.py has every format) read the same in
Pillow and tifffile."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from api import create_app
from service.capture import CaptureService
from tests.conftest import batch
from tests.framesrv import FrameServer, bgr8, jpeg, mono16

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # rates and timings: alone (tests/solo.py)

CAMS = ("cameradevice_lwir_1", "cameradevice_rgb_1", "cameradevice_swir_1")


def test_frames_round_trip_bit_exact_and_every_frame_of_every_packet_is_kept(
    start_service: Callable[..., CaptureService],
) -> None:
    with FrameServer() as frames:
        service = start_service("mqtt", streams=[{"url": frames.url}])
        client = create_app(service).test_client()
        resp = client.post("/process-request", json=batch(0, 0, seconds=1.5, cameras=CAMS))
        body = resp.get_json()
        assert body["status"] == "succeeded", body
    path = Path(body["session"]["path"])
    manifest = json.loads((path / "session.json").read_text())
    for cam in CAMS:
        frames_ = manifest["cameras"][cam]["frames"]
        indices = [f["frame_index"] for f in frames_]
        assert len(indices) >= 20, cam
        # Consecutive: no frame of a multi-packet, multi-frame message was dropped.
        assert indices == list(range(indices[0], indices[0] + len(indices))), cam
    for f in manifest["cameras"]["cameradevice_lwir_1"]["frames"]:
        assert f["file"].endswith(".tif")  # raw cameras default to image_format "fast" (a zstd TIFF)
        with Image.open(path / f["file"]) as img:
            got = np.asarray(img)
        assert got.dtype == np.uint16
        assert np.array_equal(got, mono16(f["frame_index"]))
        assert np.array_equal(tifffile.imread(path / f["file"]), mono16(f["frame_index"]))
    for f in manifest["cameras"]["cameradevice_rgb_1"]["frames"]:
        assert f["file"].endswith(".jpg")
        assert (path / f["file"]).read_bytes() == jpeg(f["frame_index"])
    for f in manifest["cameras"]["cameradevice_swir_1"]["frames"]:
        with Image.open(path / f["file"]) as img:
            got = np.asarray(img.convert("RGB"))
        assert np.array_equal(got, bgr8(f["frame_index"])[:, :, ::-1])
        assert np.array_equal(tifffile.imread(path / f["file"]), bgr8(f["frame_index"])[:, :, ::-1])
