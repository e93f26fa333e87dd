"""History cost against history size: what recording one request costs with 10, 1,000 or 100,000 entries.

For each size, a history in a temporary folder is filled through the store's bulk path
(``HistoryStore.add_many``: one journal write per batch, then the usual archiving), and then
``--requests`` requests are recorded the way the service records a job — an add and three updates
(running, a session, the outcome), each update the whole entry, each change fsynced — and timed one by
one. Entries are job entries of realistic size: four commands with their results and a session summary
of three cameras (about 4 kB in history.json).

Prints, per size: the per-request cost (median and p95 ms), the files' sizes, how long opening the
store takes (what a service start pays; it reads no archive), and reading an archived entry back
(``get``) and an old page (``page`` at the far end).

    python bench/history_bench.py [--sizes 10,1000,100000] [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.history.store import HistoryStore
from service.status import JobPhase, JobStatus

CAMERAS = ("cameradevice_rgb_1", "cameradevice_swir_1", "cameradevice_lwir_1")
FILL_BATCH = 5_000


def commands(n: int) -> list[dict[str, Any]]:
    return [
        {
            "target_id": "entity",
            "device_id": "acikgoz_pantilt",
            "command_id": "set_pan_position_degree",
            "args": {"pan_position_deg_x100": n % 36000 - 18000},
        },
        {
            "target_id": "entity",
            "device_id": "acikgoz_pantilt",
            "command_id": "set_tilt_position_degree",
            "args": {"tilt_position_deg_x100": -1000},
        },
        {
            "target_id": "camera_device",
            "device_id": "cameradevice_rgb_1",
            "command_id": "set_zoom_value",
            "args": {"zoom_value": 2},
        },
        {
            "target_id": "camera_device",
            "device_id": "cameradevice_swir_1",
            "command_id": "start_recording_command",
            "args": {"duration_second": 5, "camera_ids": list(CAMERAS)},
        },
    ]


def job_entry(n: int, when: float) -> dict[str, Any]:
    """A job's entry as Job.history_entry makes it, while queued."""
    return {
        "id": f"job-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}-{n:06x}",
        "received_at": when,
        "client": {"address": "127.0.0.1", "user_agent": "python-requests/2.32.3"},
        "request": {"requests": commands(n)},
        "transport": "mqtt",
        "status": str(JobStatus.QUEUED),
        "phase": str(JobPhase.QUEUED),
        "started_at": None,
        "finished_at": None,
        "results": [],
        "session": None,
        "sessions": [],
        "error": None,
        "final_pose": None,
        "warnings": [],
    }


def session(n: int, when: float) -> dict[str, Any]:
    sid = time.strftime("%Y%m%d-%H%M%S-000", time.localtime(when))
    return {
        "session_id": sid,
        "path": f"/data/rigcapture/save_images/{sid}",
        "status": "complete",
        "settled_at": when + 1,
        "record_started_at": when + 1,
        "record_ended_at": when + 6,
        "missing_frames": 0,
        "stream_outages": 0,
        "problems": [],
        "cameras": {c: {"frame_count": 150, "rejected_frames": 0} for c in CAMERAS},
    }


def finished(n: int, when: float) -> dict[str, Any]:
    entry = job_entry(n, when)
    results = [
        {
            "request": c,
            "status": "ok",
            "status_code": 200,
            "transport": "mqtt",
            "sent_at": when + i,
            "response": {"status": "ok", "message": "accepted"},
        }
        for i, c in enumerate(commands(n))
    ]
    results[-1]["session_id"] = session(n, when)["session_id"]
    entry.update(
        status=str(JobStatus.SUCCEEDED),
        phase=str(JobPhase.DONE),
        started_at=when,
        finished_at=when + 7,
        results=results,
        session=session(n, when),
        sessions=[session(n, when)],
        final_pose={"pan_deg_x100": 4500, "tilt_deg_x100": -1000, "zoom_value": 2.0, "distance_m": 152.3},
    )
    return entry


def record_request(store: HistoryStore, n: int, when: float) -> float:
    """One job recorded as the service does it; its cost in ms."""
    start = time.perf_counter()
    entry = job_entry(n, when)
    store.add(entry)
    fields = {k: v for k, v in entry.items() if k != "id"}
    fields.update(status=str(JobStatus.RUNNING), phase=str(JobPhase.COMMANDING), started_at=when)
    store.update(entry["id"], **fields)
    fields.update(phase="saving", session=session(n, when), sessions=[session(n, when)])
    store.update(entry["id"], **fields)
    done = {k: v for k, v in finished(n, when).items() if k != "id"}
    store.update(entry["id"], **done)
    return (time.perf_counter() - start) * 1000


def fill(store: HistoryStore, count: int, start: float) -> None:
    """``count`` finished entries, a minute apart (so they span months), through the bulk path."""
    for first in range(0, count, FILL_BATCH):
        batch = range(first, min(first + FILL_BATCH, count))
        store.add_many(finished(n, start + n * 60) for n in batch)


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.glob("*.json")] if folder.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(size: int, requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
        path = Path(tmp) / "history.json"
        start = time.time() - size * 60 - 3600
        store = HistoryStore(path)
        fill_s = time.perf_counter()
        fill(store, size, start)
        fill_s = time.perf_counter() - fill_s
        if hasattr(os, "sync"):
            os.sync()  # the fill's writes reach the disk now, not while the requests are timed
        costs = [record_request(store, size + i, time.time()) for i in range(requests)]
        oldest = store.page(1, len(store) - 1)["requests"]
        del store  # as a kill would: nothing is closed
        open_ms = timed(lambda: HistoryStore(path))
        reopened = HistoryStore(path)
        get_ms = timed(lambda: reopened.get(oldest[0]["id"]))
        page_ms = timed(lambda: reopened.page(100, len(reopened) - 100))
        archives, archive_bytes = folder_bytes(path.parent / "history")
        return {
            "entries": size,
            "requests_timed": requests,
            "median_ms": round(statistics.median(costs), 1),
            "p95_ms": round(sorted(costs)[int(0.95 * (len(costs) - 1))], 1),
            "max_ms": round(max(costs), 1),
            "history_json_bytes": path.stat().st_size,
            "journal_bytes": (path.parent / "history.journal.jsonl").stat().st_size,
            "archives": archives,
            "archive_bytes": archive_bytes,
            "open_ms": round(open_ms, 1),
            "get_oldest_ms": round(get_ms, 1),
            "oldest_page_ms": round(page_ms, 1),
            "fill_s": round(fill_s, 1),
        }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| entries | per request (add + 3 updates) median / p95 / max | history.json | journal "
        "| archives | open (start) | get oldest | oldest page of 100 |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['entries']:,} | {r['median_ms']} / {r['p95_ms']} / {r['max_ms']} ms "
        f"| {r['history_json_bytes'] / 1e6:.2f} MB | {r['journal_bytes'] / 1e6:.2f} MB "
        f"| {r['archives']} files, {r['archive_bytes'] / 1e6:.0f} MB | {r['open_ms']} ms "
        f"| {r['get_oldest_ms']} ms | {r['oldest_page_ms']} ms |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,100000", help="history sizes (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200, help="requests timed per size")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args(argv)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows.append(measure(size, args.requests))
        if not args.json:
            print(f"{size:,} entries: filled in {rows[-1]['fill_s']} s, measured", file=sys.stderr)
    if not args.json:
        print(table(rows))
    print(json.dumps({"history_bench": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
