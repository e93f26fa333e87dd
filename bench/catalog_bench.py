"""Session catalog cost against the number of sessions: 100, 10,000 and 100,000 session folders.

For each size, session folders with small synthetic ``session.json`` files (valid per
``sessions/manifest.py``: three cameras of a few frames, a pose, a scan for one session in ten) are
made in a temporary folder. Then it times:

- a first rebuild (no ``catalog.sqlite``: every ``session.json`` read);
- an incremental start with nothing changed (one ``stat`` per folder), and with 1 % new folders;
- a filtered page (``limit`` 20) for several filter combinations, ``--pages`` times each at random
  offsets in the first pages, reporting p50 / p99 in ms: with its ``total`` counted (a new filter, or
  the catalog changed since) and with the total remembered (paging on through one filter). That is
  what ``GET /sessions`` asks of the catalog; the per-session summaries the dashboard adds (20
  ``session.json`` reads, cached) cost the same at any size.

    python bench/catalog_bench.py [--sizes 100,10000,100000] [--pages 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions.catalog import Catalog, SessionQuery
from sessions.manifest import SessionManifest, SessionStatus, write_manifest

CAMERAS = ("cameradevice_rgb_1", "cameradevice_swir_1", "cameradevice_lwir_1")
STATUSES = (SessionStatus.COMPLETE,) * 8 + (SessionStatus.PARTIAL, SessionStatus.FAILED)
T0 = 1_780_000_000.0  # the first synthetic session's start (epoch s)
STEP_S = 300.0  # one session every five minutes
FILTERS: dict[str, SessionQuery] = {
    "none": SessionQuery(),
    "status=partial": SessionQuery(status="partial"),
    "camera=lwir": SessionQuery(camera="cameradevice_lwir_1"),
    "since/until (1 day)": SessionQuery(since=T0 + 10 * STEP_S, until=T0 + 10 * STEP_S + 86400),
    "pan -1000..1000, tilt 0..500": SessionQuery(pan_min=-1000, pan_max=1000, tilt_min=0, tilt_max=500),
    "q=roof (a label)": SessionQuery(q="roof"),
    "camera+status+pan": SessionQuery(camera="cameradevice_swir_1", status="complete", pan_min=0),
}


def session_name(i: int) -> str:
    t = time.gmtime(T0 + i * STEP_S)
    return time.strftime("%Y%m%d-%H%M%S", t) + f"-{i % 1000:03d}"


def manifest(i: int) -> SessionManifest:
    started = T0 + i * STEP_S
    cams = CAMERAS if i % 3 else CAMERAS[:2]
    frames = [
        {
            "file": f"f{k:04d}.png",
            "received_at": started + k,
            "timestamp_ns": None,
            "frame_index": k,
            "pose": None,
        }
        for k in range(3)
    ]
    scan = f"scan-20260101-000000-{i // 10 % 0xFFFFFF:06x}" if i % 10 == 0 else None
    return SessionManifest.model_validate(
        {
            "session_id": session_name(i),
            "status": STATUSES[i % len(STATUSES)],
            "record_started_at": started,
            "record_ended_at": started + 2.0,
            "duration_second": 2.0,
            "pose_at_start": {
                "pan_deg_x100": (i * 37) % 36000 - 18000,
                "tilt_deg_x100": (i * 11) % 9000 - 4500,
            },
            "cameras": {c: {"frame_count": 3, "frames": frames} for c in cams},
            "scan_id": scan,
            "pose_index": i % 10 if scan else None,
            "label": "roof survey" if i % 50 == 0 else None,
        }
    )


def make_sessions(save_dir: Path, start: int, stop: int) -> None:
    for i in range(start, stop):
        folder = save_dir / session_name(i)
        folder.mkdir()
        write_manifest(folder, manifest(i))


def timed_refresh(base: Path) -> tuple[float, int]:
    catalog = Catalog(base / "save", base / "images_data")
    try:
        report = catalog.refresh()
    finally:
        catalog.close()
    return report.seconds, report.read


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
    }


def pages(base: Path, n_pages: int) -> dict[str, dict[str, Any]]:
    """Per filter: a page with its total counted (``cold``: a new filter, or the catalog changed) and a
    page whose total the catalog remembers (``warm``: paging on through one filter)."""
    catalog = Catalog(base / "save", base / "images_data")
    catalog.refresh()
    rng = random.Random(1)
    out: dict[str, dict[str, Any]] = {}
    try:
        for name, query in FILTERS.items():
            cold, warm = [], []
            total = 0
            for _ in range(n_pages):
                offset = rng.randrange(0, 5) * 20
                catalog.forget_totals()
                t = time.perf_counter()
                total = catalog.query(query, 20, offset).total
                cold.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                catalog.query(query, 20, offset + 20)
                warm.append((time.perf_counter() - t) * 1000)
            out[name] = {"cold": percentiles(cold), "warm": percentiles(warm), "total": total}
    finally:
        catalog.close()
    return out


def run(size: int, n_pages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        base = Path(tmp)
        (base / "save").mkdir()
        (base / "images_data").mkdir()
        t = time.perf_counter()
        make_sessions(base / "save", 0, size)
        made = time.perf_counter() - t
        first, read_first = timed_refresh(base)
        unchanged, read_unchanged = timed_refresh(base)
        make_sessions(base / "save", size, size + max(1, size // 100))
        grown, read_grown = timed_refresh(base)
        return {
            "sessions": size,
            "make_folders_s": round(made, 2),
            "first_rebuild_s": round(first, 3),
            "first_rebuild_read": read_first,
            "incremental_unchanged_s": round(unchanged, 3),
            "incremental_unchanged_read": read_unchanged,
            "incremental_1pct_new_s": round(grown, 3),
            "incremental_1pct_new_read": read_grown,
            "catalog_mb": round((base / "images_data" / "catalog.sqlite").stat().st_size / 1e6, 1),
            "pages": pages(base, n_pages),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(int(s), args.pages) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(
            f"{r['sessions']:>7} sessions: first rebuild {r['first_rebuild_s']:.3f} s "
            f"({r['first_rebuild_read']} read); incremental start: nothing new "
            f"{r['incremental_unchanged_s']:.3f} s ({r['incremental_unchanged_read']} read), "
            f"1 % new {r['incremental_1pct_new_s']:.3f} s ({r['incremental_1pct_new_read']} read); "
            f"catalog {r['catalog_mb']} MB"
        )
        for name, p in r["pages"].items():
            cold, warm = p["cold"], p["warm"]
            print(
                f"    page of 20, {name:<30} counted p50 {cold['p50_ms']:7.3f} p99 {cold['p99_ms']:7.3f} ms; "
                f"total remembered p50 {warm['p50_ms']:7.3f} p99 {warm['p99_ms']:7.3f} ms; total {p['total']}"
            )


if __name__ == "__main__":
    main()
