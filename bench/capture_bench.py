"""Capture benchmark (issue 4): does capture keep up with the rig, and does saving use the machine?

Each workload runs through the real service — a separate ``application.py`` process driven over its
HTTP API (move, settle, record, save) — against the simulated rig, which runs in this process so
that ``SimRig.sent_frames()`` says exactly what the rig sent. The real Mosquitto on 127.0.0.1:1883
must be running. Everything listens on loopback only.

    python bench/capture_bench.py [--workload W1|W2|W2-long|all] [--runs N] [--duration S]
                                  [--image-format F | --formats F,F,...] [--memory-cap-mb MB]
                                  [--set KEY=JSON ...] [--json-only] [--keep] [--work-dir DIR]

``--set`` overrides any service config key for an experiment (``--set recording.writer_threads=1``).
``--formats fast,png,tiff`` runs the workloads once per ``cameras.<id>.image_format`` and ends with
a table comparing the formats: encode CPU-ms per MB of raw pixels, size ratio (raw bytes ÷ file
bytes), save lag and completeness. Give ``--sim-noise`` (e.g. 3) for sizes that mean anything: the
simulated scene without noise compresses 20-90x.

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
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, get_args

import numpy as np
import psutil
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from camera.frames import Frame, expected_size
from rigcore.config import Config, ConfigError, ImageFormat
from rigcore.heap import keep_heap_warm
from sessions.writer import CameraWriteOptions, _encode
from simulator.config import LWIR_ID, RGB_ID, SWIR_ID, CameraSim, SimConfig
from simulator.rig import SentFrame, SimRig

log = logging.getLogger("capture_bench")

REPO = Path(__file__).resolve().parent.parent

MIB = 2**20
MB = 10**6
BROKER = ("127.0.0.1", 1883)
SAMPLE_PERIOD_S = 0.05  # psutil poll of the service's RSS and CPU
BOUNDARY_S = 0.05  # frames sent this close to a window edge may legitimately arrive on its other side
BARE_WARMUP_S = 1.0  # the bare receiver reads this long before its window opens
SERVICE_START_TIMEOUT_S = 60.0  # imports, broker and stream connection
SERVICE_READY_TIMEOUT_S = 30.0
SERVICE_STOP_TIMEOUT_S = 120.0  # SIGINT waits for the writer threads; then SIGKILL
HTTP_TIMEOUT_S = 10.0  # any call but the recording's POST
ENCODE_SAMPLES = 4  # frames per camera re-encoded for the encode CPU figure
DISK_PROBE_MIN = 256 * MIB
DISK_PROBE_MAX = 1024 * MIB
DISK_PROBE_CHUNK = 8 * MIB
DEFAULT_MEMORY_CAP_MB = 1024.0
RSS_SLACK_MIB = 300.0  # the "+ 300 MB" of the memory targets
BUSY_MACHINE_CORES = 0.2  # other programs' load above which the bench warns
# Formats held to issue 15's targets on W2: save lag <= 0.1 x duration, session <= 0.75 x raw bytes.
FAST_FORMATS = frozenset({"fast", "tiff-zstd"})
FAST_LAG_PER_DURATION = 0.1
FAST_SESSION_PER_RAW = 0.75


class BenchError(Exception):
    """A run could not be completed (service did not start, job failed, …); the message says why."""


# -- workloads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    cameras: dict[str, CameraSim]
    duration_s: float
    min_completeness: float  # per camera
    # The save lag target: at most this many times the duration, or this many times the save limit.
    lag_per_duration: float | None = None
    lag_per_limit: float | None = None
    memory_cap_mb: float | None = None

    def frame_bytes(self, camera_id: str) -> int | None:
        """Pixel bytes of one raw frame; None for ``encoded`` (JPEG, size varies)."""
        cam = self.cameras[camera_id]
        return expected_size(cam.pixel_format, cam.width, cam.height)


def make_workload(
    name: str, duration_s: float | None, memory_cap_mb: float, noise_sigma: float | None = None
) -> Workload:
    """A workload; ``noise_sigma`` adds sensor noise to the simulated frames (see --sim-noise)."""
    extra: dict[str, Any] = {} if noise_sigma is None else {"noise_sigma": noise_sigma}

    def cam(fmt: str, width: int, height: int, fps: float, **kw: Any) -> CameraSim:
        return CameraSim(fmt, width, height, fps, **kw, **extra)

    def rgb(fmt: str) -> CameraSim:
        return cam(fmt, 1920, 1080, 30.0, zoom_device=True, zoom_style="value")

    if name == "W1":
        cams = {
            RGB_ID: rgb("encoded"),
            SWIR_ID: cam("mono8", 640, 512, 30.0, zoom_device=True, zoom_style="step"),
            LWIR_ID: cam("mono16", 640, 512, 30.0),
        }
        desc = "RGB JPEG 1920x1080@30, SWIR mono8 640x512@30, LWIR mono16 640x512@30"
        return Workload(name, desc, cams, duration_s or 10.0, min_completeness=1.0, lag_per_duration=0.25)
    cams = {
        RGB_ID: rgb("rgb8"),
        SWIR_ID: cam("mono16", 1280, 1024, 60.0, zoom_device=True, zoom_style="step"),
    }
    desc = "RGB rgb8 1920x1080@30, SWIR mono16 1280x1024@60"
    if name == "W2":
        return Workload(name, desc, cams, duration_s or 10.0, min_completeness=0.99, lag_per_limit=1.2)
    if name == "W2-long":
        desc += f", memory cap {memory_cap_mb:g} MiB"
        return Workload(
            name,
            desc,
            cams,
            duration_s or 60.0,
            min_completeness=0.99,
            lag_per_limit=1.2,
            memory_cap_mb=memory_cap_mb,
        )
    raise ValueError(f"unknown workload {name!r}")


def nominal_mb_s(wl: Workload) -> float | None:
    total = 0.0
    for cid, cam in wl.cameras.items():
        size = wl.frame_bytes(cid)
        if size is None:
            return None
        total += size * cam.fps
    return total / MB


# -- the service process -----------------------------------------------------------------------------


def service_config(
    work: Path,
    rig: SimRig,
    wl: Workload,
    prefix: str,
    image_format: str | None,
    overrides: Iterable[tuple[str, Any]] = (),
) -> dict[str, Any]:
    """config.json for the service: loopback, this rig, the workload's cameras, paths in ``work``;
    then ``overrides`` (dotted key, value), e.g. ``("recording.writer_threads", 1)``."""
    defaults = Config().cameras
    cameras: dict[str, Any] = {}
    for cid, cam in wl.cameras.items():
        entry = defaults[cid].model_dump(mode="json") if cid in defaults else {}
        entry["pixel_format"] = cam.pixel_format
        if image_format is not None:
            entry["image_format"] = image_format
        cameras[cid] = entry
    data: dict[str, Any] = {
        "api": {"host": "127.0.0.1", "port": 0},
        "mqtt": {"host": BROKER[0], "port": BROKER[1], "topic_prefix": prefix},
        "command_transport": "mqtt",
        "invoke_url": rig.http_url,
        "streams": [{"url": rig.ws_url}],
        "cameras": cameras,
        "save_dir": str(work / "save_images"),
        "images_data_dir": str(work / "images_data"),
        "history_file": str(work / "history.json"),
    }
    if wl.memory_cap_mb is not None:
        data["recording"] = {"memory_cap_mb": wl.memory_cap_mb}
    for key, value in overrides:
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    try:
        Config.from_dict(data)  # a key the service does not know fails here, naming it
    except ConfigError as exc:
        raise BenchError(f"service config: {exc}") from exc
    return data


class ServiceProcess:
    """``application.py --config …`` as a child process; its output goes to ``log_path``."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> str:
        """Start it and return its base URL once it prints that it listens."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, str(REPO / "application.py"), "--config", str(self.config_path)]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        log_file = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the reader thread
        self._reader = threading.Thread(
            target=self._read_output, args=(self.proc.stdout, log_file), name="service-output", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while not self._listening.wait(0.1):
            if self.proc.poll() is not None:
                raise BenchError(f"the service exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"the service did not listen within {SERVICE_START_TIMEOUT_S} s")
        assert self.url is not None
        return self.url

    def _read_output(self, stream: IO[str] | None, log_file: IO[str]) -> None:
        marker = "rigcapture listening on "
        try:
            for line in stream or ():
                log_file.write(line)
                log_file.flush()
                if self.url is None and marker in line:
                    self.url = line.split(marker, 1)[1].split()[0]
                    self._listening.set()
        finally:
            log_file.close()

    def wait_ready(self) -> None:
        """Until /status shows the broker and every stream connected."""
        assert self.url is not None
        deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = requests.get(f"{self.url}/status", timeout=HTTP_TIMEOUT_S).json()
                if last["broker"]["connected"] and all(s["connected"] for s in last["streams"]):
                    return
            except (requests.RequestException, ValueError, KeyError) as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise BenchError(f"the service was not connected within {SERVICE_READY_TIMEOUT_S} s: {last}")

    def stop(self) -> None:
        """SIGINT (the service's own clean shutdown), then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(SERVICE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("the service did not stop within %s s; killing it", SERVICE_STOP_TIMEOUT_S)
                self.proc.kill()
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ProcessSampler:
    """Samples a process's RSS every ``period`` seconds in a thread; peak over any interval."""

    def __init__(self, pid: int, period: float = SAMPLE_PERIOD_S) -> None:
        self._proc = psutil.Process(pid)
        self._period = period
        self._stop = threading.Event()
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), rss bytes)
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self.samples.append((time.monotonic(), self._proc.memory_info().rss))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic(), self._proc.memory_info().rss))
            except psutil.Error:
                return  # the process is gone
            if self._stop.wait(self._period):
                return

    def peak(self, since: float = 0.0) -> int:
        return max((rss for t, rss in self.samples if t >= since), default=0)

    def timeline(self, since: float, bucket_s: float = 1.0) -> list[list[float]]:
        """``[seconds after since, peak RSS MiB]`` per bucket."""
        buckets: dict[int, int] = {}
        for t, rss in self.samples:
            if t >= since:
                key = int((t - since) / bucket_s)
                buckets[key] = max(buckets.get(key, 0), rss)
        return [[k * bucket_s, round(v / MIB, 1)] for k, v in sorted(buckets.items())]

    def cpu_seconds(self) -> float:
        t = self._proc.cpu_times()
        return float(t.user + t.system)

    def thread_cpu(self) -> dict[int, float]:
        return {th.id: th.user_time + th.system_time for th in self._proc.threads()}


