"""What the session report costs per session: building ``report.html`` and its size on disk.

For a 3-camera session of 10 s and one of 60 s (``--sessions``; a synthetic ``session.json`` of
realistic shape: every frame with its arrival time, camera timestamp, index and pose; pan-tilt and
range-finder telemetry at ``--telemetry-hz`` each; a few gaps), the report is built and written
``--repeat`` times in a temporary folder, the way the aftercare hook does it
(``sessions.report.write_report`` from the manifest already in memory), plus once reading
``session.json`` from disk as ``GET /sessions/<id>/report`` does for a session without a report.

Prints, per session: frames, the manifest's size, the report's size, the build-and-write time
(median and max ms of the repeats, and the first, cold, run), and the cost with the read. Timed on
whatever core it gets; the aftercare thread runs at nice 19, so a recording is not slowed by it.

    python bench/report_bench.py [--sessions 10,60] [--fps 30] [--telemetry-hz 20] [--repeat 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions.manifest import SessionManifest, write_manifest
from sessions.report import build_report, refresh_report, write_report

CAMERAS = ("cameradevice_rgb_1", "cameradevice_swir_1", "cameradevice_lwir_1")


def synthetic_manifest(seconds: float, fps: float, telemetry_hz: float) -> SessionManifest:
    t0 = 1_800_000_000.0
    cameras: dict[str, Any] = {}
    gaps = []
    for k, cam in enumerate(CAMERAS):
        frames = []
        n = int(seconds * fps)
        for i in range(n):
            jitter = ((i * 7919 + k * 31) % 13 - 6) * 0.0004
            t = t0 + i / fps + jitter
            frames.append(
                {
                    "file": f"{cam}/{i + 1:06d}.png",
                    "received_at": t + 0.004,
                    "timestamp_ns": int(t * 1e9),
                    "frame_index": i + 100,
                    "pose": {"pan_deg_x100": 4500, "tilt_deg_x100": -1000, "zoom": 1.0, "distance_m": 73.99},
                }
            )
        cameras[cam] = {"frame_count": n, "rejected_frames": 0, "frames": frames}
        gaps.append(
            {
                "camera_id": cam,
                "missing_frame_index": [150, 151],
                "missing_frames": 2,
                "from_received_at": t0 + 1.5,
                "to_received_at": t0 + 1.6,
            }
        )
    telemetry = []
    for i in range(int(seconds * telemetry_hz)):
        t = t0 + i / telemetry_hz
        telemetry.append(
            {"received_at": t, "device_id": "acikgoz_pantilt", "pan_deg_x100": 4500, "tilt_deg_x100": -1000}
        )
        telemetry.append(
            {"received_at": t + 0.003, "device_id": "acikgoz_lrf", "distance_m": 73.99 + (i % 5) * 0.01}
        )
    settle = {
        "settled_at": t0,
        "devices": {
            "acikgoz_pantilt": {
                "time_to_settle_s": 1.6,
                "values": {"pan_deg_x100": 4500, "tilt_deg_x100": -1000},
                "targets": {"pan_deg_x100": 4500, "tilt_deg_x100": -1000},
                "residual": {"pan_deg_x100": 0.0, "tilt_deg_x100": 0.0},
                "steady_messages": 7,
                "steady_window_s": 0.6,
            }
        },
        "range_m": {"readings": 12, "min": 73.99, "max": 74.03, "mean": 74.0},
    }
    return SessionManifest.model_validate(
        {
            "session_id": f"bench-{seconds:g}s",
            "status": "partial",
            "settled_at": t0,
            "settle": settle,
            "record_started_at": t0,
            "record_ended_at": t0 + seconds,
            "duration_second": seconds,
            "gaps": gaps,
            "cameras": cameras,
            "telemetry": telemetry,
        }
    )


def bench(seconds: float, fps: float, telemetry_hz: float, repeat: int) -> dict[str, Any]:
    manifest = synthetic_manifest(seconds, fps, telemetry_hz)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_manifest(folder, manifest)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            path = write_report(folder, manifest)
            times.append((time.perf_counter() - start) * 1000)
        path.unlink()
        start = time.perf_counter()
        page = refresh_report(folder)  # reads session.json, builds, writes: GET .../report on a miss
        with_read = (time.perf_counter() - start) * 1000
        assert page is not None
        start = time.perf_counter()
        build_report(manifest)
        build_only = (time.perf_counter() - start) * 1000
        return {
            "session_s": seconds,
            "cameras": len(CAMERAS),
            "frames": sum(c.frame_count for c in manifest.cameras.values()),
            "telemetry_samples": len(manifest.model_extra["telemetry"]) if manifest.model_extra else 0,
            "manifest_bytes": (folder / "session.json").stat().st_size,
            "report_bytes": len(page),
            "first_ms": round(times[0], 1),
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "build_only_ms": round(build_only, 1),
            "read_build_write_ms": round(with_read, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second per camera")
    parser.add_argument(
        "--telemetry-hz", type=float, default=20.0, help="pan-tilt and range-finder rate each"
    )
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sessions", default="10,60", help="session lengths in seconds, comma-separated")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    lengths = [float(s) for s in args.sessions.split(",")]
    results = [bench(s, args.fps, args.telemetry_hz, args.repeat) for s in lengths]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"report per session: {len(CAMERAS)} cameras at {args.fps:g} fps, "
        f"telemetry {args.telemetry_hz:g} Hz x 2"
    )
    for r in results:
        print(
            f"  {r['session_s']:>4g} s: {r['frames']:>5} frames, "
            f"session.json {r['manifest_bytes'] / 1e3:7.0f} kB -> "
            f"report.html {r['report_bytes'] / 1e3:5.0f} kB; build+write median {r['median_ms']:6.1f} ms "
            f"(max {r['max_ms']:.1f}, first {r['first_ms']:.1f}; build alone {r['build_only_ms']:.1f}); "
            f"read+build+write {r['read_build_write_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
