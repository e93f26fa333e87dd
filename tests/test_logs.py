"""The console says what happened: one log line per job event naming the job (accepted, started,
settled, recorded frames per camera, saved, succeeded / failed with the reason), per refused request
(its history id and first problem), per configuration change and per upload; readable text by default,
JSON lines with ``--log-format json``; ``--log-level``. The start banner names the dashboard and the
CLI. (application.py, service.jobs.log, service.jobs.queue, service.config_reloader, service.uploads.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from application import parse_args
from rigcore.config import RemoteStorageConfig
from service.uploads.uploader import Uploader
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import batch, process_config, scaled
from tests.s3server import S3Server

ISO_LOCAL = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def exercise(url: str) -> dict[str, Any]:
    """A capture, a refused batch, a batch the rig refuses (it fails), a scan, a config change."""
    done = requests.post(f"{url}/process-request", json=batch(seconds=1), timeout=120).json()
    assert done["status"] == "succeeded", done
    refused = requests.post(f"{url}/process-request", json=batch(pan=99999, seconds=1), timeout=10)
    assert refused.status_code == 400, refused.text
    unknown: dict[str, Any] = {
        "requests": [
            {"target_id": "entity", "device_id": "acikgoz_pantilt", "command_id": "reboot_now", "args": {}}
        ]
    }
    failed = requests.post(f"{url}/process-request", json=unknown, timeout=60).json()
    assert failed["status"] == "failed", failed
    scan: dict[str, Any] = {
        "cameras": ["cameradevice_lwir_1"],
        "duration_second": 1,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}, {"pan_deg_x100": 500, "tilt_deg_x100": 0}],
    }
    scanned = requests.post(f"{url}/scans?wait=true", json=scan, timeout=120).json()
    assert scanned["status"] == "succeeded", scanned
    assert requests.put(f"{url}/config", json={"settle": {"window_s": 0.6}}, timeout=10).status_code == 200
    return {
        "job": done["job_id"],
        "session": done["session"]["session_id"],
        "history_id": refused.json()["history_id"],
        "failed": failed["job_id"],
        "scan_job": scanned["job_id"],
        "scan_sessions": [p["session_id"] for p in scanned["poses"]],
    }


def read_log(path: Path, want: str) -> str:
    """The process's output once ``want`` is in it (the last lines are written as the job ends)."""
    deadline = time.monotonic() + scaled(10)
    while want not in (text := path.read_text(encoding="utf-8")):
        assert time.monotonic() < deadline, f"{want!r} not logged:\n{text[-3000:]}"
        time.sleep(0.05)
    return text


# -- the service processes: the log's format and level are set at start, so one process each ---------
Work = Callable[[str, Path], tuple[dict[str, Any], str]]


class Logged(NamedTuple):
    """What ``work`` did against a service process (``seen``), its log once the work was done
    (``text``) and once the process had stopped (``final``)."""

    url: str
    folder: Path
    seen: dict[str, Any]
    text: str
    final: str


def exercised(want: str) -> Work:
    """``exercise``, then the log once ``want`` is in it."""

    def work(url: str, out: Path) -> tuple[dict[str, Any], str]:
        seen = exercise(url)
        return seen, read_log(out, want)

    return work


def refused_then_succeeded(url: str, out: Path) -> tuple[dict[str, Any], str]:
    """A refused batch (logged: a warning), then one that succeeds."""
    refused = requests.post(f"{url}/process-request", json=batch(pan=99999, seconds=1), timeout=10)
    text = read_log(out, refused.json()["history_id"])
    done = requests.post(f"{url}/process-request", json=batch(seconds=0.5), timeout=120).json()
    assert done["status"] == "succeeded", done
    return {"job": done["job_id"]}, text


def logged(folder: Path, args: tuple[str, ...], work: Work) -> Logged:
    """``work`` against a service process started with ``args`` on a simulated rig of its own."""
    prefix = f"rctest_{uuid.uuid4().hex[:10]}"
    rig = SimRig(SimConfig(topic_prefix=prefix, http_port=0, ws_port=0))
    rig.start()
    try:
        cfg, out = process_config(folder / "config.json", rig, prefix), folder / "out.log"
        with cfg.process(output=out, args=args):
            seen, text = work(cfg.url, out)
        return Logged(cfg.url, folder, seen, text, out.read_text(encoding="utf-8"))
    finally:
        rig.stop()


LOGS: dict[str, tuple[tuple[str, ...], Work]] = {
    "text": ((), exercised("config saved to")),
    "json": (("--log-format", "json"), exercised('"event": "config_changed"')),
    "warning": (("--log-level", "WARNING"), refused_then_succeeded),
}


def log_of(name: str, tmp_path: Path) -> Logged:
    """The log ``name`` of :data:`LOGS`, made now. One service process at a time: a fixture that ran
    them beside each other kept three rigs streaming while the other test worker ran a solo test
    (tests/solo.py)."""
    args, work = LOGS[name]
    return logged(tmp_path, args, work)


