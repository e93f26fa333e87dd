"""The API's edge: the production server (waitress via api.server.ApiServer) under waiting POSTs and
idle connections, the Host check against DNS rebinding, and the bearer token's details. The same
guarantees under TLS, and against slow readers, are in tests/test_tls.py and tests/test_slow_clients.py.

The live tests run the server the way application.py builds it (tests.conftest.serve uses
ApiServer) on a loopback port. Timings are printed; the bounds asserted are generous on purpose.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from api import bearer_token, create_app, host_allowed, host_name, machine_names
from rigcore.atomic import write_json_atomic
from rigcore.config import SPARE_THREADS, ApiConfig
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import batch, free_port, scaled, serve

ROOT = Path(__file__).resolve().parent.parent
EVIL = "rebound.example"

# -- pure logic (no broker) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:5000", "localhost"),
        ("LocalHost.", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:5000", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("rig.lab.example", "rig.lab.example"),
        ("", ""),
    ],
)
def test_host_name_drops_port_brackets_case_and_trailing_dot(header: str, name: str) -> None:
    assert host_name(header) == name


def test_own_names_pass_and_others_do_not() -> None:
    api = ApiConfig()
    for name in ("localhost", "127.0.0.1", "::1", "192.0.2.7", "fe80::1", *machine_names()):
        assert host_allowed(name, api), name
    assert not host_allowed(EVIL, api)
    assert not host_allowed("", api)
    assert not host_allowed("localhost.rebound.example", api)
    assert host_allowed(EVIL, ApiConfig(allowed_hosts=("Rebound.Example.",)))
    assert host_allowed(EVIL, ApiConfig(allowed_hosts=("*",)))
    assert host_allowed("rig.lab.example", ApiConfig(host="rig.lab.example"))
    assert not host_allowed("0.0.0.0.example", ApiConfig(host="0.0.0.0"))


def test_allowed_hosts_takes_bare_names_only() -> None:
    for bad in ("http://rig.lab.example", "rig.lab.example:5000", "rig/x", ""):
        with pytest.raises(ValidationError, match="bare host name"):
            ApiConfig(allowed_hosts=(bad,))


def test_bearer_scheme_is_case_insensitive() -> None:
    for header in ("Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc "):
        assert bearer_token(header) == "abc", header
    for header in ("Basic abc", "Bearerabc", "", "abc"):
        assert bearer_token(header) == "", header


def test_default_threads_leave_room_beside_every_waiting_post_and_download() -> None:
    api = ApiConfig(queue_size=7, max_downloads=5)
    # The queued jobs and the running one each hold a thread while their POST waits, and so does
    # each streamed download.
    assert api.worker_threads() == 7 + 1 + 5 + SPARE_THREADS
    assert ApiConfig(threads=3).worker_threads() == 3


# -- live server ---------------------------------------------------------------------------------------


@pytest.fixture
def live(service: CaptureService) -> Iterator[str]:
    with serve(service) as url:
        yield url


def timed_get(url: str) -> tuple[float, requests.Response]:
    t0 = time.monotonic()
    resp = requests.get(url, timeout=scaled(30))
    return time.monotonic() - t0, resp


def await_jobs(url: str, count: int, running: int) -> None:
    """Wait until GET /jobs lists ``count`` jobs, ``running`` of them running."""
    deadline = time.monotonic() + scaled(10)
    while True:
        jobs = requests.get(f"{url}/jobs", timeout=scaled(10)).json()["jobs"]
        if len(jobs) >= count and sum(j["status"] == "running" for j in jobs) >= running:
            return
        assert time.monotonic() < deadline, f"expected {count} jobs ({running} running), saw {jobs}"
        time.sleep(0.05)


@pytest.mark.integration
def test_waiting_posts_do_not_starve_other_calls(start_service: Callable[..., CaptureService]) -> None:
    queue_size = 2
    service = start_service("mqtt", api={"queue_size": queue_size})
    waiting = queue_size + 1  # the running job and a full queue, each POST holding a thread
    with serve(service) as url, ThreadPoolExecutor(waiting) as pool:
        posts: list[Future[requests.Response]] = []
        for i in range(waiting):
            post = pool.submit(
                requests.post, f"{url}/process-request", json=batch(seconds=4), timeout=scaled(120)
            )
            posts.append(post)
            # One at a time, the first until it runs: a POST racing the worker for the queue's last
            # place could be refused (503) and hold no thread.
            await_jobs(url, i + 1, running=1)
        healthz_s, healthz = timed_get(f"{url}/healthz")
        jobs_s, jobs = timed_get(f"{url}/jobs")
        status_s, status = timed_get(f"{url}/status")
        print(f"with {waiting} POSTs waiting: /healthz {healthz_s:.3f} s, /jobs {jobs_s:.3f} s, ", end="")
        print(f"/status {status_s:.3f} s")
        assert healthz.status_code == jobs.status_code == status.status_code == 200
        assert max(healthz_s, jobs_s, status_s) < scaled(5)
        # The answers came while every POST was still waiting: their threads were all busy.
        assert not any(p.done() for p in posts)
        # Each waiting POST answers once its job ends: cancelled here, not waited out (3 x 4 s).
        for job in requests.get(f"{url}/jobs", timeout=scaled(10)).json()["jobs"]:
            requests.delete(f"{url}/jobs/{job['job_id']}", timeout=scaled(10))
        assert {p.result().json()["status"] for p in posts} == {"cancelled"}


@contextmanager
def idle_connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections to ``url``: half send nothing, half a partial request line."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with ExitStack() as stack:
        socks = []
        for i in range(count):
            sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=scaled(15)))
            if i % 2:
                sock.sendall(b"GET /healthz HT")
            socks.append(sock)
        yield socks


@pytest.mark.integration
def test_healthz_answers_beside_300_idle_connections(live: str) -> None:
    t0 = time.monotonic()
    with idle_connections(live, 300):
        opened_s = time.monotonic() - t0
        healthz_s, healthz = timed_get(f"{live}/healthz")
        jobs_s, jobs = timed_get(f"{live}/jobs")
        print(f"300 idle connections opened in {opened_s:.2f} s; ", end="")
        print(f"then /healthz answered in {healthz_s:.3f} s, /jobs in {jobs_s:.3f} s")
        assert healthz.status_code == 200 and jobs.status_code == 200
        assert max(healthz_s, jobs_s) < scaled(5)


@pytest.mark.integration
def test_channel_timeout_closes_idle_connections_but_not_a_waiting_post(
    start_service: Callable[..., CaptureService],
) -> None:
    service = start_service("mqtt", api={"channel_timeout_s": 1})
    with serve(service) as url, idle_connections(url, 2) as idle:
        t0 = time.monotonic()
        # recv returns b"" once the server closes; the sockets' timeout fails the test otherwise.
        assert [sock.recv(1024) for sock in idle] == [b"", b""]
        closed_s = time.monotonic() - t0
        # A job longer than the timeout: its connection runs a request, so it is not idle.
        post = requests.post(f"{url}/process-request", json=batch(seconds=3), timeout=scaled(120))
        post_s = time.monotonic() - t0 - closed_s
        print(f"idle connections closed after {closed_s:.2f} s; a waiting POST answered after {post_s:.2f} s")
        assert closed_s < scaled(10)
        assert post.status_code == 200 and post.json()["status"] == "succeeded"


@pytest.mark.integration
def test_unknown_host_gets_421_and_nothing_is_recorded_or_run(
    sim: SimRig, service: CaptureService, live: str
) -> None:
    bad = {"Host": f"{EVIL}:5000"}
    status = requests.get(f"{live}/status", headers=bad, timeout=scaled(10))
    assert status.status_code == 421
    body = status.json()
    assert body["host"] == EVIL and EVIL in body["error"] and "api.allowed_hosts" in body["error"]
    post = requests.post(f"{live}/process-request", json=batch(seconds=1), headers=bad, timeout=scaled(10))
    assert post.status_code == 421 and "api.allowed_hosts" in post.json()["error"]
    time.sleep(scaled(0.5))
    assert service.history.entries() == [] and service.job_views() == []
    assert sim.commands_received() == []
    # Liveness answers whatever the Host; the service's own names pass.
    assert requests.get(f"{live}/healthz", headers=bad, timeout=scaled(10)).status_code == 200
    port = live.rsplit(":", 1)[1]
    for own in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", socket.gethostname()):
        assert requests.get(f"{live}/status", headers={"Host": own}, timeout=scaled(10)).ok, own


@pytest.mark.integration
def test_allowed_hosts_entry_is_accepted(start_service: Callable[..., CaptureService]) -> None:
    service = start_service("mqtt", api={"allowed_hosts": [EVIL]})
    client = create_app(service).test_client()
    assert client.get("/status", headers={"Host": EVIL}).status_code == 200
    assert client.get("/status", headers={"Host": "other.example"}).status_code == 421


@pytest.mark.integration
def test_token_401_says_how_and_any_bearer_case_works(start_service: Callable[..., CaptureService]) -> None:
    service = start_service("mqtt", api={"token": "s3cret"})
    with serve(service) as url:
        missing = requests.get(f"{url}/status", timeout=scaled(10))
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="rigcapture"'
        message = missing.json()["error"]
        assert "Authorization: Bearer <token>" in message and "api.token" in message
        for scheme in ("Bearer", "bearer", "BEARER"):
            resp = requests.get(f"{url}/status", headers={"Authorization": f"{scheme} s3cret"}, timeout=10)
            assert resp.status_code == 200, scheme
        wrong = requests.get(f"{url}/status", headers={"Authorization": "bearer s3creT"}, timeout=10)
        assert wrong.status_code == 401
        # The dashboard's page holds no data: it loads without the token and asks for it.
        assert requests.get(f"{url}/", timeout=scaled(10)).status_code == 200


@pytest.mark.integration
def test_application_says_plainly_when_it_cannot_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "config.json"
        write_json_atomic(
            cfg,
            {
                "api": {"host": "127.0.0.1", "port": port},
                "mqtt": {"port": free_port()},
                "streams": [{"url": f"ws://127.0.0.1:{free_port()}"}],
            },
        )
        result = subprocess.run(
            [sys.executable, str(ROOT / "application.py"), "--config", str(cfg)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
