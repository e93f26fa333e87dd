"""Event capture against the simulated rig (issue 22): the ring's seconds before a trigger and the
seconds after it, saved as a session, over HTTP and MQTT, during a capture job, extended by a second
trigger, and for a trigger time in the past.

Each event's session is checked frame by frame against the rig's ground truth
(``SimRig.sent_frames()``): every saved frame was captured inside the event's window (capture time,
EDGE of slack), at least KEEP of the frames the rig captured inside it were saved, and every saved
file holds exactly the pixels the rig sent (re-rendered here from the frame's true pose: the
simulator renders a view as a pure function of it). Two small cameras at 10 fps keep it cheap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.publish as mqtt_publish
import pytest
import tifffile
from flask.testing import FlaskClient

from api import create_app
from rigcore.atomic import write_json_atomic
from rigcore.config import Config
from service.capture import CaptureService
from simulator.config import CameraSim, SimConfig
from simulator.frames import FrameRenderer
from simulator.rig import SimRig
from simulator.scene import shared_scene
from tests.conftest import BROKER, batch, deep_merge, scaled, wait_job
from tests.test_engine_cases import EDGE, KEEP, check_folder

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # rates and timings: alone (tests/solo.py)

LWIR, VNIR = "cameradevice_lwir_1", "cameradevice_vnir_playerone"
CAMS = (LWIR, VNIR)
FPS = 10.0
PRE_MAX_S = 3.0


@dataclass
class Rig:
    sim: SimRig
    service: CaptureService
    client: FlaskClient
    topic: str
    config_path: Path


@pytest.fixture
def rig(sim_config: SimConfig, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """The simulated rig with two small cameras, and the service with events armed on them (started
    with a config file, so PUT /config works)."""
    sim_config.cameras = {LWIR: CameraSim("mono16", 96, 64, FPS), VNIR: CameraSim("encoded", 96, 64, FPS)}
    sim: SimRig = request.getfixturevalue("sim")  # after the cameras are set
    make_config: Callable[..., Config] = request.getfixturevalue("make_config")
    topic = f"{sim_config.topic_prefix}/event_trigger"
    overrides = {
        "cameras": {LWIR: {"pixel_format": "mono16"}, VNIR: {"pixel_format": "encoded"}},
        "events": {"enabled": True, "pre_max_s": PRE_MAX_S, "post_default_s": 1.0, "mqtt_topic": topic},
    }
    config = make_config("mqtt", **deep_merge(overrides, getattr(request, "param", {})))
    path = tmp_path / "config.json"
    write_json_atomic(path, config.to_json())
    service = CaptureService(config, base_dir=tmp_path, config_path=path)
    service.start()
    try:
        assert service.wait_ready(scaled(10)), "service did not connect to the broker and the stream"
        yield Rig(sim, service, create_app(service).test_client(), topic, path)
    finally:
        service.stop()


def ring_holds(service: CaptureService, seconds: float, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until the ring can reach ``seconds`` back on every camera; the events' /status."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        events: dict[str, Any] = service.status()["events"]
        cams = events.get("ring", {}).get("cameras", {})
        if cams and all(c["seconds"] >= seconds for c in cams.values()):
            return events
        assert time.monotonic() < deadline, f"the ring did not reach {seconds} s: {events}"
        time.sleep(0.1)


def wait_event(client: FlaskClient, event_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        event: dict[str, Any] = client.get(f"/events/{event_id}").get_json()
        if event.get("status") in ("saved", "partial", "failed"):
            return event
        assert time.monotonic() < deadline, f"event {event_id} not saved: {event}"
        time.sleep(0.1)


def manifest_of(event: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    path = Path(event["path"])
    return path, json.loads((path / "session.json").read_text())


class Pixels:
    """What the rig sent for a frame, re-rendered from its true pose (one render per view)."""

    def __init__(self, sim: SimRig) -> None:
        self._sim = sim
        self._renderers = {
            cam: FrameRenderer(cam, spec, shared_scene(), sim.cfg.jpeg_quality)
            for cam, spec in sim.cfg.cameras.items()
        }
        self._done: dict[tuple[str, Any], bytes] = {}

    def sent(self, cam: str, pose: dict[str, Any]) -> bytes:
        renderer = self._renderers[cam]
        key = renderer.key_for(pose["pan_deg_x100"] / 100, pose["tilt_deg_x100"] / 100, 1.0)
        if (cam, key) not in self._done:
            self._done[cam, key] = renderer.render(key)
        return self._done[cam, key]


def check_event_session(rig: Rig, event: dict[str, Any]) -> dict[str, Any]:
    """The event's session frame by frame (see the module text); its manifest."""
    assert event["status"] == "saved", event
    path, manifest = manifest_of(event)
    assert manifest["kind"] == "event" and manifest["event_id"] == event["event_id"]
    assert manifest["status"] == "complete", manifest["problems"]
    start, end = manifest["record_started_at"], manifest["record_ended_at"]
    sent = [s for s in rig.sim.sent_frames() if s.valid]
    pixels = Pixels(rig.sim)
    for cam in CAMS:
        frames = manifest["cameras"][cam]["frames"]
        truth = {s.frame_index: s for s in sent if s.camera_id == cam}
        for f in frames:
            captured = truth[f["frame_index"]].captured_ns / 1e9
            assert start <= f["captured_at"] < end, f"{cam} frame {f['frame_index']} outside the window"
            assert start - EDGE <= captured < end + EDGE, f"{cam} frame {f['frame_index']}: captured outside"
            check_pixels(path / f["file"], pixels.sent(cam, truth[f["frame_index"]].pose), rig.sim, cam)
        inside = [s for s in truth.values() if start + EDGE <= s.captured_ns / 1e9 < end - EDGE]
        saved = {f["frame_index"] for f in frames}
        kept = sum(1 for s in inside if s.frame_index in saved)
        assert inside and kept / len(inside) >= KEEP, f"{cam}: saved {kept} of {len(inside)} captured inside"
    check_folder(rig.service, path, manifest)
    return manifest