@pytest.mark.integration
def test_text_log_has_a_line_per_event_and_the_banner_names_dashboard_and_cli(
    tmp_path: Path,
) -> None:
    url, folder, seen, text, _ = log_of("text", tmp_path)

    # The banner: the dashboard's URL and the CLI to try first (with --url: not the default port).
    assert f"dashboard:    {url}/" in text
    assert f"rigcli --url {url} status" in text

    job = seen["job"]
    lines = [line for line in text.splitlines() if f"job {job} " in line]
    events = [re.sub(rf"^{ISO_LOCAL} \w+ rigcapture\.jobs: job {job} ", "", line) for line in lines]
    assert all(re.match(ISO_LOCAL, line) for line in lines), lines  # local ISO times
    assert events[0].startswith("accepted from 127.0.0.1: 3 commands (set_pan_position_degree"), events
    assert events[1].startswith("started after "), events
    assert re.match(r"settled in \d+\.\d\d s", events[2]), events
    assert re.match(r"recorded frames: \d+ swir_1, \d+ lwir_1, \d+ rgb_1 in 1\.\d\d s$", events[3]), events
    assert (
        events[4]
        == f"saved session {seen['session']} (complete) in {folder / 'save_images' / seen['session']}"
    )
    assert re.match(r"succeeded in \d+\.\d\d s$", events[5]), events
    assert len(events) == 6, events  # and nothing more: progress ticks log nothing

    refused = [line for line in text.splitlines() if seen["history_id"] in line]
    assert len(refused) == 1 and " WARNING rigcapture.requests: " in refused[0], refused
    assert "refused (400) from 127.0.0.1: item 0 args.pan_position_deg_x100: 99999" in refused[0], refused

    failed = [line for line in text.splitlines() if f"job {seen['failed']} failed" in line]
    assert len(failed) == 1 and " WARNING " in failed[0] and "reboot_now" in failed[0], failed

    scan_lines = [line for line in text.splitlines() if f"job {seen['scan_job']} (scan " in line]
    assert any("pose 1/2 settled in" in line for line in scan_lines), scan_lines
    for session in seen["scan_sessions"]:
        assert any(f"saved session {session} (complete)" in line for line in scan_lines), scan_lines
    assert any("pose 2/2 recorded frames: " in line and "lwir_1" in line for line in scan_lines), scan_lines

    config = [line for line in text.splitlines() if "rigcapture.config: config saved to" in line]
    assert len(config) == 1 and "settle changed" in config[0], config


@pytest.mark.integration
def test_json_log_lines_carry_the_event_and_the_job(tmp_path: Path) -> None:
    _, _, seen, text, _ = log_of("json", tmp_path)
    # The banner is printed on stdout as text; every line of the log is one JSON object.
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert len(records) > 10
    assert all(
        re.fullmatch(ISO_LOCAL, r["time"]) and {"ts", "level", "logger", "message"} <= set(r) for r in records
    )
    events = [r["event"] for r in records if r.get("job_id") == seen["job"]]
    assert events == ["accepted", "started", "settled", "recorded", "saved", "succeeded"], events
    recorded = next(r for r in records if r.get("job_id") == seen["job"] and r.get("event") == "recorded")
    assert set(recorded["frames"]) == {"swir_1", "lwir_1", "rgb_1"} and min(recorded["frames"].values()) > 0
    failed = next(r for r in records if r.get("job_id") == seen["failed"] and r.get("event") == "failed")
    assert failed["level"] == "WARNING" and "reboot_now" in failed["reason"], failed
    refused = next(r for r in records if r.get("event") == "refused")
    assert refused["history_id"] == seen["history_id"] and refused["http_status"] == 400
    assert "pan_position_deg_x100" in refused["problem"]
    changed = next(r for r in records if r.get("event") == "config_changed")
    assert changed["changed"] == ["settle"] and changed["restart_required"] == []


def test_log_level_and_format_options() -> None:
    args = parse_args(["--log-level", "warning", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("WARNING", "json")
    assert (parse_args([]).log_level, parse_args([]).log_format) == ("INFO", "text")
    with pytest.raises(SystemExit):
        parse_args(["--log-level", "loud"])
    with pytest.raises(SystemExit):
        parse_args(["--log-format", "xml"])


@pytest.mark.integration
def test_a_warning_level_log_keeps_only_failures(tmp_path: Path) -> None:
    run = log_of("warning", tmp_path)  # the refused batch was logged (refused_then_succeeded)
    assert " INFO " not in run.final and run.seen["job"] not in run.final, run.final


@pytest.mark.integration
def test_each_upload_gets_a_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = S3Server()
    server.start()
    try:
        bucket = f"rig-{uuid.uuid4().hex[:12]}"
        server.make_bucket(bucket)
        save_dir = tmp_path / "save"
        (save_dir / "s-logged" / "cam").mkdir(parents=True)
        for i in range(3):
            (save_dir / "s-logged" / "cam" / f"{i}.png").write_bytes(os.urandom(1000))
        (save_dir / "s-logged" / "session.json").write_text("{}")
        uploader = Uploader(
            RemoteStorageConfig(**server.remote_config(bucket)), save_dir, tmp_path / "images"
        )
        with caplog.at_level(logging.INFO, logger="service.uploads.uploader"):
            uploader.start()
            try:
                assert uploader.wait_idle(scaled(60)), uploader.status()
            finally:
                uploader.stop()
    finally:
        server.stop()
    lines = [r for r in caplog.records if getattr(r, "event", None) == "uploaded"]
    assert len(lines) == 1, caplog.text
    assert re.match(r"uploaded session s-logged: 4 objects, 0\.0 MB in \d+\.\d s to ", lines[0].getMessage())
