"""Shared fixtures: the real Mosquitto, a simulated rig on loopback, a started service, a client.

Every test gets its own MQTT topic prefix so tests never see each other's retained state. Timeouts
are scaled by one factor (``RIGCAPTURE_TIME_FACTOR``) so a slow CI machine does not flake.

The tests come in two layers: unit tests (unmarked) need no broker and no servers, and run alone with
``pytest -m "not integration"``; tests marked ``integration`` need the real Mosquitto on
127.0.0.1:1883 and/or live loopback servers (the simulated rig, the service), and only they stop the
run when the broker is missing. Plain ``pytest`` (what .ci/run runs) runs both.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
import requests
from flask.testing import FlaskClient

from api import create_app
from application import ApiServer
from rigcli import main as rigcli_main
from rigcore.atomic import write_json_atomic
from rigcore.config import Config
from service.capture import CaptureService
from simulator.config import SimConfig
from simulator.rig import SimRig

# Tests marked solo run while the other xdist worker runs nothing (tests/solo.py).
pytest_plugins = ["tests.solo"]

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
    """Start services on the simulated rig (``make_config``'s overrides); stopped at teardown.
    ``config_file``: with a config.json (tmp_path/config.json, written from the config), so that
    PUT /config saves and checks against it."""
    started: list[CaptureService] = []

    def start(
        transport: str = "mqtt", wait_ready: bool = True, config_file: bool = False, **overrides: Any
    ) -> CaptureService:
        config = make_config(transport, **overrides)
        path = tmp_path / "config.json" if config_file else None
        if path is not None:
            path.write_text(config.model_dump_json(), encoding="utf-8")
        service = CaptureService(config, base_dir=tmp_path, config_path=path)
        service.start()
        started.append(service)
        if wait_ready:
            assert service.wait_ready(scaled(10)), "service did not connect to the broker and the stream"
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def start_configured(start_service: Callable[..., CaptureService]) -> Callable[..., CaptureService]:
    """Start services that have a config.json (tmp_path/config.json, written from ``make_config``), so
    that PUT /config saves and checks against it; stopped at teardown."""

    def start(**overrides: Any) -> CaptureService:
        return start_service("mqtt", config_file=True, **overrides)

    return start


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
    moves = [pan_command(pan)] if pan is not None else []
    if tilt is not None:
        moves.append(tilt_command(tilt))
    record = record_command(seconds, *cameras)
    return {"requests": [record, *moves] if record_first else [*moves, record]}


def command(target_id: str, device_id: str, command_id: str, **args: Any) -> dict[str, Any]:
    """One command of a batch (a new dict each call: tests may change it)."""
    return {"target_id": target_id, "device_id": device_id, "command_id": command_id, "args": args}


def pan_command(pan: Any) -> dict[str, Any]:
    return command("entity", "acikgoz_pantilt", "set_pan_position_degree", pan_position_deg_x100=pan)


def tilt_command(tilt: Any) -> dict[str, Any]:
    return command("entity", "acikgoz_pantilt", "set_tilt_position_degree", tilt_position_deg_x100=tilt)


def record_command(seconds: Any, *cameras: str) -> dict[str, Any]:
    """The recording, sent to the first of ``cameras``."""
    return command(
        "camera_device",
        cameras[0],
        "start_recording_command",
        duration_second=seconds,
        camera_ids=list(cameras),
    )


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


Found = TypeVar("Found")


def until(check: Callable[[], Found | None], timeout: float, what: str, poll: float = 0.05) -> Found:
    """Call ``check`` every ``poll`` s until it gives something truthy, and return that; fail naming
    ``what`` (and the last thing ``check`` gave) once ``timeout`` s (scaled) have passed."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}; last: {found!r}"
        time.sleep(poll)


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


class ProcessConfig(NamedTuple):
    """A config.json written for ``service_process``, and the loopback port it tells the API."""

    path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process(self, **options: Any) -> AbstractContextManager[subprocess.Popen[bytes]]:
        """``service_process`` (its keyword ``options``) of this config, run in the config's folder."""
        return service_process(self.path, self.path.parent, self.port, **options)


def process_config(
    path: Path, sim: SimRig, prefix: str, *, mode: int | None = None, **sections: Any
) -> ProcessConfig:
    """Write ``path`` for a service process on the simulated rig ``sim`` (the real broker, topics under
    ``prefix``), its API on a free loopback port; ``sections`` merged over that; ``mode``: the file's
    (default: the umask's)."""
    port = free_port()
    data = {
        "api": {"host": "127.0.0.1", "port": port},
        "mqtt": {"topic_prefix": prefix},
        "invoke_url": sim.http_url,
        "streams": [{"url": sim.ws_url}],
    }
    write_json_atomic(path, deep_merge(data, sections), mode=mode)
    return ProcessConfig(path, port)


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
    wrapper: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """``python application.py --config cfg_path`` as a real process in ``cwd`` (so a test can kill it
    with SIGKILL), answering on ``port``; stopped on the way out if it still runs. ``args``: more
    command-line arguments; ``umask``: the process's (-1: this one's); ``output``: a file that gets its
    stdout and stderr (default: discarded); ``entry``: another application.py (a copy of the repo);
    ``wrapper``: a command that execs the rest of the command line (e.g. ``unshare …``)."""
    sink = output.open("wb") if output is not None else None
    app = [sys.executable, str(entry or ROOT / "application.py"), "--config", str(cfg_path), *args]
    proc = subprocess.Popen(
        [*wrapper, *app],
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


@pytest.fixture
def url(service: CaptureService) -> Iterator[str]:
    """The base URL of ``service`` on the production server (``serve``)."""
    with serve(service) as base:
        yield base


def rigcli(*argv: str) -> tuple[int, str, str]:
    """``rigcli argv...`` in this process: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = rigcli_main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


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
