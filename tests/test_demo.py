"""The README's first command: ``application.py --simulate`` on a machine with no broker.

Runs the real entry point as a process with a config whose MQTT port has no broker, so the
embedded broker must start; the README's example batch must then save a session; Ctrl-C
(SIGINT) must shut everything down cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from application import EXAMPLE_BATCH
from rigcore.atomic import write_json_atomic
from tests.conftest import free_port, wait_healthy

# The real entry point with its embedded broker and the simulated rig on loopback ports.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_simulate_starts_rig_and_embedded_broker_and_captures(tmp_path: Path) -> None:
    api, mqtt, http, ws = free_port(), free_port(), free_port(), free_port()
    cfg = tmp_path / "config.json"
    write_json_atomic(
        cfg,
        {
            "api": {"host": "127.0.0.1", "port": api},
            "mqtt": {"port": mqtt},
            "invoke_url": f"http://127.0.0.1:{http}/api/1.0/invoke",
            "streams": [{"url": f"ws://127.0.0.1:{ws}"}],
        },
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "application.py"), "--simulate", "--config", str(cfg)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{api}"
    try:
        wait_healthy(url, proc, 30)
        batch = json.loads(json.dumps(EXAMPLE_BATCH))
        batch["requests"][-1]["args"]["duration_second"] = 1
        body = requests.post(f"{url}/process-request", json=batch, timeout=120).json()
        assert body["status"] == "succeeded", body
        session = Path(body["session"]["path"])
        assert session.parent == tmp_path / "save_images"
        manifest = json.loads((session / "session.json").read_text())
        assert all(
            manifest["cameras"][c]["frame_count"] > 0 for c in batch["requests"][-1]["args"]["camera_ids"]
        )
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "starting the embedded one" in out
    assert f"listening on {url}" in out and "curl -X POST" in out
