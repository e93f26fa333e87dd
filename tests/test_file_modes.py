"""Every file the service writes follows the process umask (a temp file's 0600 never leaks into
session.json, report.html, history.json …), and a config.json holding a secret is written 0600
(rigcore.atomic, service.config_reloader; docs/configuration.md, "File modes")."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import requests

from rigcore.atomic import PRIVATE, default_file_mode, process_umask, write_json_atomic
from simulator.rig import SimRig
from tests.conftest import batch, process_config, until

UMASK = 0o027  # group may read, others nothing: frames and manifests alike
TOKEN = "file-modes-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- unit ------------------------------------------------------------------------------------------
def test_an_atomic_write_gets_the_umask_mode_or_the_one_asked_for(tmp_path: Path) -> None:
    assert default_file_mode() == 0o666 & ~process_umask()
    plain, private = tmp_path / "plain.json", tmp_path / "private.json"
    write_json_atomic(plain, {"a": 1})
    write_json_atomic(private, {"token": "x"}, mode=PRIVATE)
    assert mode(plain) == default_file_mode()  # not the temp file's 0600
    assert mode(private) == 0o600
    write_json_atomic(private, {"token": "y"})  # rewritten without a mode: the umask's again
    assert mode(private) == default_file_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.json", "private.json"]  # no temp left


# -- the service as a process with its own umask ----------------------------------------------------
@pytest.mark.integration
def test_every_file_the_service_writes_follows_the_umask(sim: SimRig, prefix: str, tmp_path: Path) -> None:
    cfg = process_config(tmp_path / "config.json", sim, prefix, mode=0o644)
    url = cfg.url
    with cfg.process(umask=UMASK):
        capture = requests.post(f"{url}/process-request", json=batch(seconds=1), timeout=120).json()
        assert capture["status"] == "succeeded", capture
        scan: dict[str, Any] = {
            "cameras": ["cameradevice_lwir_1"],
            "duration_second": 1,
            "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}],
        }
        done = requests.post(f"{url}/scans?wait=true", json=scan, timeout=120).json()
        assert done["status"] == "succeeded", done
        assert (
            requests.put(
                f"{url}/presets/gate", json={"pan_deg_x100": 100, "tilt_deg_x100": 0}, timeout=10
            ).status_code
            == 201
        )
        made = requests.post(f"{url}/schedules", json={"scan": scan, "every_s": 3600}, timeout=10)
        assert made.status_code == 201, made.text
        changed = requests.put(f"{url}/config", json={"settle": {"window_s": 0.6}}, timeout=10)
        assert changed.status_code == 200, changed.text
        sessions = [Path(capture["session"]["path"]), Path(done["poses"][0]["path"])]
        wait_for_files([s / name for s in sessions for name in ("report.html", "frame_sets.json")])

    # A config.json without a secret keeps its mode (0644 here), not a temp file's 0600.
    assert mode(cfg.path) == 0o644
    want_file, want_dir = 0o666 & ~UMASK, 0o777 & ~UMASK
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != cfg.path]
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    for expected in ("history.json", "presets.json", "schedules.json"):
        assert expected in names, sorted(names)
    for session in sessions:
        for name in ("session.json", "report.html", "frame_sets.json", "state.jsonl"):
            assert (session / name).relative_to(tmp_path).as_posix() in names
    assert any(n.startswith("images_data/scans/") for n in names), sorted(names)
    wrong = {p.relative_to(tmp_path).as_posix(): oct(mode(p)) for p in files if mode(p) != want_file}
    assert wrong == {}, f"files not {oct(want_file)}: {wrong}"
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    wrong_dirs = {p.relative_to(tmp_path).as_posix(): oct(mode(p)) for p in folders if mode(p) != want_dir}
    assert wrong_dirs == {}, f"folders not {oct(want_dir)}: {wrong_dirs}"


@pytest.mark.integration
def test_a_config_json_holding_a_secret_is_written_0600(sim: SimRig, prefix: str, tmp_path: Path) -> None:
    """The token is set by hand in a config.json left 0644; the first PUT /config writes it 0600."""
    cfg = process_config(tmp_path / "config.json", sim, prefix, mode=0o644, api={"token": TOKEN})
    with cfg.process(umask=0o022):
        changed = requests.put(
            f"{cfg.url}/config", json={"settle": {"window_s": 0.6}}, headers=AUTH, timeout=10
        )
        assert changed.status_code == 200, changed.text
    assert mode(cfg.path) == 0o600
    assert mode(tmp_path / "history.json") == 0o644  # the rest follows the umask


def wait_for_files(paths: list[Path]) -> None:
    """Aftercare writes frame_sets.json and report.html after the job ends."""
    until(lambda: all(p.exists() for p in paths), 60, f"these to be written: {[str(p) for p in paths]}")
    # The temp files of the atomic writes are renamed by now; nothing half-written is left.
    assert not [p for p in paths[0].parent.parent.rglob("*.tmp")]
    assert os.path.isdir(paths[0].parent)
