"""sessions.writer: session folders, lossless frame files, session.json (docs/protocol.md §6).

Real files under tmp_path and a real ThreadPoolExecutor throughout.
"""

from __future__ import annotations

import gc
import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
import pytest
from PIL import Image

import sessions.writer as writer_module
from camera.frames import Frame, decode_message
from sessions.image_codecs import CameraWriteOptions, Pixels, frame_to_array, preview_8bit
from sessions.manifest import FORMAT_VERSION, SessionManifest, SessionStatus, read_manifest, write_manifest
from sessions.writer import SessionWriter, WriteError, create_session_dir

# Seconds; generous so a slow CI never flakes, short enough that a hang fails. Scaled like conftest's.
TIMEOUT = 20.0 * float(os.environ.get("RIGCAPTURE_TIME_FACTOR", "1"))
POSE = {"pan_deg": 12.5, "tilt_deg": -3.0, "zoom": 4, "distance_m": None}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-writer")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def session(tmp_path: Path) -> tuple[str, Path]:
    return create_session_dir(tmp_path / "save_images")


def make_frame(
    camera_id: str,
    pixels: bytes,
    width: int,
    height: int,
    pixel_format: str,
    *,
    index: int | None = None,
    at: float = 1_790_000_000.0,
) -> Frame:
    return Frame(
        camera_id,
        pixels,
        width,
        height,
        pixel_format,
        None if index is None else index * 1000,
        index,
        at,
        1.0,
    )


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 200, 30)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (24, 16), (10, 200, 30, 128)).save(buf, "PNG")
    return buf.getvalue()


def mono16_array(height: int = 48, width: int = 64) -> np.ndarray[Any, np.dtype[np.uint16]]:
    rng = np.random.default_rng(16)
    arr = rng.integers(0, 65536, size=(height, width), dtype=np.uint16)
    arr[0, :4] = [0, 255, 256, 65535]  # the edges of both bytes
    return arr


# -- session folders -----------------------------------------------------------------------------


def test_session_id_is_local_time_to_the_millisecond(tmp_path: Path) -> None:
    now = 1_790_000_000.123
    session_id, path = create_session_dir(tmp_path / "new" / "save", now)
    expected = time.strftime("%Y%m%d-%H%M%S", time.localtime(1_790_000_000)) + "-123"
    assert session_id == expected
    assert path == tmp_path / "new" / "save" / session_id and path.is_dir()
    assert create_session_dir(tmp_path / "new" / "save", now)[0] == expected + "-2"
    assert create_session_dir(tmp_path / "new" / "save", now)[0] == expected + "-3"


def test_session_ids_never_collide_in_a_tight_loop(tmp_path: Path) -> None:
    ids = [create_session_dir(tmp_path)[0] for _ in range(500)]
    assert len(set(ids)) == 500
    assert all(re.fullmatch(r"\d{8}-\d{6}-\d{3}(-\d+)?", i) for i in ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ids)


def test_session_ids_never_collide_across_threads(tmp_path: Path) -> None:
    now = time.time()  # every thread asks for the very same millisecond
    start = threading.Barrier(8)
    results: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        start.wait(TIMEOUT)
        mine = [create_session_dir(tmp_path, now)[0] for _ in range(25)] + [
            create_session_dir(tmp_path)[0] for _ in range(25)
        ]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert len(results) == 400
    assert len(set(results)) == 400


# -- arrays and previews -------------------------------------------------------------------------


def test_frame_to_array_shapes_dtypes_and_channel_order() -> None:
    arr16 = mono16_array(3, 5)
    a = frame_to_array(make_frame("c", arr16.astype("<u2").tobytes(), 5, 3, "mono16"))
    assert a.shape == (3, 5) and a.dtype == np.uint16 and np.array_equal(a, arr16)
    a8 = frame_to_array(make_frame("c", bytes(range(15)), 5, 3, "mono8"))
    assert a8.shape == (3, 5) and a8.dtype == np.uint8 and a8[2, 4] == 14
    rgb = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    assert np.array_equal(frame_to_array(make_frame("c", rgb.tobytes(), 5, 3, "rgb8")), rgb)
    bgr = rgb[..., ::-1].tobytes()
    out = frame_to_array(make_frame("c", bgr, 5, 3, "bgr8"))
    assert out.shape == (3, 5, 3) and out.dtype == np.uint8 and np.array_equal(out, rgb)
    with pytest.raises(ValueError):
        frame_to_array(make_frame("c", jpeg_bytes(), 24, 16, "encoded"))


