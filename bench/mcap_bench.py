"""MCAP export benchmark: how long a session takes to export, how large the file is, protobuf vs JSON.

Builds a 3-camera session folder with the service's own writer (sessions.writer; ``--image-format``
as in the camera config, default ``png``), with sensor-like noise (a smooth scene alone compresses
unrealistically):

- RGB: the camera's own JPEG, 640x360 (quality 90) → foxglove.CompressedImage, bytes as stored;
- SWIR: mono8 320x256 → foxglove.RawImage mono8;
- LWIR: mono16 320x256 → foxglove.RawImage mono16;

each at ``--fps`` for ``--seconds`` (the simulated rig's defaults: 15 fps), ``--scale`` multiplying
the sizes. Then it times, best of ``--runs``, in CPU seconds of this process (the export runs on one
thread; CPU time, unlike wall time, does not count what other programs on a shared machine take):

1. the full export (sessions.mcap_export, protobuf, zstd chunks), as ``GET /sessions/<id>.mcap``
   streams it: seconds, MB/s of session files, file size vs the folder;
2. the images alone written as protobuf (foxglove.RawImage / CompressedImage), and as JSON with the
   JSON-schema form of the same messages (``data`` base64, as Foxglove's JSON schemas define it),
   both through the same mcap writer and zstd chunks.

    python bench/mcap_bench.py [--seconds 10] [--fps 15] [--scale 1] [--runs 3] [--image-format png]
                               [--keep DIR]

Prints a table, then one JSON line with every figure. Only local files; no network.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcap.writer import CompressionType, Writer

from camera.frames import Frame
from sessions.frame_sets import frame_sets_of
from sessions.manifest import read_manifest
from sessions.mcap_export import (
    CHUNK_SIZE,
    compressed_format,
    decode_raw,
    file_descriptor_set,
    mcap_chunks,
)
from sessions.writer import CameraWriteOptions, SessionWriter

T0 = 1_764_480_000.0


def _scene(w: int, h: int, peak: float, rng: np.random.Generator, sigma: float) -> np.ndarray[Any, Any]:
    y, x = np.mgrid[0:h, 0:w]
    smooth = (np.sin(x / 37.0) + np.cos(y / 23.0) + 2) / 4 * peak
    return smooth + rng.normal(0, sigma, size=(h, w))


def _frames(seconds: float, fps: float, scale: int) -> list[Frame]:
    rng = np.random.default_rng(1)
    out: list[Frame] = []
    n = int(seconds * fps)
    for k in range(n):
        t = T0 + k / fps
        ts = round(t * 1e9)
        rgb = np.clip(np.dstack([_scene(640 * scale, 360 * scale, 255, rng, 3)] * 3), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        swir = np.clip(_scene(320 * scale, 256 * scale, 255, rng, 3), 0, 255).astype(np.uint8)
        lwir = np.clip(_scene(320 * scale, 256 * scale, 30000, rng, 40) + 2000, 0, 65535).astype("<u2")
        for cam, pixels, w, h, fmt in (
            ("rgb", buf.getvalue(), 640 * scale, 360 * scale, "encoded"),
            ("swir", swir.tobytes(), 320 * scale, 256 * scale, "mono8"),
            ("lwir", lwir.tobytes(), 320 * scale, 256 * scale, "mono16"),
        ):
            out.append(Frame(cam, pixels, w, h, fmt, ts, k, t + 0.002, t + 0.002))
    return out


def make_session(root: Path, seconds: float, fps: float, scale: int, image_format: str = "png") -> Path:
    folder = root / "bench-session"
    folder.mkdir(parents=True)
    pose = {"pan_deg_x100": 4500, "tilt_deg_x100": -1000, "zoom": None, "distance_m": 20.0}
    with ThreadPoolExecutor(2) as pool:
        options = {cam: CameraWriteOptions(image_format=image_format) for cam in ("rgb", "swir", "lwir")}
        writer = SessionWriter(folder, "bench-session", options, pool, fsync=False)
        for frame in _frames(seconds, fps, scale):
            writer.add(frame, pose)
        writer.finish({"record_started_at": T0, "record_ended_at": T0 + seconds, "settled_at": T0 - 0.1})
    return folder


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def full_export(folder: Path) -> tuple[float, int]:
    manifest = read_manifest(folder)
    sets = frame_sets_of(manifest)
    start = time.process_time()
    size = sum(len(c) for c in mcap_chunks(folder, manifest, sets, compressed_cameras=()))
    return time.process_time() - start, size


def images_only(folder: Path, encoding: str) -> tuple[float, int]:
    """The images through the mcap writer as protobuf (the export's messages) or JSON."""
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

    manifest = read_manifest(folder)
    start = time.process_time()
    sink = io.BytesIO()
    writer = Writer(sink, chunk_size=CHUNK_SIZE, compression=CompressionType.ZSTD)
    writer.start()
    channels: dict[str, tuple[int, str | None]] = {}
    for cam in manifest.cameras:
        fmt = compressed_format(cam, manifest, ())
        cls: Any = CompressedImage if fmt else RawImage
        if encoding == "protobuf":
            sid = writer.register_schema(cls.DESCRIPTOR.full_name, "protobuf", file_descriptor_set(cls))
        else:
            sid = writer.register_schema(cls.DESCRIPTOR.full_name, "jsonschema", b"{}")
        channels[cam] = (writer.register_channel(f"/{cam}/image", encoding, sid), fmt)
    items = sorted(
        (
            (round((f.received_at or 0) * 1e9), cam, f)
            for cam, c in manifest.cameras.items()
            for f in c.frames
        ),
        key=lambda i: i[0],
    )
    for log_ns, cam, frame in items:
        channel, fmt = channels[cam]
        path = folder / frame.file
        stamp = frame.timestamp_ns or log_ns
        data = _encode(path, cam, fmt, stamp, encoding, CompressedImage, RawImage)
        writer.add_message(channel, log_ns, data, stamp)
    writer.finish()
    return time.process_time() - start, sink.tell()


def _encode(path: Path, cam: str, fmt: str | None, stamp: int, encoding: str, ci: Any, ri: Any) -> bytes:
    if fmt is not None:
        payload = path.read_bytes()
        if encoding == "protobuf":
            msg = ci(frame_id=cam, data=payload, format=fmt)
            msg.timestamp.FromNanoseconds(stamp)
            return bytes(msg.SerializeToString())
        doc: dict[str, Any] = {"frame_id": cam, "format": fmt, "data": base64.b64encode(payload).decode()}
    else:
        raw = decode_raw(path)
        if encoding == "protobuf":
            msg = ri(frame_id=cam, width=raw.width, height=raw.height, encoding=raw.encoding, step=raw.step)
            msg.data = raw.data
            msg.timestamp.FromNanoseconds(stamp)
            return bytes(msg.SerializeToString())
        doc = {
            "frame_id": cam,
            "width": raw.width,
            "height": raw.height,
            "encoding": raw.encoding,
            "step": raw.step,
            "data": base64.b64encode(raw.data).decode(),
        }
    doc["timestamp"] = {"sec": stamp // 10**9, "nsec": stamp % 10**9}
    return json.dumps(doc).encode()


def best(fn: Any, runs: int) -> tuple[float, int]:
    results = [fn() for _ in range(runs)]
    return min(r[0] for r in results), results[0][1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image-format", default="png", help="the writer's image_format for raw frames")
    parser.add_argument("--keep", type=Path, help="build the session here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="mcap-bench-"))
    try:
        folder = make_session(root, args.seconds, args.fps, args.scale, args.image_format)
        frames = sum(len(c.frames) for c in read_manifest(folder).cameras.values())
        folder_mb = _folder_bytes(folder) / 1e6
        full_s, full_size = best(lambda: full_export(folder), args.runs)
        pb_s, pb_size = best(lambda: images_only(folder, "protobuf"), args.runs)
        js_s, js_size = best(lambda: images_only(folder, "json"), args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    figures = {
        "frames": frames,
        "seconds_recorded": args.seconds,
        "image_format": args.image_format,
        "session_mb": round(folder_mb, 2),
        "export_s": round(full_s, 3),
        "export_mb": round(full_size / 1e6, 2),
        "export_mb_per_s_of_session": round(folder_mb / full_s, 1),
        "images_protobuf_s": round(pb_s, 3),
        "images_protobuf_mb": round(pb_size / 1e6, 2),
        "images_json_s": round(js_s, 3),
        "images_json_mb": round(js_size / 1e6, 2),
    }
    print(f"session: {frames} frames, {args.seconds:g} s at {args.fps:g} fps, {folder_mb:.1f} MB on disk")
    print(f"full export (protobuf, zstd): {full_s:.2f} s, {full_size / 1e6:.1f} MB")
    print(f"images as protobuf:           {pb_s:.2f} s, {pb_size / 1e6:.1f} MB")
    print(f"images as JSON (base64):      {js_s:.2f} s, {js_size / 1e6:.1f} MB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
