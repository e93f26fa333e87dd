"""Live view benchmark (issue 23): does a capture stay complete with slow Foxglove clients watching?

Runs the capture benchmark's workloads (bench/capture_bench.py: the real service as its own process,
the simulated rig in this one, the real Mosquitto) twice each: once with the live view off, once with
``foxglove.enabled`` and ``--clients`` slow Foxglove WebSocket clients subscribed to every topic for
the whole run. A slow client is a process of its own (so it shares no GIL with the rig's sender)
that sleeps ``--read-delay`` seconds after every message it reads, so the server's queue for it stays
full and the SDK drops messages for it.

    python bench/live_bench.py [--workload W1|W2|all] [--runs N] [--duration S]
                               [--image compressed|raw] [--max-fps F] [--clients N] [--read-delay S]
                               [--json-only] [--work-dir DIR]

Figures per workload and condition (medians over ``--runs``, as capture_bench computes them):
completeness per camera (the smallest shown), save lag, peak RSS, the service's CPU seconds during
the job, frames the rig skipped, and for the live runs the image messages each client received.
Then exactly one JSON line with every figure. Exit status: 0 every capture target met in every
condition, 1 some target missed, 2 a run failed.

Internal: ``--slow-client URL`` is one slow client (run by the benchmark itself).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import capture_measure
from bench.capture_bench import run_workload
from bench.capture_common import DEFAULT_MEMORY_CAP_MB, HTTP_TIMEOUT_S, BenchError, log, start_bench
from bench.capture_measure import BenchSettings
from bench.capture_report import rounded
from bench.capture_service import ServiceProcess
from bench.capture_workloads import make_workload

SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]
CLIENT_READY_TIMEOUT_S = 20.0


# -- one slow client (its own process) --------------------------------------------------------------
def slow_client(url: str, read_delay_s: float) -> int:
    """Subscribe to every channel, print ``ready``, then read one message every ``read_delay_s`` until
    SIGTERM; print the messages per topic as one JSON line."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    stop = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    counts: Counter[str] = Counter()
    protocols = [Subprotocol(p) for p in SUBPROTOCOLS]
    # close_timeout: a slow client's socket is full, so the closing handshake would wait long for nothing.
    ws = connect(url, subprotocols=protocols, max_size=None, close_timeout=1, legacy=True)
    channels: dict[int, str] = {}
    while not channels:
        message = json.loads(ws.recv(timeout=10))
        if message["op"] == "advertise":
            channels = {c["id"]: c["topic"] for c in message["channels"]}
    topics = {n: channels[cid] for n, cid in enumerate(sorted(channels))}
    ws.send(
        json.dumps(
            {
                "op": "subscribe",
                "subscriptions": [{"id": n, "channelId": cid} for n, cid in enumerate(sorted(channels))],
            }
        )
    )
    print("ready", flush=True)
    started = time.monotonic()
    try:
        while not stop:
            try:
                data = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:
                break
            if isinstance(data, bytes) and data[:1] == b"\x01":
                counts[topics[int.from_bytes(data[1:5], "little")]] += 1
            time.sleep(read_delay_s)
    finally:
        ws.close()
    print(json.dumps({"seconds": time.monotonic() - started, "messages": dict(counts)}), flush=True)
    return 0


# -- the service with slow clients -------------------------------------------------------------------
def live_service_process(
    clients: int, read_delay_s: float, summaries: list[dict[str, Any]]
) -> type[ServiceProcess]:
    """A ServiceProcess that starts ``clients`` slow clients once the service is ready and stops them
    (collecting their counts into ``summaries``) before it stops the service."""

    class LiveServiceProcess(ServiceProcess):
        def wait_ready(self) -> None:
            super().wait_ready()
            assert self.url is not None
            status = requests.get(f"{self.url}/status", timeout=HTTP_TIMEOUT_S).json()["foxglove"]
            if not status.get("running"):
                raise BenchError(f"the live view is not running: {status}")
            self.clients = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--slow-client",
                        status["url"],
                        "--read-delay",
                        str(read_delay_s),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(clients)
            ]
            for proc in self.clients:
                line = proc.stdout.readline().strip() if proc.stdout else ""
                if line != "ready":
                    raise BenchError(f"a slow client did not subscribe (it said {line!r})")

        def stop(self) -> None:
            for proc in getattr(self, "clients", []):
                proc.send_signal(signal.SIGTERM)
            for proc in getattr(self, "clients", []):
                out, _ = proc.communicate(timeout=CLIENT_READY_TIMEOUT_S)
                lines = out.strip().splitlines()
                summaries.append(json.loads(lines[-1]) if lines else {"error": f"exit {proc.returncode}"})
            self.clients = []
            super().stop()

    return LiveServiceProcess


