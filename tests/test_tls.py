"""Transport security (issue 21, item 9): HTTPS on api.port with no plain HTTP, the real client address
under TLS, the slow-client and half-open guarantees under TLS, MQTT over TLS against a real Mosquitto,
wss:// streams from the simulated rig, rigcli --cacert, and the keys' policy (file-only, checked at
start, a warning for a token sent in clear).

Certificates come from trustme: a throwaway CA, one server certificate for 127.0.0.1 and localhost
(the service, Mosquitto, the simulator's stream) and one client certificate (Mosquitto's
require_certificate).
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from api import create_app
from application import warn_risky_settings
from rigcli.cli import main as rigcli
from rigcore.atomic import write_json_atomic
from rigcore.config import ApiConfig, Config, ConfigError
from rigcore.config_policy import ConfigRefused, Place, plan_change
from service.capture import CaptureService
from simulator.__main__ import _parser as sim_parser
from simulator.__main__ import config_from_args
from simulator.rig import SimRig
from tests.conftest import PrivateBroker, batch, free_port, scaled, serve
from tests.test_slow_clients import (
    big_session,
    check_refusals,
    open_stalled,
    read_until_closed,
    sources,
    stalled_downloads,
    timed_calls,
)

ROOT = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="clients from 127.0.0.x need Linux")


@dataclass(frozen=True)
class Certs:
    ca: str  # the CA's certificate (what clients trust)
    cert: str  # server certificate for 127.0.0.1 and localhost
    key: str
    client_cert: str
    client_key: str

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("rigcapture-client")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    server.private_key_pem.write_to_path(str(folder / "key.pem"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client-key.pem"))
    names = ("ca.pem", "cert.pem", "key.pem", "client.pem", "client-key.pem")
    return Certs(*(str(folder / n) for n in names))


def tls_api(certs: Certs, **more: Any) -> dict[str, Any]:
    return {"api": {"tls_cert": certs.cert, "tls_key": certs.key, **more}}


# -- the keys' rules (no broker) --------------------------------------------------------------------------


def test_tls_keys_come_in_pairs_and_change_only_in_config_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tls_key is missing"):
        ApiConfig(tls_cert="cert.pem")
    with pytest.raises(ConfigError, match=r"mqtt\.tls: .*cert_file is missing"):
        Config.from_dict({"mqtt": {"tls": {"ca_file": "ca.pem", "key_file": "k.pem"}}})
    config = Config.from_dict({"api": {"token": "t"}})
    config_file = tmp_path / "config.json"
    write_json_atomic(config_file, config.to_json())
    place = Place(config_file, tmp_path, config.resolve(tmp_path))
    for patch, key in (
        ({"api": {"tls_cert": "c.pem", "tls_key": "k.pem"}}, "api.tls_cert"),
        ({"mqtt": {"tls": {"ca_file": "ca.pem"}}}, "mqtt.tls"),
        ({"stream_client": {"ca_file": "ca.pem"}}, "stream_client.ca_file"),
    ):
        with pytest.raises(ConfigRefused) as info:
            plan_change(config, patch, place)
        assert info.value.status == 403 and key in {d["field"] for d in info.value.details}
    for key in ("max_downloads", "max_downloads_per_client", "download_send_timeout_s"):
        with pytest.raises(ConfigRefused) as info:
            plan_change(config, {"api": {key: 10**6}}, place)
        assert info.value.status == 400 and info.value.details[0]["field"] == f"api.{key}"


def test_a_token_sent_in_clear_across_the_network_warns(caplog: pytest.LogCaptureFixture) -> None:
    def warnings(**api: Any) -> str:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            warn_risky_settings(ApiConfig(**api))
        return caplog.text

    assert "without TLS" in warnings(host="0.0.0.0", token="t")
    assert "without TLS" not in warnings(host="127.0.0.1", token="t")
    assert "without TLS" not in warnings(host="0.0.0.0", token="t", tls_cert="c.pem", tls_key="k.pem")
    assert "api.max_downloads" in warnings(threads=10, queue_size=2, max_downloads=8)


def test_the_simulators_stream_takes_a_certificate_and_its_key_together() -> None:
    args = sim_parser().parse_args(["--tls-cert", "rig.crt", "--tls-key", "rig.key"])
    cfg = config_from_args(args)
    assert (cfg.ws_tls_cert, cfg.ws_tls_key) == ("rig.crt", "rig.key")
    with pytest.raises(ValueError, match="together"):
        config_from_args(sim_parser().parse_args(["--tls-cert", "rig.crt"]))


# -- HTTPS --------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_https_only_and_the_history_keeps_the_real_client_address(
    start_service: Callable[..., CaptureService], certs: Certs
) -> None:
    service = start_service("mqtt", **tls_api(certs))
    with serve(service) as url:
        assert url.startswith("https://")
        health = requests.get(f"{url}/healthz", timeout=scaled(10), verify=certs.ca)
        assert health.status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.get(url.replace("https://", "http://") + "/healthz", timeout=scaled(10))
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/healthz", timeout=scaled(10), verify=True)  # not a CA the system knows
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, context=certs.client_context(), source_address=("127.0.0.9", 0), timeout=10
        )
        if sys.platform != "linux":
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=certs.client_context(), timeout=10)
        body = json.dumps({"requests": []})
        conn.request("POST", "/process-request", body, {"Content-Type": "application/json"})
        assert conn.getresponse().status == 400
        conn.close()
    entry = service.history.entries()[-1]
    assert entry["client"]["address"] == ("127.0.0.9" if sys.platform == "linux" else "127.0.0.1")


@contextmanager
def silent_connections(url: str, count: int, tls: ssl.SSLContext | None) -> Iterator[list[socket.socket]]:
    """``count`` connections: half never start the handshake; half (when ``tls``) complete it and
    then send half a request line and nothing more."""
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    with ExitStack() as stack:
        socks = []
        for i in range(count):
            sock = socket.create_connection((host, port), timeout=scaled(15))
            if tls is not None and i % 2:
                sock = tls.wrap_socket(sock, server_hostname=host)
                sock.sendall(b"GET /healthz HT")
            stack.callback(sock.close)
            socks.append(sock)
        yield socks


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


@pytest.mark.integration
def test_half_open_tls_connections_cost_no_thread_and_are_closed_but_a_waiting_post_is_not(
    start_service: Callable[..., CaptureService], certs: Certs
) -> None:
    service = start_service("mqtt", **tls_api(certs, channel_timeout_s=2))
    with serve(service) as url, silent_connections(url, 300, certs.client_context()) as socks:
        times = timed_calls(url, verify=certs.ca)
        print("300 silent TLS connections: " + ", ".join(f"{p} {s:.3f} s" for p, s in times.items()))
        assert max(times.values()) < scaled(3)
        t0 = time.monotonic()
        closed = [closed_by_server(s, scaled(15)) for s in socks[:20]]
        print(f"closed by the server after {time.monotonic() - t0:.2f} s (channel_timeout_s 2)")
        assert all(closed), closed  # both the never-shaken and the shaken-but-silent ones
        # A request running longer than the channel timeout is not cut.
        post = requests.post(
            f"{url}/process-request", json=batch(seconds=3), timeout=scaled(120), verify=certs.ca
        )
        assert post.status_code == 200 and post.json()["status"] == "succeeded"


@linux_only
@pytest.mark.integration
def test_tls_api_answers_beside_40_stalled_tls_downloads(
    start_service: Callable[..., CaptureService], certs: Certs
) -> None:
    service = start_service("mqtt", **tls_api(certs))
    sid = big_session(service)
    tls = certs.client_context()
    with (
        serve(service) as url,
        stalled_downloads(url, f"/sessions/{sid}.zip", sources(40, 20), tls) as clients,
    ):
        time.sleep(scaled(1))
        times = timed_calls(url, verify=certs.ca)
        statuses = [c.status for c in clients]
        print(f"40 stalled TLS zip downloads: {statuses.count(200)} streaming; then ", end="")
        print(", ".join(f"{p} {s:.3f} s" for p, s in times.items()))
        assert statuses.count(200) == ApiConfig().max_downloads
        check_refusals(clients)
        assert max(times.values()) < scaled(3)


@pytest.mark.integration
def test_a_stalled_tls_download_is_cut_off_and_its_slot_freed(
    start_service: Callable[..., CaptureService], certs: Certs
) -> None:
    service = start_service("mqtt", **tls_api(certs, download_send_timeout_s=1, max_downloads_per_client=1))
    sid = big_session(service)
    tls = certs.client_context()
    with serve(service) as url:
        client = open_stalled(url, f"/sessions/{sid}.zip", tls=tls)
        assert client.status == 200
        with client.sock:
            time.sleep(scaled(4))
            got = read_until_closed(client.sock, scaled(20))
            print(f"{got} bytes left after the cut")
        again = open_stalled(url, f"/sessions/{sid}.zip", tls=tls)
        again.sock.close()
        assert again.status == 200


@pytest.mark.integration
def test_application_serves_https_with_paths_beside_config_json(
    sim: SimRig, prefix: str, tmp_path: Path, certs: Certs
) -> None:
    (tmp_path / "tls").mkdir()
    shutil.copy(certs.cert, tmp_path / "tls" / "cert.pem")
    shutil.copy(certs.key, tmp_path / "tls" / "key.pem")
    port = free_port()
    data: dict[str, Any] = {
        "api": {"host": "127.0.0.1", "port": port, "tls_cert": "tls/cert.pem", "tls_key": "tls/key.pem"},
        "mqtt": {"topic_prefix": prefix},
        "invoke_url": sim.http_url,
        "streams": [{"url": sim.ws_url}],
    }
    write_json_atomic(tmp_path / "config.json", data)
    cmd = [sys.executable, str(ROOT / "application.py"), "--config", str(tmp_path / "config.json")]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            deadline = time.monotonic() + scaled(30)
            while True:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                try:
                    resp = requests.get(f"https://127.0.0.1:{port}/healthz", timeout=2, verify=certs.ca)
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, "no HTTPS answer"
                    time.sleep(0.2)
            assert resp.status_code == 200
        finally:
            proc.terminate()
            proc.wait(15)
    # A missing file stops the start, naming the key.
    data["api"]["tls_key"] = "tls/missing.pem"
    write_json_atomic(tmp_path / "config.json", data)
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 2 and "api.tls_key: no such file" in result.stderr


# -- rigcli --cacert ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_rigcli_trusts_the_service_with_cacert_or_its_env_var(
    start_service: Callable[..., CaptureService],
    certs: Certs,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service = start_service("mqtt", **tls_api(certs))
    sid = big_session(service)
    (service.paths.save_dir / sid / "big.bin").unlink()
    (service.paths.save_dir / sid / "note.txt").write_text("hello")
    with serve(service) as url:
        out, err = io.StringIO(), io.StringIO()
        assert rigcli(["--url", url, "status"], out, err) == 3
        assert "--cacert" in err.getvalue() and "RIGCAPTURE_CACERT" in err.getvalue()
        assert rigcli(["--url", url, "--cacert", certs.ca, "--json", "status"], io.StringIO(), err) == 0
        monkeypatch.setenv("RIGCAPTURE_CACERT", certs.ca)
        target = tmp_path / "s.zip"
        code = rigcli(["--url", url, "export", sid, "--format", "zip", "-o", str(target)], io.StringIO(), err)
        assert code == 0, err.getvalue()
        assert target.stat().st_size > 0


# -- MQTT over TLS ------------------------------------------------------------------------------------------


@pytest.fixture
def readable_certs(certs: Certs) -> Iterator[Certs]:
    """The certificates where Mosquitto can read them: started as root it drops to its own user
    before it loads them, and pytest's temporary folders are private to the user running the tests."""
    with tempfile.TemporaryDirectory(prefix="rigcapture-tls-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        copies = []
        for path in (certs.ca, certs.cert, certs.key, certs.client_cert, certs.client_key):
            copy = folder / Path(path).name
            shutil.copy(path, copy)
            copy.chmod(0o644)  # throwaway test keys
            copies.append(str(copy))
        yield Certs(*copies)


def tls_broker(broker: PrivateBroker, certs: Certs, client_certificate: bool) -> int:
    """Mosquitto with its plain listener (the simulated rig speaks plain MQTT) and a TLS one; the TLS
    port."""
    port = free_port()
    lines = [
        f"listener {broker.port} 127.0.0.1",
        f"listener {port} 127.0.0.1",
        f"cafile {certs.ca}",
        f"certfile {certs.cert}",
        f"keyfile {certs.key}",
        f"require_certificate {'true' if client_certificate else 'false'}",
        "allow_anonymous true",
        "persistence false",
    ]
    broker.conf.write_text("\n".join(lines) + "\n")
    return port


def service_on(rig: SimRig, prefix: str, folder: Path, **more: Any) -> CaptureService:
    data: dict[str, Any] = {
        "api": {"host": "127.0.0.1", "port": 0},
        "mqtt": {"topic_prefix": prefix, "response_timeout_s": scaled(1.0)},
        "invoke_url": rig.http_url,
        "streams": [{"url": rig.ws_url}],
        "save_dir": str(folder / "save_images"),
        "images_data_dir": str(folder / "images_data"),
        "history_file": str(folder / "history.json"),
    }
    for key, value in more.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    service = CaptureService(Config.from_dict(data), base_dir=folder)
    service.start()
    return service


@pytest.mark.integration
def test_mqtt_over_tls_with_and_without_a_client_certificate(
    private_broker: PrivateBroker, make_rig: Callable[..., SimRig], readable_certs: Certs, tmp_path: Path
) -> None:
    certs = readable_certs
    for client_certificate in (False, True):
        tls_port = tls_broker(private_broker, certs, client_certificate)
        private_broker.start()
        rig = make_rig(mqtt_port=private_broker.port)
        prefix = rig.cfg.topic_prefix
        tls: dict[str, Any] = {"ca_file": certs.ca}
        if client_certificate:
            tls |= {"cert_file": certs.client_cert, "key_file": certs.client_key}
        folder = tmp_path / f"client-cert-{client_certificate}"
        service = service_on(rig, prefix, folder, mqtt={"port": tls_port, "tls": tls})
        try:
            assert service.wait_ready(scaled(15)), service.link.status()
            resp = create_app(service).test_client().post("/process-request", json=batch(seconds=0.5))
            assert resp.status_code == 200 and resp.get_json()["status"] == "succeeded", resp.get_json()
            assert any(
                c["command"]["command_id"] == "set_pan_position_degree" for c in rig.commands_received()
            )
        finally:
            service.stop()
        if client_certificate:  # the broker refuses a client without one
            bare = service_on(
                rig, prefix, tmp_path / "bare", mqtt={"port": tls_port, "tls": {"ca_file": certs.ca}}
            )
            try:
                assert not bare.link.wait_connected(scaled(3))
            finally:
                bare.stop()
        private_broker.stop()


# -- wss:// streams -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_wss_stream_is_trusted_through_stream_client_ca_file(
    make_rig: Callable[..., SimRig], certs: Certs, tmp_path: Path
) -> None:
    rig = make_rig(ws_tls_cert=certs.cert, ws_tls_key=certs.key)
    assert rig.ws_url.startswith("wss://")
    prefix = rig.cfg.topic_prefix
    service = service_on(rig, prefix, tmp_path / "trusted", stream_client={"ca_file": certs.ca})
    try:
        assert service.wait_ready(scaled(15)), service.status()["streams"]
        resp = create_app(service).test_client().post("/process-request", json=batch(seconds=0.5))
        job = resp.get_json()
        assert resp.status_code == 200 and job["status"] == "succeeded", job
    finally:
        service.stop()
    untrusted = service_on(rig, prefix, tmp_path / "untrusted")
    try:
        assert not untrusted.wait_ready(scaled(3))
        error = untrusted.status()["streams"][0]["last_error"] or ""
        assert "CERTIFICATE_VERIFY_FAILED" in error, error
    finally:
        untrusted.stop()