def test_preview_stretches_2nd_to_98th_percentile() -> None:
    ramp = np.arange(10_000, dtype=np.uint16).reshape(100, 100) + 1000
    out = preview_8bit(ramp)
    assert out.dtype == np.uint8 and out.shape == ramp.shape
    assert out.min() == 0 and out.max() == 255
    # about 2 % of pixels clip at each end
    assert 150 <= int((out == 0).sum()) <= 250 and 150 <= int((out == 255).sum()) <= 250
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)  # monotone
    floats = preview_8bit(ramp.astype(np.float32))
    assert floats.dtype == np.uint8 and floats.min() == 0 and floats.max() == 255


def test_preview_of_flat_and_colour_images() -> None:
    assert np.all(preview_8bit(np.zeros((4, 4), np.uint16)) == 0)
    assert np.all(preview_8bit(np.full((4, 4), 65535, np.uint16)) == 255)  # saturated shows white
    assert np.all(preview_8bit(np.full((4, 4), 200, np.uint8)) == 200)
    assert np.all(preview_8bit(np.full((4, 4), 3.5, np.float64)) == 0)
    nearly_flat = np.full((10, 10), 500, np.uint16)
    nearly_flat[0, 0] = 900  # one hot pixel: percentiles equal, min-max used
    out = preview_8bit(nearly_flat)
    assert out[0, 0] == 255 and out[5, 5] == 0
    colour = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert preview_8bit(colour) is colour
    assert preview_8bit(np.zeros((0, 3), np.uint16)).shape == (0, 3)


def test_options_and_camera_ids_are_checked(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    with pytest.raises(ValueError, match="jpeg"):
        CameraWriteOptions(image_format="jpeg")
    for bad in ("../x", "a/b", "", "..", " padded", "session.json"):
        with pytest.raises(ValueError, match="folder name"):
            SessionWriter(tmp_path, "s", {bad: CameraWriteOptions()}, executor)


# -- lossless files ------------------------------------------------------------------------------


@pytest.mark.parametrize(("image_format", "ext"), [("png", "png"), ("png-small", "png"), ("tiff", "tif")])
def test_mono16_round_trips_bit_exact(
    session: tuple[str, Path], executor: ThreadPoolExecutor, image_format: str, ext: str
) -> None:
    session_id, path = session
    arr = mono16_array()
    w = SessionWriter(path, session_id, {"lwir": CameraWriteOptions(image_format=image_format)}, executor)
    w.add(make_frame("lwir", arr.astype("<u2").tobytes(), 64, 48, "mono16", index=0), POSE)
    w.finish({"status": "complete"}, timeout=TIMEOUT)
    file = path / "lwir" / f"000001.{ext}"
    with Image.open(file) as im:
        assert im.mode == "I;16"
        back = np.asarray(im)
    assert back.dtype == np.uint16
    assert back.max() > 255
    assert np.array_equal(back, arr)
    # An independent reader (libpng / libtiff in OpenCV) sees the same values: the bytes on disk
    # are in the file format's own byte order, not just symmetric within Pillow.
    other = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
    assert other is not None
    assert other.dtype == np.uint16 and np.array_equal(other, arr)


def test_mono8_rgb8_and_bgr8_are_lossless_rgb(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    rng = np.random.default_rng(8)
    mono = rng.integers(0, 256, (16, 20), dtype=np.uint8)
    rgb = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    cameras = {
        "swir": CameraWriteOptions(),
        "rgb": CameraWriteOptions(),
        "bgr": CameraWriteOptions(image_format="tiff"),
    }
    w = SessionWriter(path, session_id, cameras, executor)
    w.add(make_frame("swir", mono.tobytes(), 20, 16, "mono8"), POSE)
    w.add(make_frame("rgb", rgb.tobytes(), 20, 16, "rgb8"), POSE)
    w.add(make_frame("bgr", np.ascontiguousarray(rgb[..., ::-1]).tobytes(), 20, 16, "bgr8"), POSE)
    w.add(make_frame("bgr", np.ascontiguousarray(rgb[..., ::-1]).tobytes(), 20, 16, "bgr8"), POSE)
    w.finish({}, timeout=TIMEOUT)
    with Image.open(path / "swir" / "000001.png") as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), mono)
    with Image.open(path / "rgb" / "000001.png") as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)
    for name in ("000001.tif", "000002.tif"):
        with Image.open(path / "bgr" / name) as im:
            assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)  # stored in RGB order
    assert not (path / "swir" / "previews").exists()


