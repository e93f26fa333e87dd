"""Shared fixtures: the real Mosquitto, a simulated rig on loopback, a started service, a client.

Every test gets its own MQTT topic prefix so tests never see each other's retained state. Timeouts
are scaled by one factor (``RIGCAPTURE_TIME_FACTOR``) so a slow CI machine does not flake.

The tests come in two layers: unit tests (unmarked) need no broker and no servers, and run alone with
``pytest -m "not integration"``; tests marked ``integration`` need the real Mosquitto on
127.0.0.1:1883 and/or live loopback servers (the simulated rig, the service), and only they stop the
run when the broker is missing. Plain ``pytest`` (what .ci/run runs) runs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from api import create_app
from application import ApiServer
from rigcore.config import Config
from service.capture import CaptureService
from simulator.config import SimConfig
from simulator.rig import SimRig

ROOT = Path(__file__).resolve().parent.parent
TIME_FACTOR = float(os.environ.get("RIGCAPTURE_TIME_FACTOR", "1"))
BROKER = ("127.0.0.1", 1883)


def scaled(seconds: float) -> float:
    return seconds * TIME_FACTOR


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def broker_problem() -> str | None:
    """None when the real broker answers on BROKER, else why not. Checked once per test session, and
    only if an integration test runs."""
    try:
        with socket.create_connection(BROKER, timeout=2):
            return None
    except OSError as exc:
        return str(exc)


@pytest.fixture(autouse=True)
def mosquitto(request: pytest.FixtureRequest) -> None:
    """Integration tests need the real broker; say so plainly when it is not there. Unit tests don't."""
    if request.node.get_closest_marker("integration") is None:
        return
    problem = request.getfixturevalue("broker_problem")
    if problem is not None:
        pytest.exit(f"Mosquitto is not running on {BROKER[0]}:{BROKER[1]} ({problem}); .ci/run starts it", 2)


@pytest.fixture
def prefix() -> str:
    return f"rctest_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sim_config(prefix: str) -> SimConfig:
    return SimConfig(topic_prefix=prefix, http_port=0, ws_port=0)


@pytest.fixture
def sim(sim_config: SimConfig) -> Iterator[SimRig]:
    rig = SimRig(sim_config)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def make_rig() -> Iterator[Callable[..., SimRig]]:
    """Start rigs with a unique topic prefix and ephemeral ports; stopped at teardown."""
    rigs: list[SimRig] = []

    def factory(**overrides: Any) -> SimRig:
        overrides.setdefault("topic_prefix", f"simtest_{uuid.uuid4().hex[:8]}")
        overrides.setdefault("http_port", 0)
        overrides.setdefault("ws_port", 0)
        rig = SimRig(SimConfig(**overrides))
        rigs.append(rig)
        rig.start()
        return rig

    yield factory
    for rig in rigs:
        rig.stop()


@pytest.fixture
def make_config(sim: SimRig, prefix: str, tmp_path: Path) -> Callable[..., Config]:
    def make(transport: str = "mqtt", **overrides: Any) -> Config:
        data: dict[str, Any] = {
            "api": {"host": "127.0.0.1", "port": 0},
            "mqtt": {"topic_prefix": prefix, "response_timeout_s": scaled(1.0)},
            "command_transport": transport,
            "invoke_url": sim.http_url,
            "streams": [{"url": sim.ws_url}],
            "save_dir": str(tmp_path / "save_images"),
            "images_data_dir": str(tmp_path / "images_data"),
            "history_file": str(tmp_path / "history.json"),
            "settle": {"timeout_s": scaled(20.0)},
        }
        return Config.from_dict(deep_merge(data, overrides))

    return make


@pytest.fixture
def start_service(
    make_config: Callable[..., Config], tmp_path: Path
) -> Iterator[Callable[..., CaptureService]]:
    started: list[CaptureService] = []

    def start(transport: str = "mqtt", wait_ready: bool = True, **overrides: Any) -> CaptureService:
        service = CaptureService(make_config(transport, **overrides), base_dir=tmp_path)
        service.start()
        started.append(service)
        if wait_ready:
            assert service.wait_ready(scaled(10)), "service did not connect to the broker and the stream"
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def start_configured(
    make_config: Callable[..., Config], tmp_path: Path
) -> Iterator[Callable[..., CaptureService]]:
    """Start services that have a config.json (tmp_path/config.json, written from ``make_config``), so
    that PUT /config saves and checks against it; stopped at teardown."""
    started: list[CaptureService] = []

    def start(**overrides: Any) -> CaptureService:
        config = make_config("mqtt", **overrides)
        path = tmp_path / "config.json"
        path.write_text(config.model_dump_json(), encoding="utf-8")
        service = CaptureService(config, base_dir=tmp_path, config_path=path)
        service.start()
        started.append(service)
        assert service.wait_ready(scaled(10)), "service did not connect to the broker and the stream"
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(start_service: Callable[..., CaptureService]) -> CaptureService:
    return start_service("mqtt")