# -- the comparison ----------------------------------------------------------------------------------
def summary(result: dict[str, Any], clients: list[dict[str, Any]]) -> dict[str, Any]:
    median = result.get("median") or {}
    completeness = median.get("completeness") or {}
    images = [sum(n for t, n in c.get("messages", {}).items() if t.endswith("/image")) for c in clients]
    return {
        "completeness_min": min((v for v in completeness.values() if v is not None), default=None),
        "completeness": completeness,
        "save_lag_s": median.get("save_lag_s"),
        "peak_rss_mib": median.get("peak_rss_mib"),
        "service_cpu_s": median.get("service_cpu_s"),
        "rig_frames_skipped": median.get("rig_frames_skipped"),
        "client_images_median": statistics.median(images) if images else None,
        "clients": clients,
        "all_pass": result.get("all_pass"),
        "errors": result["errors"],
    }


def print_table(rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    head = (
        "workload",
        "live view",
        "complete (min)",
        "save lag s",
        "peak RSS MiB",
        "CPU s",
        "skipped",
        "images/client",
    )
    print(" | ".join(head))
    for name, condition, s in rows:
        cells = (
            name,
            condition,
            _fmt(s["completeness_min"], "{:.2%}"),
            _fmt(s["save_lag_s"], "{:.2f}"),
            _fmt(s["peak_rss_mib"], "{:.0f}"),
            _fmt(s["service_cpu_s"], "{:.1f}"),
            _fmt(s["rig_frames_skipped"], "{:.0f}"),
            _fmt(s["client_images_median"], "{:.0f}"),
        )
        print(" | ".join(cells))


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=("W1", "W2", "all"), default="all", help="all: W1 then W2")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--duration", type=float, help="recording seconds (default 10)")
    ap.add_argument("--image", choices=("compressed", "raw"), default="compressed", help="foxglove.image")
    ap.add_argument("--max-fps", type=float, default=2.0, help="foxglove.max_fps")
    ap.add_argument("--clients", type=int, default=2, help="slow clients subscribed to everything")
    ap.add_argument("--read-delay", type=float, default=0.2, help="seconds each client sleeps per message")
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--work-dir", type=Path)
    ap.add_argument("--slow-client", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.runs < 1 or args.clients < 0:
        ap.error("--runs must be at least 1 and --clients at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.slow_client:
        return slow_client(args.slow_client, args.read_delay)
    if not start_bench(args.json_only):
        return 2
    names = ["W1", "W2"] if args.workload == "all" else [args.workload]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    live = [
        ("foxglove.enabled", True),
        ("foxglove.port", 0),
        ("foxglove.image", args.image),
        ("foxglove.max_fps", args.max_fps),
    ]
    conditions = {"off": [], f"{args.clients} slow clients, {args.image}": live}
    rows: list[tuple[str, str, dict[str, Any]]] = []
    plain = ServiceProcess
    for name in names:
        wl = make_workload(name, args.duration, DEFAULT_MEMORY_CAP_MB)
        for condition, overrides in conditions.items():
            clients: list[dict[str, Any]] = []
            capture_measure.ServiceProcess = (  # type: ignore[attr-defined]
                live_service_process(args.clients, args.read_delay, clients) if overrides else plain
            )
            settings = BenchSettings(
                workloads=[wl],
                runs=args.runs,
                image_format=None,
                overrides=list(overrides),
                keep=False,
                cores=cores,
                work_root=args.work_dir or Path(tempfile.gettempdir()),
            )
            log.info("%s, live view %s", name, condition)
            rows.append((name, condition, summary(run_workload(wl, settings), clients)))
    capture_measure.ServiceProcess = plain  # type: ignore[attr-defined]
    if not args.json_only:
        print_table(rows)
    report = {
        "bench": "live_bench",
        "image": args.image,
        "max_fps": args.max_fps,
        "clients": args.clients,
        "read_delay_s": args.read_delay,
        "results": [{"workload": n, "live_view": c, **s} for n, c, s in rows],
    }
    print(json.dumps(rounded(report), default=str), flush=True)
    if any(s["errors"] for _, _, s in rows):
        return 2
    return 0 if all(s["all_pass"] for _, _, s in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