def check_pixels(file: Path, sent: bytes, sim: SimRig, cam: str) -> None:
    spec = sim.cfg.cameras[cam]
    if spec.pixel_format == "encoded":
        assert file.read_bytes() == sent, f"{file}: not the JPEG the rig sent, byte for byte"
    else:
        want = np.frombuffer(sent, dtype="<u2").reshape(spec.height, spec.width)
        assert np.array_equal(tifffile.imread(file), want), f"{file}: not the pixels the rig sent"


def test_an_http_event_saves_two_seconds_before_and_two_after(rig: Rig) -> None:
    events = ring_holds(rig.service, 2.5)
    assert events["armed"] and events["error"] is None
    assert rig.service.status()["stream_rate"] == "full", "the ring's cameras run at full rate"
    before = time.time()
    resp = rig.client.post("/events?wait=true", json={"pre_s": 2, "post_s": 2, "label": "gate"})
    event = resp.get_json()
    assert resp.status_code == 200, event
    manifest = check_event_session(rig, event)
    trigger = manifest["trigger_at"]
    assert before <= trigger <= before + 0.5
    assert manifest["record_started_at"] == pytest.approx(trigger - 2, abs=1e-3)
    assert manifest["record_ended_at"] == pytest.approx(trigger + 2, abs=1e-3)
    assert (manifest["source"], manifest["label"], len(manifest["triggers"])) == ("http", "gate", 1)
    assert manifest["state_log"]["samples"] > 0
    assert {f["pose_method"] for f in manifest["cameras"][LWIR]["frames"]} == {"interpolated"}
    listed = rig.client.get("/events").get_json()
    assert [e["event_id"] for e in listed["events"]] == [event["event_id"]] and listed["armed"]
    # The rest of a session's life, as a recording's: aftercare's files, the catalog, the MCAP export.
    assert rig.service.aftercare.wait_idle(scaled(20))
    path = Path(event["path"])
    assert (path / "report.html").is_file() and (path / "frame_sets.json").is_file()
    sessions = rig.client.get("/sessions").get_json()["sessions"]
    assert [s["session_id"] for s in sessions] == [event["session_id"]]
    mcap = rig.client.get(f"/sessions/{event['session_id']}.mcap")
    assert mcap.status_code == 200 and mcap.get_data()[:8] == b"\x89MCAP0\r\n"