@pytest.fixture
def client(service: CaptureService) -> FlaskClient:
    return create_app(service).test_client()


def batch(
    pan: int | None = 4500,
    tilt: int | None = -1000,
    seconds: float = 2.0,
    cameras: tuple[str, ...] = ("cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1"),
    record_first: bool = False,
) -> dict[str, Any]:
    """The README's batch: pan, tilt, then record (or the recording first)."""
    moves = []
    if pan is not None:
        moves.append(
            {
                "target_id": "entity",
                "device_id": "acikgoz_pantilt",
                "command_id": "set_pan_position_degree",
                "args": {"pan_position_deg_x100": pan},
            }
        )
    if tilt is not None:
        moves.append(
            {
                "target_id": "entity",
                "device_id": "acikgoz_pantilt",
                "command_id": "set_tilt_position_degree",
                "args": {"tilt_position_deg_x100": tilt},
            }
        )
    record = {
        "target_id": "camera_device",
        "device_id": cameras[0],
        "command_id": "start_recording_command",
        "args": {"duration_second": seconds, "camera_ids": list(cameras)},
    }
    return {"requests": [record, *moves] if record_first else [*moves, record]}


def wait_job(client: FlaskClient, job_id: str, timeout: float, phase: str = "done") -> dict[str, Any]:
    """Poll GET /jobs/<id> until the job reaches ``phase``; return the job."""
    deadline = time.monotonic() + scaled(timeout)
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").get_json()
        if job.get("phase") == phase:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {phase} in {timeout} s; last seen {job}")


def free_port() -> int:
    """A TCP port free on loopback right now (for servers that must be told their port up front)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(url: str, proc: subprocess.Popen[Any], timeout: float) -> None:
    """Wait until a service process answers /healthz with ok; fail early if the process died."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).json()["status"] == "ok":
                return
        except requests.RequestException:
            pass
        assert proc.poll() is None, f"service process exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"service at {url} did not come up in {timeout} s"
        time.sleep(0.1)


@contextmanager
def service_process(
    cfg_path: Path,
    cwd: Path,
    port: int,
    *,
    args: tuple[str, ...] = (),
    umask: int = -1,
    output: Path | None = None,
    entry: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python application.py --config cfg_path`` as a real process in ``cwd`` (so a test can kill it
    with SIGKILL), answering on ``port``; stopped on the way out if it still runs. ``args``: more
    command-line arguments; ``umask``: the process's (-1: this one's); ``output``: a file that gets its
    stdout and stderr (default: discarded); ``entry``: another application.py (a copy of the repo)."""
    sink = output.open("wb") if output is not None else None
    proc = subprocess.Popen(
        [sys.executable, str(entry or ROOT / "application.py"), "--config", str(cfg_path), *args],
        cwd=cwd,
        stdout=sink or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if sink else subprocess.DEVNULL,
        umask=umask,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, 20)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if sink is not None:
            sink.close()


@contextmanager
def serve(service: CaptureService) -> Iterator[str]:
    """The app on the production server (application.ApiServer) on a free loopback port; yields its
    base URL."""
    api = service.config.api.model_copy(update={"host": "127.0.0.1", "port": 0})
    server = ApiServer(create_app(service), api)
    thread = threading.Thread(target=server.serve_forever, name="test http server", daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        thread.join(5)
        server.close()


class PrivateBroker:
    """A Mosquitto process of one test alone, on a free loopback port (outage and link-loss tests
    stop or kill it without disturbing the shared broker on 1883)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto")
        assert exe is not None
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("private mosquitto did not start")

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: the link goes down at once, no clean disconnect."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A private Mosquitto, not started yet; skipped where the mosquitto binary is missing."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    broker = PrivateBroker(tmp_path)
    try:
        yield broker
    finally:
        broker.kill()


# -- PostgreSQL (the fleet's shared catalog, docs/operations/fleet.md) ----------------------------------
POSTGRES = ("127.0.0.1", 5432)  # trust auth, as .ci/run's machine has it


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL on POSTGRES (its ``postgres`` database); the test is skipped, saying why, when
    none answers there."""
    try:
        import psycopg

        url = f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/postgres"
        with psycopg.connect(url, connect_timeout=3):
            return url
    except Exception as exc:  # not installed, nothing listening, no trust auth
        pytest.skip(f"no PostgreSQL answers on {POSTGRES[0]}:{POSTGRES[1]} with trust auth ({exc})")


@pytest.fixture
def make_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Make databases of this test alone (a unique name each); dropped at teardown. Returns its URL."""
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = f"rctest_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return postgres_url.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
