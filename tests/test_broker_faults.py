"""Broker outages: the service starts without a broker, refuses batches fast, and reconnects by itself.

These tests run their own real Mosquitto on a free loopback port so they can stop and restart it
without disturbing the shared broker on 1883.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from rigcore.config import Config
from service.capture import CaptureService
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import PrivateBroker, batch, deep_merge, free_port, scaled, wait_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto binary not installed"),
]


def service_for(
    broker: PrivateBroker, sim_cfg: SimConfig, tmp_path: Path, prefix: str, **extra: Any
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


def test_broker_down_at_start_then_up(private_broker: PrivateBroker, tmp_path: Path, prefix: str) -> None:
    sim_cfg = SimConfig(
        mqtt_port=private_broker.port, topic_prefix=prefix, http_port=free_port(), ws_port=free_port()
    )
    service = service_for(private_broker, sim_cfg, tmp_path, prefix)
    rig: SimRig | None = None
    try:
        client = create_app(service).test_client()
        health = client.get("/healthz").get_json()
        assert health["broker_connected"] is False and health["status"] == "degraded"
        status = client.get("/status").get_json()
        assert status["broker"]["connected"] is False and status["broker"]["port"] == private_broker.port
        t0 = time.monotonic()
        resp = client.post("/process-request", json=batch(0, 0, seconds=1.0))
        assert resp.status_code == 503 and time.monotonic() - t0 < 2.0
        err = resp.get_json()
        assert f"127.0.0.1:{private_broker.port}" in err["error"] and "not connected" in err["error"]
        assert service.history.entries()[-1]["status"] == "rejected"

        private_broker.start()
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


def test_broker_restart_during_settling_resumes_the_wait(
    private_broker: PrivateBroker, tmp_path: Path, prefix: str
) -> None:
    private_broker.start()
    sim_cfg = SimConfig(
        mqtt_port=private_broker.port,
        topic_prefix=prefix,
        http_port=free_port(),
        ws_port=free_port(),
        pan_speed_deg_s=30.0,
    )
    rig = SimRig(sim_cfg)
    rig.start()
    service = service_for(private_broker, sim_cfg, tmp_path, prefix)
    try:
        assert service.wait_ready(scaled(10))
        client = create_app(service).test_client()
        job = client.post("/process-request?wait=false", json=batch(9000, 0, seconds=1.0)).get_json()
        wait_job(client, job["job_id"], 10, phase="settling")
        private_broker.stop()
        time.sleep(1.0)
        private_broker.start()
        result = wait_job(client, job["job_id"], 45)
        assert result["status"] == "succeeded", result
        assert service.link.status()["connects"] >= 2
        frames = result["session"]["cameras"]["cameradevice_swir_1"]["frame_count"]
        assert frames > 0
    finally:
        service.stop()
        rig.stop()