def test_an_mqtt_trigger_is_an_event_and_bad_messages_are_counted(rig: Rig) -> None:
    ring_holds(rig.service, 1.5)
    publish = [
        (b"{not json", None),
        (json.dumps({"pre_s": 99}).encode(), None),
        (json.dumps({"pre_s": 1, "post_s": 1, "label": "detector"}).encode(), None),
    ]
    for payload, _ in publish:
        mqtt_publish.single(rig.topic, payload, qos=1, hostname=BROKER[0], port=BROKER[1])
    deadline = time.monotonic() + scaled(10)
    while not (listed := rig.client.get("/events").get_json()["events"]):
        assert time.monotonic() < deadline, "no event from the MQTT trigger"
        time.sleep(0.1)
    manifest = check_event_session(rig, wait_event(rig.client, listed[0]["event_id"]))
    assert (manifest["source"], manifest["label"]) == ("mqtt", "detector")
    mqtt = rig.service.status()["events"]["mqtt"]
    assert (mqtt["triggers"], mqtt["rejected"]) == (1, 2), mqtt
    assert "not JSON" in mqtt["recent_rejections"][0] and "pre_s" in mqtt["recent_rejections"][1]


def test_an_event_during_a_capture_job_is_its_own_session_and_the_job_stays_whole(rig: Rig) -> None:
    ring_holds(rig.service, 1.5)
    job = rig.client.post("/process-request?wait=false", json=batch(None, None, 3.0, CAMS)).get_json()
    wait_job(rig.client, job["job_id"], 10, phase="recording")
    time.sleep(0.5)
    resp = rig.client.post("/events?wait=true", json={"pre_s": 1, "post_s": 1})
    event_manifest = check_event_session(rig, resp.get_json())
    done = wait_job(rig.client, job["job_id"], 30)
    assert done["status"] == "succeeded", done
    job_path = Path(done["session"]["path"])
    job_manifest = json.loads((job_path / "session.json").read_text())
    assert job_manifest["kind"] == "recording" and "event_id" not in job_manifest
    assert job_manifest["status"] == "complete", job_manifest["problems"]
    start, end = job_manifest["record_started_at"], job_manifest["record_ended_at"]
    sent = [s for s in rig.sim.sent_frames() if s.valid]
    for cam in CAMS:
        saved = {f["frame_index"] for f in job_manifest["cameras"][cam]["frames"]}
        inside = [s for s in sent if s.camera_id == cam and start + EDGE <= s.captured_ns / 1e9 < end - EDGE]
        assert sum(1 for s in inside if s.frame_index in saved) / len(inside) >= KEEP, cam
        shared = saved & {f["frame_index"] for f in event_manifest["cameras"][cam]["frames"]}
        assert shared, f"{cam}: the event's window lies inside the job's, so frames are in both"
    check_folder(rig.service, job_path, job_manifest)


def test_a_second_trigger_in_the_after_part_extends_the_event(rig: Rig) -> None:
    ring_holds(rig.service, 1.5)
    first = rig.client.post("/events", json={"pre_s": 1, "post_s": 1.5}).get_json()
    assert first["extended"] is False
    time.sleep(0.8)
    second = rig.client.post("/events", json={"post_s": 1.5, "label": "again"}).get_json()
    assert second["event_id"] == first["event_id"] and second["extended"] is True, second
    manifest = check_event_session(rig, wait_event(rig.client, first["event_id"]))
    triggers = manifest["triggers"]
    assert len(triggers) == 2 and triggers[1]["label"] == "again" and manifest["label"] == "again"
    assert manifest["record_started_at"] == pytest.approx(triggers[0]["at"] - 1, abs=1e-3)
    assert manifest["record_ended_at"] == pytest.approx(triggers[1]["at"] + 1.5, abs=1e-3)
    assert manifest["record_ended_at"] - manifest["record_started_at"] > 3.0


