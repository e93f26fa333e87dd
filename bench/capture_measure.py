"""Capture benchmark: the measurements of one run: completeness, the ingest limit (bare
receiver), the save limit (encode CPU, disk speed) and the run itself."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from bench.capture_common import (
    BARE_WARMUP_S,
    BOUNDARY_S,
    DISK_PROBE_CHUNK,
    DISK_PROBE_MAX,
    DISK_PROBE_MIN,
    ENCODE_SAMPLES,
    MB,
    MIB,
    RSS_SLACK_MIB,
    SAMPLE_PERIOD_S,
    BenchError,
    log,
)
from bench.capture_service import (
    ProcessSampler,
    ServiceProcess,
    busy_cpu_seconds,
    own_cpu_seconds,
    post_recording,
    recording_batch,
    service_config,
)
from bench.capture_workloads import Workload
from camera.frames import Frame
from rigcore.config import Config
from sessions.encode_ladder import FULL, LADDERS
from sessions.image_codecs import ADAPTIVE_FORMATS, CameraWriteOptions, TiffSetting
from sessions.image_codecs import encode_frame as _encode
from simulator.config import CameraSim
from simulator.rig import SentFrame, SimRig

# -- completeness ------------------------------------------------------------------------------------


def completeness(
    sent: Iterable[SentFrame],
    connections: range,
    camera_id: str,
    window: tuple[float, float],
    saved: set[int],
    by_capture: bool = True,
) -> dict[str, Any]:
    """Frames of ``camera_id`` saved out of those the rig numbered in ``window`` on ``connections``,
    by their true capture time (``by_capture``) or by when the rig sent them.

    The expected frames are every ``frame_index`` from the first to the last one sent in the window
    (so frames the rig skipped count as lost); a frame sent within BOUNDARY_S of an edge that was not
    saved is excused.
    """
    start, end = window
    times = {
        f.frame_index: f.captured_ns / 1e9 if by_capture else f.sent_at_epoch
        for f in sent
        if f.camera_id == camera_id and f.connection_id in connections
    }
    in_window = {i: t for i, t in times.items() if start <= t < end}
    if not in_window:
        return {
            "expected": 0,
            "saved": 0,
            "sent": 0,
            "skipped_by_rig": 0,
            "lost_after_send": 0,
            "boundary_excused": 0,
            "ratio": None,
            "ratio_strict": None,
        }
    span = set(range(min(in_window), max(in_window) + 1))
    unsaved_sent = {i for i in in_window if i not in saved}
    excused = {
        i for i in unsaved_sent if in_window[i] < start + BOUNDARY_S or in_window[i] >= end - BOUNDARY_S
    }
    got = len(span & saved)
    expected = len(span) - len(excused)
    return {
        "expected": expected,
        "saved": got,
        "sent": len(in_window),
        "skipped_by_rig": len(span) - len(in_window),
        "lost_after_send": len(unsaved_sent) - len(excused),
        "boundary_excused": len(excused),
        "ratio": got / expected if expected else None,
        "ratio_strict": got / len(span),
    }


def bare_limit(rig: SimRig, wl: Workload) -> dict[str, Any]:
    """Run the bare receiver in its own process on the rig's stream for the workload's duration."""
    before = rig.stats()["connections_opened"]
    busy0, own0, t0 = busy_cpu_seconds(), own_cpu_seconds(), time.monotonic()
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("bare_receiver.py")),
        rig.ws_url,
        "--duration",
        str(wl.duration_s),
        "--warmup",
        str(BARE_WARMUP_S),
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=wl.duration_s + BARE_WARMUP_S + 60, check=False
    )
    if out.returncode != 0:
        raise BenchError(f"bare receiver failed ({out.returncode}): {out.stderr[-2000:]}")
    other_load = ((busy_cpu_seconds() - busy0) - (own_cpu_seconds() - own0)) / (time.monotonic() - t0)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    conns = range(before + 1, rig.stats()["connections_opened"] + 1)
    window = (result["window_start"], result["window_end"])
    sent = rig.sent_frames()
    per_cam = {}
    pixel_bytes = frames = 0
    for cid in wl.cameras:
        tally = result["cameras"].get(cid, {"frame_indices": [], "pixel_bytes": 0})
        per_cam[cid] = completeness(sent, conns, cid, window, set(tally["frame_indices"]), by_capture=False)
        pixel_bytes += tally["pixel_bytes"]
        frames += len(tally["frame_indices"])
    duration = window[1] - window[0]
    return {
        "mb_s": pixel_bytes / duration / MB,
        "fps": frames / duration,
        "completeness": {cid: c["ratio"] for cid, c in per_cam.items()},
        "completeness_detail": per_cam,
        "other_load_cores": other_load,
    }


# -- save limit --------------------------------------------------------------------------------------


ENCODE_METHOD = "sessions.writer._encode"  # the service's own encoder, timed as it runs there
# The adaptive ladder's settings by the name session.json counts them under (CameraRecord.encodings).
RUNG_SETTINGS: dict[str, TiffSetting] = {r.name: r for rungs in LADDERS.values() for r in rungs}


def encode_cpu_seconds(
    frame: Frame, options: CameraWriteOptions, setting: TiffSetting | None = None
) -> float:
    """Thread CPU time of one encode by the service's encoder (after one untimed warm-up call), at
    ``setting`` (an adaptive format's rung) if given."""
    _encode(frame, options, None, setting)
    t0 = time.thread_time()
    _encode(frame, options, None, setting)
    return time.thread_time() - t0


def frame_from_file(path: Path, camera_id: str, cam: CameraSim) -> Frame:
    """Rebuild the wire frame (pixels as the rig sent them) from a saved lossless file."""
    with Image.open(path) as image:
        image.load()
        if cam.pixel_format in ("rgb8", "bgr8"):
            arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
            if cam.pixel_format == "bgr8":
                arr = arr[..., ::-1]
        elif cam.pixel_format == "mono16":
            arr = np.asarray(image).astype("<u2")
        else:
            arr = np.asarray(image.convert("L"), dtype=np.uint8)
    pixels = np.ascontiguousarray(arr).tobytes()
    return Frame(camera_id, pixels, cam.width, cam.height, cam.pixel_format, None, None, 0.0, 0.0)


def mean_encode_cpu(frames: list[Frame], options: CameraWriteOptions, setting: TiffSetting | None) -> float:
    return statistics.mean(encode_cpu_seconds(f, options, setting) for f in frames)


@dataclass
class EncodeCost:
    """The encode CPU of a session's saved frames, re-timed with the service's encoder."""

    total_s: float  # CPU-seconds for every saved frame, each at the setting it was written at
    per_frame: dict[str, float]  # per camera: CPU-seconds a frame, weighted by the settings used
    top_per_frame: dict[str, float]  # per camera: CPU-seconds a frame at the format's best setting
    method: str


def encode_cpu(
    session_dir: Path, session: dict[str, Any], wl: Workload, formats: Mapping[str, str]
) -> EncodeCost:
    """The encode CPU of the saved frames. An adaptive format's frames are timed at each setting the
    camera's ``encodings`` in session.json counts, weighted by the counts. Per MB of raw pixels:
    ``per_frame[cid] / (wl.frame_bytes(cid) / MB)``."""
    cost = EncodeCost(0.0, {}, {}, "none")
    for cid, cam in wl.cameras.items():
        record = session["cameras"].get(cid, {})
        frames = record.get("frames", [])
        if cam.pixel_format == "encoded" or not frames:
            cost.per_frame[cid] = cost.top_per_frame[cid] = 0.0  # JPEG/PNG: written byte for byte
            continue
        options = CameraWriteOptions(image_format=formats[cid])
        cost.method = ENCODE_METHOD
        step = max(1, len(frames) // ENCODE_SAMPLES)
        picks = [frame_from_file(session_dir / f["file"], cid, cam) for f in frames[::step][:ENCODE_SAMPLES]]
        counts = record.get("encodings") or {}
        adaptive = formats[cid] in ADAPTIVE_FORMATS
        top = cost.top_per_frame[cid] = mean_encode_cpu(picks, options, FULL if adaptive else None)
        if adaptive and sum(counts.values()):
            weighted = sum(n * mean_encode_cpu(picks, options, RUNG_SETTINGS[k]) for k, n in counts.items())
            cost.per_frame[cid] = weighted / sum(counts.values())
        else:
            cost.per_frame[cid] = top
        cost.total_s += cost.per_frame[cid] * len(frames)
    return cost


def disk_write_speed(folder: Path, nbytes: int) -> float:
    """Bytes per second of writing ``nbytes`` of incompressible data to a new file in ``folder``,
    fsync included (the service fsyncs every frame file)."""
    chunk = os.urandom(DISK_PROBE_CHUNK)
    count = max(1, nbytes // DISK_PROBE_CHUNK)
    path = folder / f".capture-bench-disk-{uuid.uuid4().hex}.tmp"
    try:
        t0 = time.perf_counter()
        with open(path, "wb") as fh:
            for _ in range(count):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        elapsed = time.perf_counter() - t0
    finally:
        path.unlink(missing_ok=True)
    return count * DISK_PROBE_CHUNK / elapsed


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- one run -----------------------------------------------------------------------------------------


@dataclass
class BenchSettings:
    workloads: list[Workload]
    runs: int
    image_format: str | None
    overrides: list[tuple[str, Any]]
    keep: bool
    cores: int
    work_root: Path
    send_queue: bool = False  # the simulated rig queues every frame (simulator SimConfig.send_queue)
    pipeline_delay_s: float = 0.0  # frames leave the simulated rig this long after capture
    prefix: str = field(default_factory=lambda: f"capbench_{uuid.uuid4().hex[:8]}")


@dataclass
class ServiceRun:
    """What one recording job through the service process measured."""

    job: dict[str, Any]
    idle_rss: int
    peak_rss: int
    timeline: list[list[float]]
    service_cpu_s: float
    thread_cpu_s: list[float]  # per thread, largest first
    bench_cpu_s: float
    busy_cpu_s: float
    job_wall_s: float
    conns: range  # the rig connections the service opened
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]


def record_with_service(rig: SimRig, wl: Workload, run_no: int, config_path: Path, work: Path) -> ServiceRun:
    """Start the service on config_path, have it record one batch and sample it while it does."""
    service = ServiceProcess(config_path, work / "service.log")
    bench_proc = psutil.Process()
    conns_before = rig.stats()["connections_opened"]
    stats_before = rig.stats()
    try:
        url = service.start()
        service.wait_ready()
        log.info(
            "%s run %d: service %s (pid %d) recording %.0f s",
            wl.name,
            run_no + 1,
            url,
            service.pid,
            wl.duration_s,
        )
        with ProcessSampler(service.pid) as sampler:
            idle_rss = sampler.peak()
            t_post = time.monotonic()
            cpu0, threads0 = sampler.cpu_seconds(), sampler.thread_cpu()
            rig_cpu0, busy0 = sum(bench_proc.cpu_times()[:2]), busy_cpu_seconds()
            job = post_recording(url, recording_batch(wl, run_no), 120 + 30 * wl.duration_s)
            cpu1, threads1 = sampler.cpu_seconds(), sampler.thread_cpu()
            rig_cpu1, busy1 = sum(bench_proc.cpu_times()[:2]), busy_cpu_seconds()
            job_wall = time.monotonic() - t_post
            time.sleep(2 * SAMPLE_PERIOD_S)
            peak_rss = sampler.peak(t_post)
            timeline = sampler.timeline(t_post)
    finally:
        service.stop()
    stats_after = rig.stats()
    thread_cpu = sorted((threads1.get(tid, 0.0) - threads0.get(tid, 0.0) for tid in threads1), reverse=True)
    return ServiceRun(
        job=job,
        idle_rss=idle_rss,
        peak_rss=peak_rss,
        timeline=timeline,
        service_cpu_s=cpu1 - cpu0,
        thread_cpu_s=thread_cpu,
        bench_cpu_s=rig_cpu1 - rig_cpu0,
        busy_cpu_s=busy1 - busy0,
        job_wall_s=job_wall,
        conns=range(conns_before + 1, stats_after["connections_opened"] + 1),
        stats_before=stats_before,
        stats_after=stats_after,
    )


@dataclass
class SavedFrames:
    """What the session kept, summed over the workload's cameras."""

    per_cam: dict[str, dict[str, Any]]
    pixel_bytes: int
    frames: int
    raw_bytes: float  # what the cameras sent, in bytes (encoded cameras: at the saved mean size)


def saved_per_camera(
    rig: SimRig, wl: Workload, session: dict[str, Any], session_dir: Path, conns: range
) -> SavedFrames:
    start, end = float(session["record_started_at"]), float(session["record_ended_at"])
    sent = rig.sent_frames()
    per_cam: dict[str, dict[str, Any]] = {}
    saved_pixel_bytes = saved_frames = 0
    raw_bytes = 0.0
    for cid in wl.cameras:
        cam_doc = session["cameras"].get(cid, {})
        frames = cam_doc.get("frames", [])
        saved_idx = {f["frame_index"] for f in frames if f.get("frame_index") is not None}
        detail = completeness(sent, conns, cid, (start, end), saved_idx)
        detail["rejected_frames"] = cam_doc.get("rejected_frames", 0)
        # Frames saved out of the camera's nominal count (fps x the window): the rig's share of the CPU.
        detail["of_nominal"] = len(frames) / (wl.cameras[cid].fps * (end - start)) if end > start else None
        per_cam[cid] = detail
        size = wl.frame_bytes(cid)
        sizes = [(session_dir / f["file"]).stat().st_size for f in frames]
        detail["file_bytes"] = sum(sizes)
        if size is None:  # encoded: the files are the camera's bytes
            saved_pixel_bytes += sum(sizes)
            raw_bytes += detail["sent"] * (statistics.mean(sizes) if sizes else 0)
            detail["size_ratio"] = None
        else:
            saved_pixel_bytes += size * len(frames)
            raw_bytes += size * detail["sent"]
            detail["size_ratio"] = size * len(frames) / sum(sizes) if sizes else None
        saved_frames += len(frames)
    return SavedFrames(per_cam, saved_pixel_bytes, saved_frames, raw_bytes)


def run_once(rig: SimRig, wl: Workload, settings: BenchSettings, run_no: int, work: Path) -> dict[str, Any]:
    config = service_config(work, rig, wl, rig.cfg.topic_prefix, settings.image_format, settings.overrides)
    log.info("%s run %d: bare receiver for %.0f s", wl.name, run_no + 1, wl.duration_s)
    bare = bare_limit(rig, wl)

    formats = {cid: c.image_format for cid, c in Config.from_dict(config).cameras.items()}
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    run = record_with_service(rig, wl, run_no, config_path, work)
    job = run.job
    session_info = job.get("session") or {}
    if not session_info.get("path"):
        raise BenchError(
            f"job {job.get('job_id')} ended {job.get('status')} without a session: {job.get('error')}"
        )
    session_dir = Path(session_info["path"])
    manifest = session_dir / "session.json"
    session = json.loads(manifest.read_text(encoding="utf-8"))
    start, end = float(session["record_started_at"]), float(session["record_ended_at"])
    duration = end - start
    save_lag = manifest.stat().st_mtime - end

    saved = saved_per_camera(rig, wl, session, session_dir, run.conns)

    bytes_written = tree_bytes(session_dir)
    encode = encode_cpu(session_dir, session, wl, formats)
    encode_s, encode_per_frame, encode_method = encode.total_s, encode.per_frame, encode.method
    probe = min(DISK_PROBE_MAX, max(DISK_PROBE_MIN, bytes_written))
    disk_bps = disk_write_speed(session_dir.parent, probe)
    encode_limit = encode_s / settings.cores
    disk_limit = bytes_written / disk_bps
    save_limit = max(encode_limit, disk_limit)
    settle_first = session.get("settle_to_first_frame_s")
    memory = session.get("memory") or {}
    spilled = memory.get("spilled_frames", 0)
    figures: dict[str, Any] = {
        "job_status": job.get("status"),
        "session_status": session.get("status"),
        "duration_s": duration,
        "completeness": {cid: d["ratio"] for cid, d in saved.per_cam.items()},
        "completeness_strict": {cid: d["ratio_strict"] for cid, d in saved.per_cam.items()},
        "completeness_detail": saved.per_cam,
        "ingest_mb_s": saved.pixel_bytes / duration / MB,
        "ingest_fps": saved.frames / duration,
        "ingest_limit_mb_s": bare["mb_s"],
        "ingest_limit_fps": bare["fps"],
        "ingest_ratio_to_limit": (saved.pixel_bytes / duration / MB) / bare["mb_s"] if bare["mb_s"] else None,
        "limit_completeness": bare["completeness"],
        "limit_completeness_detail": bare["completeness_detail"],
        "save_lag_s": save_lag,
        "save_lag_ratio_duration": save_lag / duration,
        "save_limit_s": save_limit,
        "save_lag_ratio_limit": save_lag / save_limit if save_limit > 0 else None,
        "encode_cpu_s": encode_s,
        "encode_cpu_s_per_frame": encode_per_frame,
        "encode_cpu_ms_per_mb": {
            cid: 1000 * cost / (size / MB) if (size := wl.frame_bytes(cid)) else None
            for cid, cost in encode_per_frame.items()
        },
        # What the format's best setting would have cost on these frames (an adaptive format's top rung).
        "encode_top_cpu_ms_per_mb": {
            cid: 1000 * cost / (size / MB) if (size := wl.frame_bytes(cid)) else None
            for cid, cost in encode.top_per_frame.items()
        },
        # How each camera's frames were written: frames per setting (session.json, CameraRecord.encodings).
        "encodings": {cid: session["cameras"].get(cid, {}).get("encodings") or {} for cid in wl.cameras},
        "of_nominal": {cid: d["of_nominal"] for cid, d in saved.per_cam.items()},
        "size_ratio": {cid: d["size_ratio"] for cid, d in saved.per_cam.items()},
        "session_ratio_raw": bytes_written / saved.pixel_bytes if saved.pixel_bytes else None,
        "encode_method": encode_method,
        "encode_limit_s": encode_limit,
        "bytes_written_mb": bytes_written / MB,
        "disk_write_mb_s": disk_bps / MB,
        "disk_limit_s": disk_limit,
        "peak_rss_mib": run.peak_rss / MIB,
        "idle_rss_mib": run.idle_rss / MIB,
        "raw_mib": saved.raw_bytes / MIB,
        "rss_ratio_raw": run.peak_rss / saved.raw_bytes if saved.raw_bytes else None,
        "rss_ratio_target": (run.peak_rss / MIB) / (1.3 * saved.raw_bytes / MIB + RSS_SLACK_MIB),
        "settle_to_first_frame_ms": settle_first * 1000 if isinstance(settle_first, int | float) else None,
        "peak_buffered_mib": (memory.get("peak_buffered_bytes") or 0) / MIB,
        "spilled_frames": spilled,
        "warm_frames": memory.get("warm_frames"),
        "cold_frames": memory.get("cold_frames"),
        "spilled_inline": memory.get("spilled_inline"),
        # session.json gives the count only: estimated at the session's mean frame size.
        "spilled_mib_estimate": spilled * saved.pixel_bytes / max(saved.frames, 1) / MIB,
        "write_errors": session.get("write_error_count", len(session.get("write_errors", []))),
        "service_cpu_s": run.service_cpu_s,
        "service_thread_cpu_s": [round(v, 2) for v in run.thread_cpu_s[:8]],
        "bench_process_cpu_s": run.bench_cpu_s,
        # CPU that neither the service nor this process used while the job ran, in cores: other
        # programs on the machine. Anything well above 0 makes every figure of this run suspect.
        "other_load_cores": (run.busy_cpu_s - run.service_cpu_s - run.bench_cpu_s) / run.job_wall_s,
        "limit_other_load_cores": bare["other_load_cores"],
        "job_wall_s": run.job_wall_s,
        "rss_timeline_mib": run.timeline,
        "rig_frames_skipped": run.stats_after["frames_skipped"] - run.stats_before["frames_skipped"],
        "rig_ack_timeouts": run.stats_after["ack_timeouts"] - run.stats_before["ack_timeouts"],
    }
    figures["image_format"] = ",".join(sorted({formats[cid] for cid in wl.cameras}))
    if not settings.keep:
        shutil.rmtree(session_dir, ignore_errors=True)
    return figures