def busy_cpu_seconds() -> float:
    """CPU-seconds every core of the machine has spent busy since boot (anything but idle and iowait)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def own_cpu_seconds() -> float:
    """CPU-seconds of this process (the simulated rig, the sampler) and its waited-for children."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def background_load(seconds: float = 1.0) -> float:
    """Cores that other programs keep busy, measured over ``seconds``."""
    busy0, own0, t0 = busy_cpu_seconds(), own_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return ((busy_cpu_seconds() - busy0) - (own_cpu_seconds() - own0)) / (time.monotonic() - t0)


def post_recording(url: str, body: dict[str, Any], deadline_s: float) -> dict[str, Any]:
    """POST the batch with wait=true; if the service answers 202 (still running), follow the job."""
    deadline = time.monotonic() + deadline_s
    resp = requests.post(f"{url}/process-request", json=body, timeout=deadline_s)
    job: dict[str, Any] = resp.json()
    if resp.status_code not in (200, 202):
        raise BenchError(f"POST /process-request answered {resp.status_code}: {job}")
    while job.get("phase") != "done" and job.get("status") not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise BenchError(f"job {job.get('job_id')} not done within {deadline_s:.0f} s")
        time.sleep(0.2)
        job = requests.get(f"{url}/jobs/{job['job_id']}", timeout=HTTP_TIMEOUT_S).json()
    return job


