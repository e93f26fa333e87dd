"""kill -9 while a session is being recorded and saved: nothing already written is lost.

The service runs as a real process (python application.py) so it can really be killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
import requests

from rigcore.config import Config
from service.capture import CaptureService
from service.history.store import HistoryStore
from sessions.recovery import FRAME_SUFFIXES
from simulator.rig import SimRig
from tests.conftest import batch, process_config, until

ROOT = Path(__file__).resolve().parent.parent


def frame_files(paths: Iterable[Path]) -> list[Path]:
    """The frame files among ``paths``, whatever the camera's image_format (.tif for "fast", .png …)."""
    return [p for p in paths if p.suffix.lower() in FRAME_SUFFIXES]


@pytest.mark.integration
def test_kill_9_mid_session_is_recovered_as_incomplete(sim: SimRig, prefix: str, tmp_path: Path) -> None:
    cfg = process_config(tmp_path / "config.json", sim, prefix)
    url = cfg.url
    save_dir = tmp_path / "save_images"
    with cfg.process() as proc:
        job = requests.post(
            f"{url}/process-request?wait=false", json=batch(0, 0, seconds=20), timeout=5
        ).json()
        until(lambda: frame_files(save_dir.glob("*/cameradevice_lwir_1/*"))[5:], 20, "six frames written")
        assert requests.get(f"{url}/jobs/{job['job_id']}", timeout=5).json()["phase"] == "recording"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    # What the killed process left: history.json is whole (atomic writes), the session unfinished.
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["requests"][-1]["status"] == "running"
    (session,) = [p for p in save_dir.iterdir() if p.is_dir()]
    assert not (session / "session.json").exists()
    on_disk = sorted(p.name for p in frame_files((session / "cameradevice_lwir_1").iterdir()))

    service = CaptureService(Config.load(cfg.path), base_dir=tmp_path)
    service.start()
    try:
        manifest = json.loads((session / "session.json").read_text())
        assert manifest["status"] == "incomplete" and manifest["job_id"] == job["job_id"]
        listed = [f["file"] for f in manifest["cameras"]["cameradevice_lwir_1"]["frames"]]
        assert len(listed) >= len(on_disk) - 1  # the frame being written at the kill may be torn
        assert all((session / f).is_file() for f in listed)
        entry = service.history.get(job["job_id"])
        assert entry is not None and entry["status"] == "interrupted"
        assert entry["sessions"][-1]["status"] == "incomplete"
        assert entry["sessions"][-1]["session_id"] == session.name
    finally:
        service.stop()


def test_damaged_history_is_moved_aside_not_reset(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text('{"requests": [{"id": "a"')  # torn by someone else's editor, say
    store = HistoryStore(path)
    assert store.warning is not None and "damaged" in store.warning
    aside = list(tmp_path.glob("history.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == '{"requests": [{"id": "a"'
    assert json.loads(path.read_text()) == {"requests": []}
    store.add({"id": "b"})
    assert json.loads(path.read_text())["requests"] == [{"id": "b"}]


def start_app(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "application.py"), "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_damaged_config_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text('{"api": {"port": 5000,}')
    result = start_app(cfg)
    assert result.returncode == 2
    assert "config.json" in result.stderr and "not valid JSON" in result.stderr
    assert cfg.read_text() == '{"api": {"port": 5000,}', "the operator's file is never rewritten"
    cfg.write_text('{"api": {"prot": 5000}}')
    result = start_app(cfg)
    assert result.returncode == 2 and "api.prot: unknown key" in result.stderr
