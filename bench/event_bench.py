"""Event benchmark (issue 22): what keeping the event ring costs while nothing is triggered.

The service (a separate ``application.py`` process, as bench/capture_bench.py runs it) streams the
simulated rig's W1 cameras (RGB JPEG 1920x1080, SWIR mono8 640x512, LWIR mono16 640x512, all at
30 fps) with no job and no trigger, twice: with events off, then with events armed on every camera
(``events.pre_max_s``, within ``recording.memory_cap_mb``). For each it measures, over ``--seconds``
after a warm-up that fills the ring:

- the CPU of the service's process, in cores (user + system CPU-seconds / wall seconds);
- its peak RSS (MiB) and what the ring holds (``/status`` ``events.ring.bytes``);
- the frames per second the service received per camera (``/status``): with events off the streams
  run at the idle rate (``stream_client.idle_ack_delay_s``), armed at full rate.

The simulated rig runs in this process and the real Mosquitto on 127.0.0.1:1883 must be running.
Exit status: 0 when the armed service used at most a third of one core, 1 when it used more, 2 when a
run failed. On a shared machine the figures mean little: run it on a quiet one.

    python bench/event_bench.py [--seconds 30] [--memory-cap-mb 2048] [--pre-max-s 10] [--small]
                                [--json-only] [--keep] [--work-dir DIR]

``--small`` scales the cameras down (a quarter of the size, 10 fps) for a smoke run of the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture_bench import simulated_rig
from bench.capture_common import HTTP_TIMEOUT_S, MIB, BenchError, log
from bench.capture_service import ProcessSampler, ServiceProcess, background_load, service_config
from bench.capture_workloads import Workload, make_workload
from rigcore.heap import keep_heap_warm
from simulator.rig import SimRig

TARGET_CORES = 1 / 3  # armed and idle at W1 rates: at most a third of one core (issue 22)
WARMUP_S = 3.0  # after the ring is full (armed) or the streams settled (off)


def small(wl: Workload) -> Workload:
    """The workload's cameras at a quarter of their size and 10 fps (a smoke run)."""
    cams = {
        cid: dataclasses.replace(cam, width=cam.width // 4, height=cam.height // 4, fps=10.0)
        for cid, cam in wl.cameras.items()
    }
    return dataclasses.replace(wl, cameras=cams, description=f"{wl.description}, scaled to 1/4 at 10 fps")


def measure(rig: SimRig, wl: Workload, args: argparse.Namespace, armed: bool, work: Path) -> dict[str, Any]:
    """One run: the service with events off or armed, idle, measured over ``args.seconds``."""
    name = "armed" if armed else "off"
    folder = work / name
    folder.mkdir()
    overrides = [
        ("recording.memory_cap_mb", args.memory_cap_mb),
        ("events.enabled", armed),
        ("events.pre_max_s", args.pre_max_s),
        ("events.max_s", max(120.0, args.pre_max_s + 10)),
    ]
    config = service_config(folder, rig, wl, rig.cfg.topic_prefix, None, overrides)
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    service = ServiceProcess(config_path, folder / "service.log")
    url = service.start()
    try:
        service.wait_ready()
        time.sleep((args.pre_max_s if armed else 0.0) + WARMUP_S)
        with ProcessSampler(service.pid) as sampler:
            cpu0, t0 = sampler.cpu_seconds(), time.monotonic()
            time.sleep(args.seconds)
            cores = (sampler.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            status = requests.get(f"{url}/status", timeout=HTTP_TIMEOUT_S).json()
            peak = sampler.peak()
    finally:
        service.stop()
    events = status.get("events") or {}
    if armed and (not events.get("armed") or events.get("error")):
        raise BenchError(f"events were not armed: {events.get('error') or events}")
    return {
        "events": name,
        "cpu_cores": round(cores, 3),
        "rss_peak_mib": round(peak / MIB, 1),
        "ring_mib": round((events.get("ring") or {}).get("bytes", 0) / MIB, 1),
        "fps": {cam: info.get("fps") for cam, info in (status.get("cameras") or {}).items()},
        "stream_rate": status.get("stream_rate"),
    }


def print_table(
    wl: Workload, args: argparse.Namespace, runs: list[dict[str, Any]], other_load: float
) -> None:
    print(f"\nevent bench: {wl.description}; idle {args.seconds:g} s; memory cap {args.memory_cap_mb:g} MiB")
    print(f"{'events':<8} {'CPU (cores)':>11} {'RSS peak MiB':>13} {'ring MiB':>9}  fps per camera")
    for run in runs:
        fps = ", ".join(f"{cam.removeprefix('cameradevice_')} {v}" for cam, v in sorted(run["fps"].items()))
        print(
            f"{run['events']:<8} {run['cpu_cores']:>11.3f} {run['rss_peak_mib']:>13.1f} "
            f"{run['ring_mib']:>9.1f}  {fps}"
        )
    print(f"other programs kept {other_load:.2f} cores busy before the runs (figures are suspect above 0.2)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="idle seconds measured per run (default 30)")
    ap.add_argument(
        "--memory-cap-mb", type=float, default=2048.0, help="recording.memory_cap_mb (default 2048)"
    )
    ap.add_argument("--pre-max-s", type=float, default=10.0, help="events.pre_max_s (default 10)")
    ap.add_argument("--small", action="store_true", help="cameras at 1/4 size and 10 fps (smoke run)")
    ap.add_argument("--json-only", action="store_true", help="print only the JSON line")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (configs, service logs)")
    ap.add_argument("--work-dir", type=Path, help="where to make the work folder (default: the temp dir)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_heap_warm()  # the rig's sender, as in bench/capture_bench.py
    wl = make_workload("W1", None, args.memory_cap_mb)
    if args.small:
        wl = small(wl)
    other_load = background_load()
    work = Path(tempfile.mkdtemp(prefix="event-bench-", dir=args.work_dir))
    try:
        with simulated_rig(wl, f"evbench_{uuid.uuid4().hex[:8]}") as rig:
            runs = [measure(rig, wl, args, armed, work) for armed in (False, True)]
    except (BenchError, OSError, requests.RequestException) as exc:
        log.error("event bench failed: %s", exc)
        return 2
    finally:
        if args.keep:
            log.warning("kept %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    armed = runs[1]
    result = {
        "workload": wl.description,
        "seconds": args.seconds,
        "memory_cap_mb": args.memory_cap_mb,
        "pre_max_s": args.pre_max_s,
        "other_load_cores": round(other_load, 3),
        "runs": runs,
        "armed_extra_cores": round(armed["cpu_cores"] - runs[0]["cpu_cores"], 3),
        "armed_extra_rss_mib": round(armed["rss_peak_mib"] - runs[0]["rss_peak_mib"], 1),
        "target_cores": round(TARGET_CORES, 3),
        "pass": armed["cpu_cores"] <= TARGET_CORES,
    }
    if not args.json_only:
        print_table(wl, args, runs, other_load)
        verdict = "within" if result["pass"] else "ABOVE"
        print(f"armed: {armed['cpu_cores']:.3f} cores, {verdict} the target of {TARGET_CORES:.3f}")
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
