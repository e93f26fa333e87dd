"""Broker outages: the service starts without a broker, refuses batches fast, and reconnects by itself.

These tests run their own real Mosquitto on a free loopback port so they can stop and restart it
without disturbing the shared broker on 1883.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from rigcore.config import Config
from service.capture import CaptureService
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import batch, deep_merge, free_port, scaled, wait_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto binary not installed"),
]


class Broker:
    """A private Mosquitto process on loopback."""

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
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b
    b.stop()


def service_for(
    broker: Broker, sim_cfg: SimConfig, tmp_path: Path, prefix: str, **extra: Any
) -> CaptureService:
    data = {
        "api": {"host": "127.0.0.1", "port": 0},
        "mqtt": {"port": broker.port, "topic_prefix": prefix, "reconnect_min_s": 1, "reconnect_max_s": 1},
        "invoke_url": f"http://127.0.0.1:{sim_cfg.http_port}/api/1.0/invoke",
        "streams": [{"url": f"ws://127.0.0.1:{sim_cfg.ws_port}"}],
        "stream_client": {"reconnect_max_s": 0.5},
        "save_dir": str(tmp_path / "save_images"),
        "images_data_dir": str(tmp_path / "images_data"),
        "history_file": str(tmp_path / "history.json"),
        "settle": {"timeout_s": scaled(30)},
    }
    service = CaptureService(Config.from_dict(deep_merge(data, extra)), base_dir=tmp_path)
    service.start()
    return service


def test_broker_down_at_start_then_up(broker: Broker, tmp_path: Path, prefix: str) -> None:
    sim_cfg = SimConfig(
        mqtt_port=broker.port, topic_prefix=prefix, http_port=free_port(), ws_port=free_port()
    )
    service = service_for(broker, sim_cfg, tmp_path, prefix)
    rig: SimRig | None = None
    try:
        client = create_app(service).test_client()
        health = client.get("/healthz").get_json()
        assert health["broker_connected"] is False and health["status"] == "degraded"
        status = client.get("/status").get_json()
        assert status["broker"]["connected"] is False and status["broker"]["port"] == broker.port
        t0 = time.monotonic()
        resp = client.post("/process-request", json=batch(0, 0, seconds=1.0))
        assert resp.status_code == 503 and time.monotonic() - t0 < 2.0
        err = resp.get_json()
        assert f"127.0.0.1:{broker.port}" in err["error"] and "not connected" in err["error"]
        assert service.history.entries()[-1]["status"] == "rejected"

        broker.start()
        rig = SimRig(sim_cfg)
        rig.start()
        assert service.wait_ready(scaled(15)), "service did not reconnect by itself"
        body = client.post("/process-request", json=batch(1000, 0, seconds=1.0)).get_json()
        assert body["status"] == "succeeded", body
        assert client.get("/healthz").get_json()["broker_connected"] is True
    finally:
        service.stop()
        if rig is not None:
            rig.stop()


def test_broker_restart_during_settling_resumes_the_wait(broker: Broker, tmp_path: Path, prefix: str) -> None:
    broker.start()
    sim_cfg = SimConfig(
        mqtt_port=broker.port,
        topic_prefix=prefix,
        http_port=free_port(),
        ws_port=free_port(),
        pan_speed_deg_s=30.0,
    )
    rig = SimRig(sim_cfg)
    rig.start()
    service = service_for(broker, sim_cfg, tmp_path, prefix)
    try:
        assert service.wait_ready(scaled(10))
        client = create_app(service).test_client()
        job = client.post("/process-request?wait=false", json=batch(9000, 0, seconds=1.0)).get_json()
        wait_job(client, job["job_id"], 10, phase="settling")
        broker.stop()
        time.sleep(1.0)
        broker.start()
        result = wait_job(client, job["job_id"], 45)
        assert result["status"] == "succeeded", result
        assert service.link.status()["connects"] >= 2
        frames = result["session"]["cameras"]["cameradevice_swir_1"]["frame_count"]
        assert frames > 0
    finally:
        service.stop()
        rig.stop()
