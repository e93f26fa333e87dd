"""A clean demo: a fresh copy of the repository, the README's run command (``application.py
--simulate``), one capture, one scan, one export — and ``git status`` stays empty. Runtime state
(history, presets, schedules, ``images_data/``, ``save_images/``) is git-ignored and created on the
first run, where the README says it lives (beside config.json).

The copy is of what the next commit of this working tree would hold (``git ls-files --cached
--others --exclude-standard``: the index, and new files not ignored; changes not yet committed are
in it), committed into a new repository in a temporary folder. Its config.json is
given free loopback ports and a topic prefix of its own, and that change is committed too, so the
service runs exactly as the README runs it: no ``--config``, the config.json beside application.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from application import EXAMPLE_BATCH
from tests.conftest import ROOT, free_port, service_process

pytestmark = pytest.mark.integration

GIT = shutil.which("git")


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def fresh_clone(target: Path) -> Path:
    """This working tree's files as git would commit them, committed into a new repository at
    ``target``."""
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree but still in the index is left out
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "fresh clone")
    return target


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_the_demo_leaves_a_fresh_clone_clean(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "rigcapture")
    assert not (clone / "history.json").exists(), "history.json is runtime state, not a tracked file"

    # Free ports and a topic of its own, committed: the clone's own config.json, unchanged after.
    api, http, ws = free_port(), free_port(), free_port()
    config = json.loads((clone / "config.json").read_text())
    config["api"]["port"] = api
    config["mqtt"]["topic_prefix"] = f"demo_{uuid.uuid4().hex[:8]}"
    config["invoke_url"] = f"http://127.0.0.1:{http}/api/1.0/invoke"
    config["streams"][0]["url"] = f"ws://127.0.0.1:{ws}"
    (clone / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    git(clone, "commit", "-q", "-am", "ports of this test")

    url = f"http://127.0.0.1:{api}"
    exports = tmp_path / "exports"  # outside the clone
    exports.mkdir()
    log = tmp_path / "service.log"
    with service_process(
        clone / "config.json", clone, api, args=("--simulate",), output=log, entry=clone / "application.py"
    ):
        capture = demo_capture(url)
        scan = requests.post(
            f"{url}/scans?wait=true",
            json={
                "cameras": ["cameradevice_lwir_1"],
                "duration_second": 1,
                "poses": [
                    {"pan_deg_x100": 0, "tilt_deg_x100": 0},
                    {"pan_deg_x100": 1000, "tilt_deg_x100": 0},
                ],
            },
            timeout=120,
        ).json()
        assert scan["status"] == "succeeded", scan
        session_id = capture["session"]["session_id"]
        with requests.get(f"{url}/sessions/{session_id}.zip", stream=True, timeout=60) as zipped:
            assert zipped.status_code == 200
            with (exports / f"{session_id}.zip").open("wb") as fh:
                for chunk in zipped.iter_content(1 << 16):
                    fh.write(chunk)
        with requests.get(f"{url}/sessions/{session_id}.mcap", stream=True, timeout=60) as mcap:
            assert mcap.status_code == 200
            (exports / f"{session_id}.mcap").write_bytes(mcap.content)

    # The runtime state is where the README says, and git sees none of it.
    assert (clone / "history.json").is_file()
    assert (clone / "save_images" / session_id / "session.json").is_file()
    assert (clone / "images_data" / f"{session_id}.json").is_file()
    assert (exports / f"{session_id}.zip").stat().st_size > 0
    status = git(clone, "status", "--porcelain", "--untracked-files=all")
    assert status == "", f"the demo left the clone dirty:\n{status}\n(service log: {log.read_text()[-2000:]})"


def demo_capture(url: str) -> dict[str, Any]:
    """The README's example batch (application.EXAMPLE_BATCH, which the banner prints), 1 s long."""
    body = json.loads(json.dumps(EXAMPLE_BATCH))
    body["requests"][-1]["args"]["duration_second"] = 1
    answer: dict[str, Any] = requests.post(f"{url}/process-request", json=body, timeout=120).json()
    assert answer["status"] == "succeeded", answer
    return answer
