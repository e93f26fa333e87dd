"""Capture benchmark: the service under test, a separate ``application.py`` process, its
configuration, and its sampling (RSS, CPU) while it records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import psutil
import requests

from bench.capture_common import (
    BROKER,
    ENDED,
    HTTP_TIMEOUT_S,
    MIB,
    REPO,
    SAMPLE_PERIOD_S,
    SERVICE_READY_TIMEOUT_S,
    SERVICE_START_TIMEOUT_S,
    SERVICE_STOP_TIMEOUT_S,
    BenchError,
    log,
)
from bench.capture_workloads import Workload
from rigcore.config import Config, ConfigError
from service.status import JobPhase
from simulator.rig import SimRig

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
    while job.get("phase") != JobPhase.DONE and job.get("status") not in ENDED:
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
