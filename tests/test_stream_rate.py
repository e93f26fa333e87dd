"""Idle stream rate (camera.router): between jobs the stream is answered late and the rig slows down;
a job gets the full rate from its start, the recording misses nothing, and saving runs idle again.

Real simulated rig (its frame server waits for each answer), real Mosquitto, the real service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from api import create_app
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import batch, scaled, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # rates and timings: alone (tests/solo.py)


def messages_per_second(sim: SimRig, seconds: float) -> float:
    before = sim.stats()["messages_sent"]
    time.sleep(seconds)
    return (sim.stats()["messages_sent"] - before) / seconds


def set_full_rate(service: CaptureService, wanted: bool) -> None:
    async def apply() -> None:
        service.router.want_full_rate("test", wanted)

    service.runtime.submit(apply(), timeout=5)  # waits for the result


def clocks_judged(service: CaptureService, timeout: float = 10) -> None:
    """Wait until every camera's clock was judged: until then the service reads at full rate
    (camera.capture_clock), and then it is idle."""
    client = create_app(service).test_client()
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        status = client.get("/status").get_json()
        if all(c["capture_clock"]["judged"] for c in status["cameras"].values()):
            return
        time.sleep(0.05)
    raise AssertionError(f"the cameras' clocks were never judged: {status['cameras']}")


def test_idle_stream_is_slowed_and_wanted_full_rate_restores_it(
    start_service: Callable[..., CaptureService], sim: SimRig
) -> None:
    service = start_service(stream_client={"idle_ack_delay_s": 0.25}, capture_time={"window_s": 0.5})
    client = create_app(service).test_client()
    clocks_judged(service)
    assert client.get("/status").get_json()["stream_rate"] == "idle"
    idle = messages_per_second(sim, 1.5)
    assert idle <= 5, f"{idle:.1f} messages/s while idle: the answers are not delayed"

    set_full_rate(service, True)
    assert client.get("/status").get_json()["stream_rate"] == "full"
    full = messages_per_second(sim, 1.5)
    assert full >= 3 * idle, f"full rate {full:.1f}/s against {idle:.1f}/s idle"

    set_full_rate(service, False)
    assert client.get("/status").get_json()["stream_rate"] == "idle"
    assert messages_per_second(sim, 1.5) <= 5


def test_a_zero_delay_keeps_the_full_rate(start_service: Callable[..., CaptureService], sim: SimRig) -> None:
    service = start_service(stream_client={"idle_ack_delay_s": 0})
    assert create_app(service).test_client().get("/status").get_json()["stream_rate"] == "full"
    assert messages_per_second(sim, 1.5) >= 20


def test_a_job_records_at_full_rate_and_saves_at_idle_rate(
    start_service: Callable[..., CaptureService], sim: SimRig
) -> None:
    service = start_service(capture_time={"window_s": 0.5})
    client = create_app(service).test_client()
    clocks_judged(service)
    answer = client.post("/process-request?wait=false", json=batch(seconds=2.0))
    assert answer.status_code == 202, answer.get_json()
    job_id = answer.get_json()["job_id"]
    rates: dict[str, Any] = {}
    deadline = time.monotonic() + scaled(60)
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").get_json()
        rates.setdefault(job["phase"], client.get("/status").get_json()["stream_rate"])
        if job["phase"] == "done":
            break
        time.sleep(0.02)
    job = wait_job(client, job_id, 60)
    assert job["status"] == "succeeded", job
    assert rates.get("settling") == "full" and rates.get("recording") == "full", rates
    assert rates["done"] == "idle", rates
    session = job["sessions"][0]
    assert session["missing_frames"] == 0, session  # full rate from the job's start: no frame skipped
    for cam, info in session["cameras"].items():
        nominal = 2.0 * sim.cfg.cameras[cam].fps
        assert info["frame_count"] >= 0.9 * nominal, (cam, info, nominal)  # not the idle trickle