def test_encoded_frames_are_written_byte_for_byte(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    jpg, png = jpeg_bytes(), png_bytes()
    w = SessionWriter(
        path, session_id, {"rgb": CameraWriteOptions(previews=True, image_format="tiff")}, executor
    )
    w.add(make_frame("rgb", jpg, 24, 16, "encoded", index=1), POSE)
    w.add(make_frame("rgb", png, 24, 16, "encoded", index=2), POSE)
    doc = w.finish({}, timeout=TIMEOUT)
    assert doc.status == SessionStatus.COMPLETE  # no status given: complete
    assert (path / "rgb" / "000001.jpg").read_bytes() == jpg
    assert (path / "rgb" / "000002.png").read_bytes() == png
    frames = doc.to_json()["cameras"]["rgb"]["frames"]
    assert [f["file"] for f in frames] == ["rgb/000001.jpg", "rgb/000002.png"]
    assert not (path / "rgb" / "previews").exists()  # encoded frames are viewable already
    assert all("preview" not in f for f in frames)


def test_previews_are_8bit_in_a_previews_folder_beside(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    arr = mono16_array()
    rgb = np.random.default_rng(3).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    cameras = {
        "lwir": CameraWriteOptions(previews=True),
        "colour": CameraWriteOptions(previews=True, image_format="tiff"),
    }
    w = SessionWriter(path, session_id, cameras, executor)
    w.add(make_frame("lwir", arr.tobytes(), 64, 48, "mono16"), POSE)
    w.add(make_frame("colour", rgb[..., ::-1].tobytes(), 20, 16, "bgr8"), POSE)
    doc = w.finish({}, timeout=TIMEOUT).to_json()

    with Image.open(path / "lwir" / "000001.png") as im:
        assert im.mode == "I;16" and np.array_equal(np.asarray(im), arr)  # the lossless file is intact
    with Image.open(path / "lwir" / "previews" / "000001.png") as im:
        assert im.mode == "L"
        preview = np.asarray(im)
    assert preview.dtype == np.uint8 and np.array_equal(preview, preview_8bit(arr))
    with Image.open(path / "colour" / "previews" / "000001.png") as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)
    assert sorted(p.name for p in (path / "lwir").iterdir()) == ["000001.png", "previews"]
    assert doc["cameras"]["lwir"]["frames"][0]["preview"] == "lwir/previews/000001.png"
    assert doc["cameras"]["colour"]["frames"][0]["file"] == "colour/000001.tif"


# -- the manifest --------------------------------------------------------------------------------


def test_session_json_lists_frames_in_arrival_order_and_is_written_last(
    session: tuple[str, Path], executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id, path = session
    real_encode = writer_module.encode_frame

    def slow_encode(
        frame: Frame, options: CameraWriteOptions, pixels: Pixels | None = None, setting: Any = None
    ) -> tuple[Pixels, bytes | None]:
        # Later frames finish first, so completion order differs from arrival order.
        time.sleep(0.002 * (40 - (frame.frame_index or 0)))
        return real_encode(frame, options, pixels, setting)

    written: list[Path] = []

    def checked_write_manifest(folder: Path, manifest: SessionManifest) -> None:
        files = [f.file for cam in manifest.cameras.values() for f in cam.frames]
        assert files and all((path / f).is_file() for f in files), "session.json before its frames"
        write_manifest(folder, manifest)
        written.append(folder)

    monkeypatch.setattr(writer_module, "encode_frame", slow_encode)
    monkeypatch.setattr(writer_module, "write_manifest", checked_write_manifest)

    cameras = {
        "swir": CameraWriteOptions(),
        "lwir": CameraWriteOptions(previews=True),
        "idle": CameraWriteOptions(),
    }
    w = SessionWriter(path, session_id, cameras, executor)
    arrivals: list[tuple[str, int]] = []
    for i in range(40):
        camera_id = "swir" if i % 3 else "lwir"
        fmt = "mono8" if camera_id == "swir" else "mono16"
        pixels = bytes([i]) * (4 * 2 * (2 if fmt == "mono16" else 1))
        w.add(
            make_frame(camera_id, pixels, 4, 2, fmt, index=i, at=1_790_000_000.0 + i), {**POSE, "pan_deg": i}
        )
        arrivals.append((camera_id, i))
    for reason_no in range(7):
        w.reject("swir", f"bad frame {reason_no}")
    manifest = {
        "session_id": session_id,
        "job_id": "job-1",
        "status": "complete",
        "request": {"commands": []},
        "record_started_at": 1_790_000_000.0,
        "record_ended_at": 1_790_000_040.0,
    }
    model = w.finish(manifest, timeout=TIMEOUT)
    assert isinstance(model, SessionManifest) and written == [path]  # through the checked write, once
    doc = model.to_json()

    on_disk = json.loads((path / "session.json").read_text(encoding="utf-8"))
    assert on_disk == doc
    assert read_manifest(path) == model
    assert {k: doc[k] for k in manifest} == manifest
    assert doc["format_version"] == FORMAT_VERSION == 3 and doc["problems"] == []
    assert doc["write_errors"] == [] and doc["write_error_count"] == 0  # always present, 0 when none
    assert set(doc["cameras"]) == {"swir", "lwir", "idle"}
    assert doc["cameras"]["idle"] == {
        "frame_count": 0,
        "rejected_frames": 0,
        "rejection_reasons": [],
        "frames": [],
        "time_sources": {},
        "clock": None,
        "encodings": {},
    }
    for camera_id in ("swir", "lwir"):
        expected = [i for c, i in arrivals if c == camera_id]
        entries = doc["cameras"][camera_id]["frames"]
        assert doc["cameras"][camera_id]["frame_count"] == len(expected)
        # Timed by arrival (no router judged them), and how they were written, both counted.
        assert [doc["cameras"][camera_id][k] for k in ("time_sources", "encodings")] == [
            {"arrival": len(expected)},
            {"png": len(expected)},
        ]
        assert [e["captured_at"] for e in entries] == [e["received_at"] for e in entries]
        assert [e["frame_index"] for e in entries] == expected
        assert [e["pose"]["pan_deg"] for e in entries] == expected
        assert [e["received_at"] for e in entries] == [1_790_000_000.0 + i for i in expected]
        assert [e["timestamp_ns"] for e in entries] == [i * 1000 for i in expected]
        assert [e["file"] for e in entries] == [
            f"{camera_id}/{n:06d}.png" for n in range(1, len(expected) + 1)
        ]
    assert doc["cameras"]["swir"]["rejected_frames"] == 7
    assert doc["cameras"]["swir"]["rejection_reasons"] == [f"bad frame {n}" for n in range(5)]
    # A camera with no frames gets no folder; no temporary files are left behind.
    assert sorted(p.name for p in path.iterdir()) == ["lwir", "session.json", "swir"]
    assert not any(p.name.endswith(".tmp") for p in path.rglob("*"))
    assert w.camera_summary()["swir"] == {
        "frame_count": 26,
        "rejected_frames": 7,
        "written_frames": 26,
        "failed_writes": 0,
    }
    with pytest.raises(RuntimeError, match="finished"):
        w.add(make_frame("swir", b"\0" * 8, 4, 2, "mono8"), POSE)


def test_decoded_message_to_files(session: tuple[str, Path], executor: ThreadPoolExecutor) -> None:
    """The two halves together: a wire message in, lossless files and a manifest out."""
    session_id, path = session
    arr = mono16_array(8, 8)
    message = msgpack.packb(
        [
            {
                "camera_frames": [
                    {
                        "device_id": " cameradevice_lwir_1 ",
                        "image_data": {"pixels": arr.tobytes(), "width": 8, "height": 8},
                        "frame_index": 3,
                    },
                    {
                        "device_id": "cameradevice_lwir_1",
                        "image_data": {"pixels": b"short", "width": 8, "height": 8},
                    },
                ]
            }
        ]
    )
    frames, rejections = decode_message(message, {"cameradevice_lwir_1": "mono16"}, 1.0, 2.0)
    w = SessionWriter(path, session_id, {"cameradevice_lwir_1": CameraWriteOptions()}, executor)
    for f in frames:
        w.add(f, POSE)
    for r in rejections:
        assert r.camera_id is not None
        w.reject(r.camera_id, r.reason)
    doc = w.finish({"status": "complete"}, timeout=TIMEOUT).to_json()
    camera = doc["cameras"]["cameradevice_lwir_1"]
    assert (camera["frame_count"], camera["rejected_frames"]) == (1, 1)
    assert camera["rejection_reasons"] == ["mono16 frame 8x8 needs 128 bytes, got 5"]
    with Image.open(path / camera["frames"][0]["file"]) as im:
        assert np.array_equal(np.asarray(im), arr)


# -- back-pressure figures and memory ------------------------------------------------------------


def test_pending_progress_and_pixels_released(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    gate = threading.Event()
    blocker: Future[bool] = executor.submit(gate.wait, TIMEOUT)
    for _ in range(3):  # occupy the other workers too, so no write can start
        executor.submit(gate.wait, TIMEOUT)
    w = SessionWriter(path, session_id, {"swir": CameraWriteOptions()}, executor)
    pixels = bytes(range(200)) * 10  # 2000 bytes, 50x40 mono8
    for _ in range(5):
        w.add(make_frame("swir", pixels, 50, 40, "mono8"), POSE)
    assert w.pending() == 5 and w.progress() == (0, 5) and w.pending_bytes() == 10_000
    with pytest.raises(TimeoutError, match="5 writes still pending"):
        w.wait(timeout=0.05)
    gate.set()
    assert blocker.result(TIMEOUT)
    w.wait(TIMEOUT)
    assert w.pending() == 0 and w.progress() == (5, 5) and w.pending_bytes() == 0
    gc.collect()
    # Only the test's own reference is left: the writer dropped every Frame once written.
    assert not any(isinstance(r, Frame) for r in gc.get_referrers(pixels))


# -- failures ------------------------------------------------------------------------------------


def test_a_camera_folder_that_cannot_be_made_raises_write_error_and_does_not_hang(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    (path / "lwir").write_bytes(b"a regular file where the camera folder should be")
    cameras = {"lwir": CameraWriteOptions(), "swir": CameraWriteOptions()}
    w = SessionWriter(path, session_id, cameras, executor)
    for i in range(3):
        w.add(make_frame("lwir", b"\0\1" * 4, 2, 2, "mono16", index=i), POSE)
        w.add(make_frame("swir", b"\7" * 4, 2, 2, "mono8", index=i), POSE)

    started = time.monotonic()
    with pytest.raises(WriteError) as caught:
        w.finish({"status": "complete"}, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT
    err = caught.value
    assert err.camera_id == "lwir"
    assert err.file == "lwir/000001.png"
    assert err.path == path / "lwir" / "000001.png"
    assert isinstance(err.cause, OSError) and err.__cause__ is err.cause
    assert err.others == 2
    assert str(path / "lwir" / "000001.png") in str(err)
    assert not (path / "session.json").exists()  # raise_on_error: nothing claimed

    model = w.finish({"status": "failed"}, raise_on_error=False, timeout=TIMEOUT)
    assert model.status == SessionStatus.FAILED
    doc = model.to_json()
    on_disk = json.loads((path / "session.json").read_text(encoding="utf-8"))
    assert on_disk == doc and doc["status"] == "failed"
    assert doc["cameras"]["lwir"]["frame_count"] == 0 and doc["cameras"]["lwir"]["frames"] == []
    assert [f["frame_index"] for f in doc["cameras"]["swir"]["frames"]] == [0, 1, 2]
    assert [e["file"] for e in doc["write_errors"]] == [
        "lwir/000001.png",
        "lwir/000002.png",
        "lwir/000003.png",
    ]
    assert all(e["camera_id"] == "lwir" and "FileExistsError" in e["error"] for e in doc["write_errors"])
    assert doc["write_error_count"] == 3
    assert w.camera_summary()["lwir"] == {
        "frame_count": 3,
        "rejected_frames": 0,
        "written_frames": 0,
        "failed_writes": 3,
    }


def test_one_failed_file_leaves_the_others_listed(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    (path / "swir" / "000002.png").mkdir(parents=True)  # a folder in the way of frame 2's file
    w = SessionWriter(path, session_id, {"swir": CameraWriteOptions(previews=True)}, executor)
    for i in range(3):
        w.add(make_frame("swir", bytes([i]) * 4, 2, 2, "mono8", index=i), POSE)
    with pytest.raises(WriteError, match=r"000002\.png"):
        w.wait(TIMEOUT)
    doc = w.finish({"status": "failed"}, raise_on_error=False, timeout=TIMEOUT).to_json()
    assert [f["file"] for f in doc["cameras"]["swir"]["frames"]] == ["swir/000001.png", "swir/000003.png"]
    assert [e["file"] for e in doc["write_errors"]] == ["swir/000002.png"]
    assert doc["write_error_count"] == 1
    assert not (path / "swir" / "previews" / "000002.png").exists()  # no half-written frame left


def test_a_preview_that_fails_removes_its_frame_file(
    session: tuple[str, Path], executor: ThreadPoolExecutor
) -> None:
    session_id, path = session
    (path / "swir").mkdir()
    (path / "swir" / "previews").write_bytes(b"not a folder")
    w = SessionWriter(path, session_id, {"swir": CameraWriteOptions(previews=True)}, executor)
    w.add(make_frame("swir", b"\1" * 4, 2, 2, "mono8"), POSE)
    with pytest.raises(WriteError) as caught:
        w.finish({}, timeout=TIMEOUT)
    assert caught.value.file == "swir/previews/000001.png"
    assert not (path / "swir" / "000001.png").exists()


def test_a_shut_down_executor_fails_the_write_instead_of_hanging(session: tuple[str, Path]) -> None:
    session_id, path = session
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    w = SessionWriter(path, session_id, {"swir": CameraWriteOptions()}, pool)
    w.add(make_frame("swir", b"\1" * 4, 2, 2, "mono8"), POSE)
    assert w.pending() == 0
    with pytest.raises(WriteError) as caught:
        w.wait(TIMEOUT)
    assert isinstance(caught.value.cause, RuntimeError)


def test_add_checks_its_input(session: tuple[str, Path], executor: ThreadPoolExecutor) -> None:
    session_id, path = session
    w = SessionWriter(path, session_id, {"swir": CameraWriteOptions()}, executor)
    with pytest.raises(KeyError, match="lwir"):
        w.add(make_frame("lwir", b"\1" * 4, 2, 2, "mono8"), POSE)
    with pytest.raises(ValueError, match="neither JPEG nor PNG"):
        w.add(make_frame("swir", b"GIF89a", 2, 2, "encoded"), POSE)
    with pytest.raises(ValueError, match="yuv"):
        w.add(make_frame("swir", b"\1" * 4, 2, 2, "yuv"), POSE)
    assert w.progress() == (0, 0)
    w.reject("stranger", "unknown camera stranger")  # counted, listed with no frames
    doc = w.finish({}, timeout=TIMEOUT)
    assert doc.cameras["stranger"].rejected_frames == 1


def test_memory_cap_spills_to_disk_and_loses_nothing(tmp_path: Path) -> None:
    """Over the cap, frames move to the spill file and are still written bit-exact."""
    rng = np.random.default_rng(7)
    arrays = [rng.integers(0, 65536, size=(32, 40), dtype=np.uint16) for _ in range(30)]
    spill_dir = tmp_path / "images_data" / "spill"
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Hold the encoders back so frames pile up and the cap is exceeded.
        pool.submit(gate.wait)
        pool.submit(gate.wait)
        writer = SessionWriter(
            tmp_path / "s",
            "s",
            {"cameradevice_lwir_1": CameraWriteOptions()},
            pool,
            memory_cap_bytes=5 * 32 * 40 * 2,
            spill_dir=spill_dir,
        )
        for i, arr in enumerate(arrays):
            writer.add(
                Frame(
                    "cameradevice_lwir_1", arr.astype("<u2").tobytes(), 40, 32, "mono16", None, i, 0.0, 0.0
                ),
                {},
            )
        try:
            # Frames over the cap wait for the spill thread, which moves them out of memory.
            deadline = time.monotonic() + 10
            while writer.memory_bytes() > 5 * 32 * 40 * 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert writer.memory_bytes() <= 5 * 32 * 40 * 2
            assert (spill_dir / "s.spill").exists()
        finally:
            gate.set()
        manifest = writer.finish({"status": "complete"})
    assert writer.spilled_frames >= 24
    frames = manifest.cameras["cameradevice_lwir_1"].frames
    assert [f.frame_index for f in frames] == list(range(30))
    for f, arr in zip(frames, arrays, strict=True):
        with Image.open(tmp_path / "s" / f.file) as img:
            assert np.array_equal(np.asarray(img), arr)
    assert not (spill_dir / "s.spill").exists(), "the spill file is removed after the session"