def test_a_trigger_time_in_the_past_saves_the_window_around_it(rig: Rig) -> None:
    ring_holds(rig.service, PRE_MAX_S)
    at = time.time() - 1.5
    resp = rig.client.post("/events?wait=true", json={"at": at, "pre_s": 1, "post_s": 1})
    manifest = check_event_session(rig, resp.get_json())
    assert manifest["trigger_at"] == pytest.approx(at, abs=1e-3)
    assert manifest["record_started_at"] == pytest.approx(at - 1, abs=1e-3)
    assert manifest["record_ended_at"] == pytest.approx(at + 1, abs=1e-3)


def test_bad_triggers_are_refused_and_put_config_resizes_and_disables_the_ring(rig: Rig) -> None:
    ring_holds(rig.service, 1.0)
    for body, status, words in (
        ({"pre_s": 5}, 400, "pre_s: 5 is more than 3 s"),
        ({"cameras": ["cameradevice_nope"]}, 400, "unknown camera"),
        ({"at": time.time() - 60}, 400, "before what the ring holds"),
        ({"post_s": "2"}, 400, "must be a number"),
    ):
        resp = rig.client.post("/events", json=body)
        assert resp.status_code == status and words in resp.get_json()["error"], resp.get_json()
    assert rig.client.post("/events", data="x", content_type="text/plain").status_code == 415
    assert rig.client.get("/events/ev-nope").status_code == 404
    assert rig.client.get("/events").get_json()["events"] == [], "a refused trigger records nothing"
    # PUT /config: a shorter ring applies at once, no restart.
    resp = rig.client.put("/config", json={"events": {"pre_max_s": 1.0}})
    assert resp.status_code == 200, resp.get_json()
    time.sleep(0.3)
    ring = rig.service.status()["events"]["ring"]["cameras"]
    assert all(c["seconds"] <= 1.5 for c in ring.values()), ring
    resp = rig.client.post("/events", json={"pre_s": 2})
    assert resp.status_code == 400 and "more than 1 s" in resp.get_json()["error"]
    # Disabled: 409, the ring let go of its memory, the streams no longer held at full rate.
    assert rig.client.put("/config", json={"events": {"enabled": False}}).status_code == 200
    resp = rig.client.post("/events", json={})
    assert resp.status_code == 409 and "events are disabled" in resp.get_json()["error"]
    events = rig.service.status()["events"]
    assert not events["armed"] and events["ring"]["bytes"] == 0 and events["ring"]["cameras"] == {}


@pytest.mark.parametrize(
    "rig", [{"recording": {"memory_cap_mb": 4}, "events": {"pre_max_s": 30, "max_s": 60}}], indirect=True
)
def test_a_ring_too_big_at_the_measured_rates_switches_events_off_naming_the_numbers(rig: Rig) -> None:
    deadline = time.monotonic() + scaled(10)
    while (events := rig.service.status()["events"])["error"] is None:
        assert time.monotonic() < deadline, f"the ring was never refused: {events}"
        time.sleep(0.1)
    assert not events["armed"]
    for words in ("the ring needs", "measured", "× 30.5 s", "memory_cap_mb 4 MiB allows it 1.50 MiB"):
        assert words in events["error"], events["error"]
    resp = rig.client.post("/events", json={})
    assert resp.status_code == 409 and "the ring needs" in resp.get_json()["error"]
    # PUT /config refuses a ring that still does not fit, at the rates measured.
    resp = rig.client.put("/config", json={"events": {"pre_max_s": 29}})
    assert resp.status_code == 400 and "the ring needs" in json.dumps(resp.get_json())