def recording_batch(wl: Workload, run_no: int) -> dict[str, Any]:
    """Move the pan-tilt (a different pose each run, so the settle has to see a real move), then record."""
    sign = 1 if run_no % 2 == 0 else -1
    return {
        "requests": [
            {
                "target_id": "entity",
                "device_id": "acikgoz_pantilt",
                "command_id": "set_pan_position_degree",
                "args": {"pan_position_deg_x100": sign * 1000},
            },
            {
                "target_id": "entity",
                "device_id": "acikgoz_pantilt",
                "command_id": "set_tilt_position_degree",
                "args": {"tilt_position_deg_x100": -sign * 500},
            },
            {
                "target_id": "camera_device",
                "device_id": next(iter(wl.cameras)),
                "command_id": "start_recording_command",
                "args": {"duration_second": wl.duration_s, "camera_ids": list(wl.cameras)},
            },
        ]
    }


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


def encode_cpu_seconds(frame: Frame, options: CameraWriteOptions) -> float:
    """Thread CPU time of one encode by the service's encoder (after one untimed warm-up call)."""
    _encode(frame, options)
    t0 = time.thread_time()
    _encode(frame, options)
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


def encode_cpu(
    session_dir: Path, session: dict[str, Any], wl: Workload, formats: Mapping[str, str]
) -> tuple[float, dict[str, float], str]:
    """(total encode CPU-seconds, per-camera CPU-seconds per frame, method) for the saved frames.
    Per MB of raw pixels: ``per_frame[cid] / (wl.frame_bytes(cid) / MB)``."""
    total = 0.0
    per_frame: dict[str, float] = {}
    sampled = False
    for cid, cam in wl.cameras.items():
        frames = session["cameras"].get(cid, {}).get("frames", [])
        if cam.pixel_format == "encoded" or not frames:
            per_frame[cid] = 0.0  # JPEG/PNG from the camera is written byte for byte
            continue
        options = CameraWriteOptions(image_format=formats[cid])
        sampled = True
        step = max(1, len(frames) // ENCODE_SAMPLES)
        picks = frames[::step][:ENCODE_SAMPLES]
        costs = [
            encode_cpu_seconds(frame_from_file(session_dir / f["file"], cid, cam), options) for f in picks
        ]
        per_frame[cid] = statistics.mean(costs)
        total += per_frame[cid] * len(frames)
    return total, per_frame, ENCODE_METHOD if sampled else "none"


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
    encode_s, encode_per_frame, encode_method = encode_cpu(session_dir, session, wl, formats)
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


# -- targets and reporting ---------------------------------------------------------------------------


def evaluate(wl: Workload, fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the value, the bound it is held to, pass or not.

    Targets are ratios taken within one run; on medians, the median of each run's ratio is held to
    the bound (not the ratio of medians).
    """
    out: dict[str, dict[str, Any]] = {}
    need = wl.min_completeness
    for cid, ratio in fig["completeness"].items():
        out[f"completeness {cid}"] = {
            "value": ratio,
            "bound": f">= {need:.0%}",
            "pass": ratio is not None and ratio >= need - 1e-9,
        }
    if wl.lag_per_duration is not None:
        ratio, bound = fig["save_lag_ratio_duration"], wl.lag_per_duration
        text = f"lag / duration <= {bound:g}"
    else:
        assert wl.lag_per_limit is not None
        ratio, bound = fig["save_lag_ratio_limit"], wl.lag_per_limit
        text = f"lag / save limit <= {bound:g}"
    out["save lag"] = {"value": ratio, "bound": text, "pass": ratio is not None and ratio <= bound}
    ratio = fig["rss_ratio_target"]
    out["peak RSS"] = {
        "value": ratio,
        "bound": "peak / (1.3 x raw + 300 MiB) <= 1",
        "pass": ratio is not None and ratio <= 1.0,
    }
    if wl.memory_cap_mb is not None:
        cap_bound = wl.memory_cap_mb + RSS_SLACK_MIB
        out["peak RSS under cap"] = {
            "value": fig["peak_rss_mib"],
            "bound": f"< cap + 300 MiB = {cap_bound:.0f} MiB",
            "pass": fig["peak_rss_mib"] < cap_bound,
        }
        lost = sum(d["lost_after_send"] for d in fig["completeness_detail"].values())
        rejected = sum(d["rejected_frames"] for d in fig["completeness_detail"].values())
        lost_total = lost + rejected + fig["write_errors"]
        out["nothing lost (sent, not saved)"] = {"value": lost_total, "bound": "= 0", "pass": lost_total == 0}
    out.update(fast_format_targets(wl, fig))
    s2f = fig["settle_to_first_frame_ms"]
    out["settle to first frame"] = {"value": s2f, "bound": "<= 50 ms", "pass": s2f is not None and s2f <= 50}
    return out


def fast_format_targets(wl: Workload, fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Issue 15's targets for the fast compressed format on W2: lag and session size."""
    if wl.name != "W2" or fig.get("image_format") not in FAST_FORMATS:
        return {}
    lag = fig["save_lag_ratio_duration"]
    size = fig["session_ratio_raw"]
    return {
        "save lag (fast format)": {
            "value": lag,
            "bound": f"lag / duration <= {FAST_LAG_PER_DURATION:g}",
            "pass": lag is not None and lag <= FAST_LAG_PER_DURATION,
        },
        "session size (fast format)": {
            "value": size,
            "bound": f"session / raw bytes <= {FAST_SESSION_PER_RAW:g}",
            "pass": size is not None and size <= FAST_SESSION_PER_RAW,
        },
    }


def median_of(values: list[Any]) -> Any:
    """Median of numbers; per key for dicts; the common value (or None) otherwise."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, bool | str):
        return first if all(v == first for v in present) else None
    if isinstance(first, int | float):
        return statistics.median(present)
    if isinstance(first, dict):
        return {k: median_of([v.get(k) for v in present if isinstance(v, dict)]) for k in first}
    return None


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _num(v: Any, fmt: str = ".2f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{fmt}}{unit}"


def print_table(wl: Workload, runs: int, fig: dict[str, Any], targets: dict[str, dict[str, Any]]) -> None:
    label = f"median of {runs} runs" if runs > 1 else "1 run"
    print(f"\n{wl.name}: {wl.description}; {wl.duration_s:g} s; {label}")
    rows: list[tuple[str, str, str, str]] = []

    def verdict(name: str) -> str:
        t = targets.get(name)
        return "" if t is None else ("PASS" if t["pass"] else "FAIL")

    for cid in wl.cameras:
        d = fig["completeness_detail"][cid]
        lim = fig["limit_completeness"].get(cid)
        rows.append(
            (
                f"completeness {cid}",
                f"{_pct(fig['completeness'][cid])} "
                f"({_num(d['saved'], '.0f')}/{_num(d['expected'], '.0f')}, "
                f"skipped {_num(d['skipped_by_rig'], '.0f')})",
                f"bare {_pct(lim)}; {targets[f'completeness {cid}']['bound']}",
                verdict(f"completeness {cid}"),
            )
        )
    nominal = nominal_mb_s(wl)
    rows.append(
        (
            "ingest",
            f"{_num(fig['ingest_mb_s'], '.1f')} MB/s, {_num(fig['ingest_fps'], '.1f')} fps "
            f"({_num(fig['ingest_ratio_to_limit'])} of bare)",
            f"bare {_num(fig['ingest_limit_mb_s'], '.1f')} MB/s, {_num(fig['ingest_limit_fps'], '.1f')} fps"
            + (f"; nominal {nominal:.1f} MB/s" if nominal else ""),
            "",
        )
    )
    rows.append(
        (
            "save lag",
            f"{_num(fig['save_lag_s'])} s ({_num(fig['save_lag_ratio_duration'], '.3f')} x dur, "
            f"{_num(fig['save_lag_ratio_limit'])} x limit)",
            targets["save lag"]["bound"],
            verdict("save lag"),
        )
    )
    for name in ("save lag (fast format)", "session size (fast format)"):
        if name in targets:
            rows.append((name, _num(targets[name]["value"], ".3f"), targets[name]["bound"], verdict(name)))
    rows.append(
        (
            f"encoding ({fig.get('image_format') or 'n/a'})",
            "; ".join(
                f"{cid}: {_num(fig['encode_cpu_ms_per_mb'].get(cid))} CPU-ms/MB, "
                f"ratio {_num(fig['size_ratio'].get(cid))}"
                for cid in wl.cameras
                if fig["encode_cpu_ms_per_mb"].get(cid) is not None
            )
            or "n/a (no raw camera)",
            f"session {_num(fig['bytes_written_mb'], '.0f')} MB = "
            f"{_num(fig['session_ratio_raw'], '.3f')} x raw",
            "",
        )
    )
    rows.append(
        (
            "save limit",
            f"{_num(fig['save_limit_s'])} s",
            f"max(encode {_num(fig['encode_cpu_s'], '.1f')} CPU-s / cores = {_num(fig['encode_limit_s'])} s, "
            f"{_num(fig['bytes_written_mb'], '.0f')} MB / {_num(fig['disk_write_mb_s'], '.0f')} MB/s = "
            f"{_num(fig['disk_limit_s'])} s)",
            "",
        )
    )
    rows.append(
        (
            "peak RSS",
            f"{_num(fig['peak_rss_mib'], '.0f')} MiB ({_num(fig['rss_ratio_raw'])} x raw "
            f"{_num(fig['raw_mib'], '.0f')} MiB; {_num(fig['rss_ratio_target'])} of the bound)",
            targets["peak RSS"]["bound"],
            verdict("peak RSS"),
        )
    )
    if "peak RSS under cap" in targets:
        rows.append(
            (
                "peak RSS, memory cap",
                f"{_num(fig['peak_rss_mib'], '.0f')} MiB, spilled {_num(fig['spilled_frames'], '.0f')} "
                f"frames (~{_num(fig['spilled_mib_estimate'], '.0f')} MiB)",
                targets["peak RSS under cap"]["bound"],
                verdict("peak RSS under cap"),
            )
        )
        t = targets["nothing lost (sent, not saved)"]
        rows.append(
            (
                "frames sent, not saved",
                _num(t["value"], ".0f"),
                t["bound"],
                verdict("nothing lost (sent, not saved)"),
            )
        )
    rows.append(
        (
            "settle -> first frame",
            f"{_num(fig['settle_to_first_frame_ms'], '.1f')} ms",
            targets["settle to first frame"]["bound"],
            verdict("settle to first frame"),
        )
    )
    rows.append(
        (
            "other programs' CPU",
            f"{_num(fig['other_load_cores'])} cores during the job, {_num(fig['limit_other_load_cores'])} "
            "during the bare receiver",
            "should be ~0",
            "",
        )
    )
    rows.append(
        (
            "CPU during job",
            f"service {_num(fig['service_cpu_s'], '.1f')} CPU-s, bench+rig "
            f"{_num(fig['bench_process_cpu_s'], '.1f')} CPU-s in {_num(fig['job_wall_s'], '.1f')} s",
            "",
            "",
        )
    )
    widths = [max(len(r[i]) for r in [("figure", "value", "limit / target", ""), *rows]) for i in range(3)]
    header = ("figure", "value", "limit / target", "pass")
    for r in [header, *rows]:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")


# -- main --------------------------------------------------------------------------------------------


@contextmanager
def simulated_rig(wl: Workload, prefix: str, settings: BenchSettings) -> Iterator[SimRig]:
    # All frames due at one tick in one message, as the real rig multiplexes its cameras.
    cfg = SimConfig(
        topic_prefix=prefix,
        http_port=0,
        ws_port=0,
        cameras=wl.cameras,
        frames_per_message=len(wl.cameras),
        send_queue=settings.send_queue,
        pipeline_delay_s=settings.pipeline_delay_s,
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


def _on_sigterm(signum: int, _frame: object) -> None:
    # Unwind like Ctrl-C does, so the service process, the rig and the temporary folders are cleaned up.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The rig runs in this process: its message buffers come from a warm heap, as the service's do
    # (service/heap.py), so that the simulated rig does not slow itself down on fresh pages.
    keep_heap_warm()
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(
        level=logging.WARNING if args.json_only else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("simulator", "websockets", "paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        with socket.create_connection(BROKER, timeout=2):
            pass
    except OSError as exc:
        print(
            f"no MQTT broker on {BROKER[0]}:{BROKER[1]} ({exc}); start Mosquitto (.ci/run does)",
            file=sys.stderr,
        )
        return 2
    load = background_load()
    if load > BUSY_MACHINE_CORES:
        log.warning("other programs keep %.2f cores busy: the figures will be disturbed", load)
    names = {"all": ["W1", "W2", "W2-long"], None: ["W1", "W2"]}.get(args.workload, [args.workload])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workloads = [make_workload(n, args.duration, args.memory_cap_mb, args.sim_noise) for n in names]
    settings = BenchSettings(
        workloads=workloads,
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
        "sim_send_queue": args.send_queue,
        "sim_pipeline_delay_s": args.pipeline_delay,
        "config_overrides": dict(args.set),
        "boundary_s": BOUNDARY_S,
        "workloads": {},
    }
    formats: list[str | None] = list(args.formats) if args.formats else [args.image_format]
    try:
        for image_format in formats:
            settings.image_format = image_format
            workloads = run_workloads(settings, args.json_only)
            if args.formats:
                report.setdefault("formats", {})[image_format] = {"workloads": workloads}
            else:
                report["workloads"] = workloads
    except KeyboardInterrupt:
        print("interrupted; the service and the rig were stopped", file=sys.stderr)
        return 130
    if args.formats and not args.json_only:
        print_format_table(report["formats"])
    print(json.dumps(_rounded(report), default=str), flush=True)
    if args.formats:
        results = [r for f in report["formats"].values() for r in f["workloads"].values()]
    else:
        results = list(report["workloads"].values())
    if any(r["errors"] or not r["runs"] for r in results):
        return 2
    return 0 if all(r["all_pass"] for r in results) else 1


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


def print_format_table(by_format: Mapping[str, Any]) -> None:
    """One row per format and workload with raw cameras: CPU-ms/MB and size ratio per camera, the
    session's size, save lag and completeness (medians)."""
    print("\nformats compared (medians; CPU-ms per MB of raw pixels, ratio = raw bytes / file bytes):")
    header = ("format", "workload", "raw cameras: CPU-ms/MB, ratio", "session / raw", "save lag", "complete")
    rows: list[tuple[str, ...]] = [header]
    for image_format, entry in by_format.items():
        for name, result in entry["workloads"].items():
            fig = result.get("median")
            if fig is None:
                rows.append((image_format, name, "failed", "", "", ""))
                continue
            cams = "; ".join(
                f"{cid.removeprefix('cameradevice_')} {_num(ms, '.1f')}, {_num(fig['size_ratio'].get(cid))}"
                for cid, ms in fig["encode_cpu_ms_per_mb"].items()
                if ms is not None
            )
            lag = f"{_num(fig['save_lag_s'])} s ({_num(fig['save_lag_ratio_duration'], '.3f')} x dur)"
            complete = " / ".join(_pct(v) for v in fig["completeness"].values())
            rows.append(
                (image_format, name, cams or "n/a", _num(fig["session_ratio_raw"], ".3f"), lag, complete)
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)))


def _rounded(value: Any) -> Any:
    """Floats to 4 decimals (6 for epoch times, which need the milliseconds), recursively."""
    if isinstance(value, float):
        return round(value, 6 if value > 1e9 else 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
