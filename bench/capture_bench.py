"""Capture benchmark (issue 4): does capture keep up with the rig, and does saving use the machine?

Each workload runs through the real service — a separate ``application.py`` process driven over its
HTTP API (move, settle, record, save) — against the simulated rig, which runs in this process so
that ``SimRig.sent_frames()`` says exactly what the rig sent. The real Mosquitto on 127.0.0.1:1883
must be running. Everything listens on loopback only.

    python bench/capture_bench.py [--workload W1|W2|W2-long|all] [--runs N] [--duration S]
                                  [--image-format F | --formats F,F,...] [--memory-cap-mb MB]
                                  [--content C,C,...] [--set KEY=JSON ...] [--json-only] [--keep]
                                  [--work-dir DIR]

``--set`` overrides any service config key for an experiment (``--set recording.writer_threads=1``).
``--formats fast,png,tiff`` runs the workloads once per ``cameras.<id>.image_format`` and ends with
a table comparing the formats: encode CPU-ms per MB of raw pixels, size ratio (raw bytes ÷ file
bytes), save lag and completeness. Give ``--sim-noise`` (e.g. 3) or ``--content noise`` for sizes that
mean anything: the simulated scene without noise compresses 20-90x.

``--content smooth,noise,pattern`` runs the workloads once per content of the simulated frames
(simulator/content.py: the smooth scene; fixed per-pixel sensor noise of 3 counts; a structured
high-frequency texture, compressible but costly to compress), each held constant per camera, and ends
with a table per content: save lag, encode CPU-ms per MB (as written, and at the format's best
setting), session ÷ raw, the encode settings used (session.json's per-camera ``encodings``: with
``fast``, frames per rung of the adaptive ladder) and completeness with the share of nominal frames.

Workloads (default: W1 then W2; W2-long only when asked, or with ``all``):

- W1: RGB JPEG 1920x1080 at 30 fps, SWIR mono8 640x512 at 30 fps, LWIR mono16 640x512 at 30 fps; 10 s.
- W2: RGB rgb8 1920x1080 at 30 fps, SWIR mono16 1280x1024 at 60 fps (about 350 MB/s); 10 s.
- W2-long: W2 for 60 s with ``recording.memory_cap_mb`` set (``--memory-cap-mb``, default 1024).

Per run, in this order, so that nothing else reads the stream while a figure is taken:

1. the ingest limit: a bare websockets + msgpack receive loop (``bench/bare_receiver.py``, in its own
   process, as the service is) reads the rig's stream for the recording's duration;
2. the service starts, a pan/tilt move and ``start_recording_command`` are POSTed (``wait=true``),
   and its RSS and CPU are sampled every 50 ms with psutil until the job is done; then it is stopped
   with SIGINT;
3. the save limit: a few saved frames per camera are re-encoded with the service's own encoder
   (timed in thread CPU time), and a file as large as the session (256 MiB-1 GiB) is written and
   fsynced beside it.

Figures (table per workload, then exactly one JSON line with every figure; medians over ``--runs``
plus each run's values):

- completeness per camera: frames saved / frames the rig numbered from the first to the last frame it
  captured in the recording window ``[record_started_at, record_ended_at)`` (the service windows by
  capture time, docs/protocol.md §5; the bare receiver's window is its own arrival window, by send
  time). Frames the rig skipped because the reader was slow leave ``frame_index`` gaps and count as
  lost. A frame within ``BOUNDARY_S`` of either edge and not saved is excused and counted in
  ``boundary_excused``; ``completeness_strict`` excuses none. ``--send-queue`` and
  ``--pipeline-delay`` make the simulated rig deliver frames behind capture, as real rigs do;
- ingest MB/s (pixel bytes of saved frames / duration) and, in the same run, the bare receiver's;
- per raw camera: encode CPU-ms per MB of raw pixels (the service's encoder on saved frames) and the
  size ratio (raw pixel bytes ÷ bytes of the saved files); ``session_ratio_raw``: the session's bytes
  on disk ÷ the raw bytes of its frames (the compressed formats' target: at most 0.75);
- save lag: ``session.json`` mtime - ``record_ended_at``, and its ratio to the duration; the save limit
  ``max(encode CPU-s / cores, bytes written / disk write speed)`` and the lag's ratio to it;
- peak RSS of the service and its ratio to the recording's raw bytes (pixel bytes the rig sent in the
  window); settle to first recorded frame (``settle_to_first_frame_s`` in session.json);
- for diagnosis: CPU of the service (per thread) and of this process (the rig) during the job, and
  ``other_load_cores``, the CPU other programs used meanwhile: the rig shares this machine's cores
  with the service, and anything else running makes every figure of the run suspect.

The rig's process (this one) keeps its C heap warm like the service (``service/heap.py``): building
a W2 message otherwise faults fresh pages in on the rig's sender, and a rig slowed by its own
allocator skips frames the service never had a chance to read. The bare receiver runs in its own
process, not in this one, so that it does not share a GIL with the rig's sender — the service does
not either. Bytes the service spills under a memory cap are not in the
save limit's "bytes written" (only the session's files are); ``spilled_mib_estimate`` shows them.

Units: MB/s are 10^6 bytes a second; memory figures are MiB (2^20 bytes), as ``memory_cap_mb`` is.
Exit status: 0 every target met, 1 some target missed, 2 a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture_common import (
    BOUNDARY_S,
    BUSY_MACHINE_CORES,
    DEFAULT_MEMORY_CAP_MB,
    BenchError,
    log,
    start_bench,
)
from bench.capture_measure import BenchSettings, run_once
from bench.capture_report import (
    evaluate,
    median_of,
    print_content_table,
    print_format_table,
    print_table,
    rounded,
)
from bench.capture_service import background_load
from bench.capture_workloads import Workload, make_workload
from rigcore.config import ImageFormat
from simulator.config import SimConfig
from simulator.content import CONTENTS, Content
from simulator.rig import SimRig

# -- main --------------------------------------------------------------------------------------------


@contextmanager
def simulated_rig(wl: Workload, prefix: str, settings: BenchSettings | None = None) -> Iterator[SimRig]:
    """The workload's rig in this process; ``settings`` may give it a send queue and a pipeline delay.
    All frames due at one tick go in one message, as the real rig multiplexes its cameras."""
    lag = (
        {"send_queue": settings.send_queue, "pipeline_delay_s": settings.pipeline_delay_s} if settings else {}
    )
    cfg = SimConfig(
        topic_prefix=prefix,
        http_port=0,
        ws_port=0,
        cameras=wl.cameras,
        frames_per_message=len(wl.cameras),
        **lag,
    )
    rig = SimRig(cfg)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


def run_workload(wl: Workload, settings: BenchSettings) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"capture-bench-{wl.name}-", dir=settings.work_root))
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        with simulated_rig(wl, f"{settings.prefix}_{wl.name.replace('-', '_')}", settings) as rig:
            for run_no in range(settings.runs):
                try:
                    runs.append(run_once(rig, wl, settings, run_no, work))
                except (BenchError, OSError, requests.RequestException, subprocess.SubprocessError) as exc:
                    log.error("%s run %d failed: %s", wl.name, run_no + 1, exc)
                    errors.append(f"run {run_no + 1}: {exc}")
    finally:
        if settings.keep:
            log.info("kept %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "description": wl.description,
        "duration_s": wl.duration_s,
        "memory_cap_mb": wl.memory_cap_mb,
        "runs": len(runs),
        "errors": errors,
    }
    if runs:
        median = median_of(runs)
        targets = evaluate(wl, median)
        for run in runs:
            run["pass"] = {name: t["pass"] for name, t in evaluate(wl, run).items()}
        result.update(
            {
                "median": median,
                "targets": targets,
                "per_run": runs,
                "all_pass": all(t["pass"] for t in targets.values()),
            }
        )
    return result


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=JSON`` (a bare word that is not JSON is taken as a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_formats(text: str) -> list[str]:
    """``fast,png,tiff``: image formats the service knows, in the order given."""
    known = get_args(ImageFormat)
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in known]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"unknown image format(s) {unknown}; known: {', '.join(known)}")
    return formats


def parse_contents(text: str) -> list[Content]:
    """``smooth,noise,pattern``: contents of the simulated frames (simulator/content.py), in order."""
    contents = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in contents if c not in CONTENTS]
    if unknown or not contents:
        raise argparse.ArgumentTypeError(f"unknown content(s) {unknown}; known: {', '.join(CONTENTS)}")
    return [c for c in CONTENTS if c in contents]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--workload",
        choices=("W1", "W2", "W2-long", "all"),
        help="default: W1 and W2; all adds W2-long (60 s)",
    )
    ap.add_argument("--runs", type=int, default=1, help="runs per workload; medians are reported")
    ap.add_argument("--duration", type=float, help="recording seconds (default: 10, W2-long 60)")
    ap.add_argument(
        "--image-format",
        choices=get_args(ImageFormat),
        help="cameras.<id>.image_format (default: the service's default)",
    )
    ap.add_argument(
        "--formats",
        type=parse_formats,
        metavar="F,F,...",
        help="run the workloads once per image_format and compare them, e.g. fast,png,tiff",
    )
    ap.add_argument(
        "--memory-cap-mb",
        type=float,
        default=DEFAULT_MEMORY_CAP_MB,
        help="recording.memory_cap_mb for W2-long",
    )
    ap.add_argument(
        "--sim-noise",
        type=float,
        metavar="SIGMA",
        help="Gaussian sensor noise (in each format's counts) on the simulated frames. Without it, "
        "smooth rendered frames make lossless saving unduly cheap",
    )
    ap.add_argument(
        "--content",
        type=parse_contents,
        metavar="C,C,...",
        help=f"contents of the simulated frames, each run in turn and compared ({', '.join(CONTENTS)})",
    )
    ap.add_argument(
        "--send-queue", action="store_true", help="the simulated rig queues every frame (frames lag capture)"
    )
    ap.add_argument(
        "--pipeline-delay", type=float, default=0.0, metavar="S", help="frames leave the rig S after capture"
    )
    ap.add_argument("--json-only", action="store_true", help="print only the JSON line")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        type=parse_override,
        metavar="KEY=JSON",
        help="override a service config key, e.g. --set recording.writer_threads=1 (repeatable)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders and sessions")
    ap.add_argument("--work-dir", type=Path, help="where the temporary folders go (default: the system's)")
    args = ap.parse_args(argv)
    if args.formats and args.image_format:
        ap.error("give --image-format or --formats, not both")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.duration is not None and not 0 < args.duration <= 600:
        ap.error("--duration must be in (0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not start_bench(args.json_only):
        return 2
    load = background_load()
    if load > BUSY_MACHINE_CORES:
        log.warning("other programs keep %.2f cores busy: the figures will be disturbed", load)
    names = {"all": ["W1", "W2", "W2-long"], None: ["W1", "W2"]}.get(args.workload, [args.workload])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    settings = BenchSettings(
        workloads=[],
        runs=args.runs,
        image_format=args.image_format,
        overrides=args.set,
        keep=args.keep,
        cores=cores,
        work_root=args.work_dir or Path(tempfile.gettempdir()),
        send_queue=args.send_queue,
        pipeline_delay_s=args.pipeline_delay,
    )
    report: dict[str, Any] = {
        "bench": "capture_bench",
        "started_at": time.time(),
        "machine": {
            "cores": cores,
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "background_load_cores_at_start": load,
            "platform": platform.platform(),
        },
        "image_format": args.image_format or "default",
        "sim_noise_sigma": args.sim_noise,
        "sim_content": args.content or ["smooth"],
        "sim_send_queue": args.send_queue,
        "sim_pipeline_delay_s": args.pipeline_delay,
        "config_overrides": dict(args.set),
        "boundary_s": BOUNDARY_S,
        "workloads": {},
    }
    try:
        results = run_matrix(args, names, settings, report)
    except KeyboardInterrupt:
        print("interrupted; the service and the rig were stopped", file=sys.stderr)
        return 130
    if args.formats and not args.json_only and not args.content:
        print_format_table(report["formats"])
    if args.content and not args.json_only:
        print_content_table(
            {
                c: {f: e["workloads"] for f, e in by_format.items()}
                for c, by_format in report["contents"].items()
            }
        )
    print(json.dumps(rounded(report), default=str), flush=True)
    if any(r["errors"] or not r["runs"] for r in results):
        return 2
    return 0 if all(r["all_pass"] for r in results) else 1


def run_matrix(
    args: argparse.Namespace, names: list[str], settings: BenchSettings, report: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every content (``--content``) x format (``--formats``) x workload; results go into ``report``
    (``workloads``; ``formats.<f>.workloads``; with contents ``contents.<c>.<f>.workloads``). Returns
    every workload's result."""
    formats: list[str | None] = list(args.formats) if args.formats else [args.image_format]
    results: list[dict[str, Any]] = []
    for content in args.content or [None]:
        settings.workloads = [
            make_workload(n, args.duration, args.memory_cap_mb, args.sim_noise, content or "smooth")
            for n in names
        ]
        for image_format in formats:
            settings.image_format = image_format
            if content is not None and not args.json_only:
                print(f"\n[content {content}]", end="")
            workloads = run_workloads(settings, args.json_only)
            results += workloads.values()
            if content is not None:
                by_format = report.setdefault("contents", {}).setdefault(content, {})
                by_format[image_format or "default"] = {"workloads": workloads}
            elif args.formats:
                report.setdefault("formats", {})[image_format] = {"workloads": workloads}
            else:
                report["workloads"] = workloads
    return results


def run_workloads(settings: BenchSettings, json_only: bool) -> dict[str, Any]:
    """Every workload once (``settings.runs`` runs each) with ``settings.image_format``; tables printed."""
    results: dict[str, Any] = {}
    for wl in settings.workloads:
        result = run_workload(wl, settings)
        results[wl.name] = result
        if not json_only and "median" in result:
            if settings.image_format is not None:
                print(f"\n[image_format {settings.image_format}]", end="")
            print_table(wl, result["runs"], result["median"], result["targets"])
        if not json_only and result["errors"]:
            print(f"  errors: {result['errors']}")
    return results


if __name__ == "__main__":
    sys.exit(main())
