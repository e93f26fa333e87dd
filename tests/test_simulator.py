"""Tests of the simulated rig against real peers: Mosquitto on 127.0.0.1:1883, HTTP and WebSocket on
ephemeral loopback ports. Every test uses its own topic prefix. SIM_TEST_TIME_SCALE stretches every
timeout for slow machines."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import cv2
import msgpack
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from simulator import CameraSim, Faults, SimConfig, SimRig, SimStartError
from simulator.commands import CommandHandler
from simulator.config import LWIR_ID, PANTILT_ID, RGB_ID, SWIR_ID, VNIR_ID
from simulator.frames import CapturedFrame, FrameRenderer, Malformed, build_message, malformed_kind
from simulator.physics import Axis, RigPhysics
from simulator.scene import shared_scene

T = float(os.environ.get("SIM_TEST_TIME_SCALE", "1"))
BYTES_PER_PIXEL = {"mono8": 1, "mono16": 2, "rgb8": 3, "bgr8": 3}


# -- helpers -------------------------------------------------------------------------------------


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout * T
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class MqttProbe:
    """A real MQTT client that records every message with its arrival time."""

    def __init__(self, topics: list[str]) -> None:
        self.messages: list[tuple[float, str, Any, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._topics = topics
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            payload = msg.payload
        with self._lock:
            self.messages.append((time.monotonic(), msg.topic, payload, bool(msg.retain)))

    def __enter__(self) -> MqttProbe:
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert self._subscribed.wait(5 * T), "probe did not subscribe"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str, since: float = 0.0, live: bool = False) -> list[tuple[float, Any, bool]]:
        with self._lock:
            return [
                (t, p, r)
                for t, top, p, r in self.messages
                if top == topic and t >= since and not (live and r)
            ]


def small_cameras(fps: float = 15.0) -> dict[str, CameraSim]:
    return {
        RGB_ID: CameraSim("encoded", 160, 90, fps, zoom_device=True),
        SWIR_ID: CameraSim("mono8", 80, 64, fps, zoom_device=True, zoom_style="step"),
    }


def frames_of(message: bytes | str) -> list[dict[str, Any]]:
    assert isinstance(message, bytes)
    packets = msgpack.unpackb(message)
    return [f for p in packets for f in p["camera_frames"]]


def read_stream(
    url: str, duration: float, ack: bool = True, on_open: Callable[[ClientConnection], None] | None = None
) -> list[tuple[float, bytes | str]]:
    """(arrival time, message) for every message within ``duration`` seconds."""
    out: list[tuple[float, bytes | str]] = []
    with connect(url, max_size=2**25, open_timeout=5 * T) as ws:
        if on_open:
            on_open(ws)
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = ws.recv(timeout=left)
            except TimeoutError:
                break
            out.append((time.monotonic(), msg))
            if ack:
                ws.send("received")
    return out


def decode_pixels(frame: dict[str, Any], fallback_format: str) -> np.ndarray[Any, Any]:
    img = frame["image_data"]
    fmt = img.get("pixel_format", fallback_format)
    w, h, px = img["width"], img["height"], img["pixels"]
    if fmt == "encoded":
        out = cv2.imdecode(np.frombuffer(px, np.uint8), cv2.IMREAD_UNCHANGED)
        assert out is not None, "JPEG did not decode"
        return np.asarray(out)
    assert len(px) == w * h * BYTES_PER_PIXEL[fmt], f"{fmt}: byte count"
    if fmt == "mono16":
        return np.frombuffer(px, "<u2").reshape(h, w)
    if fmt == "mono8":
        return np.frombuffer(px, np.uint8).reshape(h, w)
    return np.frombuffer(px, np.uint8).reshape(h, w, 3)


def pan_command(x100: int) -> dict[str, Any]:
    return {
        "target_id": "entity",
        "device_id": PANTILT_ID,
        "command_id": "set_pan_position_degree",
        "args": {"pan_position_deg_x100": x100},
    }


# -- pure: physics, commands, wire format, scene ----------------------------------------------------


def test_axis_start_delay_speed_and_retarget() -> None:
    axis = Axis(0.0, speed=100.0, delay=0.5, lo=-1000, hi=1000)
    axis.command(300.0, now=10.0)
    assert axis.value(10.4) == 0.0 and axis.is_busy(10.4) and not axis.is_moving(10.4)
    assert axis.value(11.5) == pytest.approx(100.0)
    assert axis.is_moving(11.5)
    # Retarget at 11.5: the old move goes on through the delay, then heads back.
    axis.command(-100.0, now=11.5)
    assert axis.value(12.0) == pytest.approx(150.0)
    assert axis.value(13.0) == pytest.approx(50.0)
    assert axis.value(20.0) == -100.0 and not axis.is_busy(20.0)


def test_reported_state_jitters_only_while_moving() -> None:
    physics = RigPhysics(SimConfig(start_delay_s=0.0, pan_speed_deg_s=10.0))
    physics.move(physics.pan, 1000, now=0.0)
    moving = [physics.pantilt_state(0.5)["pan_deg_x100"] - 500 for _ in range(200)]
    assert set(moving) <= set(range(-3, 4)) and len(set(moving)) > 1
    assert {physics.pantilt_state(5.0)["pan_deg_x100"] for _ in range(50)} == {1000}
    prev = None
    for _ in range(50):
        state = physics.pantilt_state(5.0, never_settle=True, previous=prev)
        assert state["pan_deg_x100"] != 1000 and abs(state["pan_deg_x100"] - 1000) <= 4
        assert prev is None or state["pan_deg_x100"] != prev["pan_deg_x100"]
        prev = state


def test_command_validation() -> None:
    cfg = SimConfig()
    handler = CommandHandler(cfg, RigPhysics(cfg))
    assert handler.handle(pan_command(18000), 0.0).status_code == 200
    assert handler.handle(pan_command(18001), 0.0).status_code == 400
    bad_type = pan_command(0) | {"args": {"pan_position_deg_x100": "90"}}
    assert handler.handle(bad_type, 0.0).status_code == 400
    assert handler.handle(pan_command(0) | {"args": {"pan_position_deg_x100": True}}, 0.0).status_code == 400
    assert handler.handle(pan_command(0) | {"device_id": "nope"}, 0.0).status_code == 404
    unknown = handler.handle(pan_command(0) | {"command_id": "self_destruct"}, 0.0)
    assert (unknown.status_code, unknown.response["error"]) == (400, "unknown command")
    zoom = {"device_id": RGB_ID, "command_id": "set_zoom_value", "args": {"zoom_value": 30.5}}
    assert handler.handle(zoom, 0.0).status_code == 400
    step = {"device_id": SWIR_ID, "command_id": "set_zoom_step", "args": {"zoom_step": 1000}}
    assert handler.handle(step, 0.0).status_code == 200
    state = handler.handle({"device_id": SWIR_ID, "command_id": "get_state"}, 100.0)
    assert state.response == {"zoom_lens_state": {"zoom_step": 1000}}
    assert handler.handle([1, 2], 0.0).status_code == 400


def test_wire_format_quirks_and_malformed_rotation() -> None:
    def frame(idx: int) -> CapturedFrame:
        return CapturedFrame(LWIR_ID, idx, 1, "mono16", 4, 2, bytes(16), {})

    first = frames_of(build_message([frame(48), frame(49)], 1, None)[0])
    assert first[0]["device_id"] == LWIR_ID and first[0]["image_data"]["pixel_format"] == "mono16"
    assert first[1]["device_id"] == LWIR_ID + " " and "pixel_format" not in first[1]["image_data"]
    assert [malformed_kind(n, 2) for n in range(1, 9)] == [
        None,
        Malformed.NOT_MSGPACK,
        None,
        Malformed.WRONG_BYTE_COUNT,
        None,
        Malformed.UNKNOWN_FORMAT,
        None,
        Malformed.NOT_MSGPACK,
    ]
    payload, carried = build_message([frame(2), frame(3)], 2, Malformed.WRONG_BYTE_COUNT)
    spoilt = frames_of(payload)
    assert len(spoilt[0]["image_data"]["pixels"]) != 16 and len(spoilt[1]["image_data"]["pixels"]) == 16
    assert [valid for _, valid in carried] == [False, True]
    with pytest.raises(Exception):  # noqa: B017 - msgpack's error classes vary by version
        msgpack.unpackb(build_message([frame(2)], 2, Malformed.NOT_MSGPACK)[0])


def test_scene_follows_pan_tilt_zoom_and_caches() -> None:
    renderer = FrameRenderer(RGB_ID, CameraSim("bgr8", 160, 90, 10.0), shared_scene())

    def view(pan: float, tilt: float, zoom: float) -> np.ndarray[Any, Any]:
        key = renderer.key_for(pan, tilt, zoom)
        return np.frombuffer(renderer.cached(key) or renderer.render(key), np.uint8).astype(int)

    base = view(0, 0, 1)
    assert np.abs(base - view(0, 0, 1)).mean() == 0 and renderer.renders == 1
    for other in (view(20, 0, 1), view(0, -15, 1), view(0, 0, 4)):
        assert np.abs(base - other).mean() > 5
    assert renderer.key_for(180.0, 0, 1) == renderer.key_for(-180.0, 0, 1)


# -- MQTT state and commands --------------------------------------------------------------------


@pytest.mark.integration
def test_state_published_retained_at_10_hz(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras())
    prefix = rig.cfg.topic_prefix
    time.sleep(0.3)
    with MqttProbe([f"{prefix}/entity_state/+"]) as probe:
        started = time.monotonic()
        time.sleep(1.0 * T)
        expect = {
            PANTILT_ID: {"pan_deg_x100": 0, "tilt_deg_x100": 0},
            RGB_ID: {"zoom_value": 1.0},
            SWIR_ID: {"zoom_lens_state": {"zoom_step": 0}},
            "acikgoz_lrf": {"measured_distance_meters": 400.0},
        }
        for device, payload in expect.items():
            msgs = probe.on(f"{prefix}/entity_state/{device}")
            assert msgs and msgs[0][2], f"{device}: first message not retained"
            live = [m for m in msgs if not m[2] and m[0] >= started]
            assert 7 <= len(live) <= 13, f"{device}: {len(live)} messages in 1 s"
            assert all(m[1] == payload for m in msgs), device
    assert "moving" not in probe.on(f"{prefix}/entity_state/{PANTILT_ID}")[-1][1]


@pytest.mark.integration
def test_mqtt_pan_command_start_delay_and_settle(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), start_delay_s=0.5, pan_speed_deg_s=60.0)
    prefix = rig.cfg.topic_prefix
    topics = [f"{prefix}/entity_state/{PANTILT_ID}", f"{prefix}/entity_response/{PANTILT_ID}"]
    with MqttProbe(topics) as probe:
        sent_at = time.monotonic()
        command = pan_command(3000) | {"request_id": "req-1"}
        probe.client.publish(f"{prefix}/entity_command/{PANTILT_ID}", json.dumps(command), qos=1)
        assert wait_until(lambda: probe.on(topics[1]), 2.0), "no response"
        answer = probe.on(topics[1])[0][1]
        assert answer["request_id"] == "req-1" and answer["status_code"] == 200
        assert wait_until(lambda: rig.pose()["pan_deg_x100"] == 3000 and not rig.pose()["moving"], 3.0)
        time.sleep(0.6)  # five more state messages at rest
        states = probe.on(topics[0], since=sent_at, live=True)
    during_delay = [p["pan_deg_x100"] for t, p, _ in states if t < sent_at + 0.45]
    assert during_delay and set(during_delay) == {0}, "state changed before the start delay"
    pans = [p["pan_deg_x100"] for _, p, _ in states]
    assert any(0 < p < 3000 for p in pans), "no intermediate positions"
    assert pans[-5:] == [3000] * 5
    got = rig.commands_received()
    assert got[-1]["transport"] == "mqtt" and got[-1]["request_id"] == "req-1"
    assert abs(got[-1]["received_at"] - time.time()) < 10


@pytest.mark.integration
def test_mqtt_unknown_device_and_zoom(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), start_delay_s=0.0)
    prefix = rig.cfg.topic_prefix
    with MqttProbe([f"{prefix}/entity_response/+", f"{prefix}/entity_state/{RGB_ID}"]) as probe:
        cmd = {"target_id": "camera_device", "device_id": RGB_ID, "command_id": "set_zoom_value"}
        probe.client.publish(
            f"{prefix}/entity_command/{RGB_ID}",
            json.dumps(cmd | {"args": {"zoom_value": 2.5}, "request_id": "z"}),
            qos=1,
        )
        probe.client.publish(
            f"{prefix}/entity_command/ghost",
            json.dumps({"command_id": "get_state", "request_id": "g"}),
            qos=1,
        )
        assert wait_until(lambda: len(probe.on(f"{prefix}/entity_response/ghost")) == 1, 2.0)
        assert probe.on(f"{prefix}/entity_response/ghost")[0][1]["status_code"] == 404
        assert wait_until(lambda: rig.pose()["rgb_zoom"] == 2.5, 2.0)
        assert wait_until(
            lambda: probe.on(f"{prefix}/entity_state/{RGB_ID}")[-1][1] == {"zoom_value": 2.5}, 1.0
        )


# -- HTTP invoke --------------------------------------------------------------------------------


@pytest.mark.integration
def test_http_invoke(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), start_delay_s=0.0, tilt_speed_deg_s=90.0)
    tilt = {"target_id": "entity", "device_id": PANTILT_ID, "command_id": "set_tilt_position_degree"}
    ok = requests.post(rig.http_url, json=tilt | {"args": {"tilt_position_deg_x100": -1000}}, timeout=5)
    assert ok.status_code == 200 and ok.json()["result"] == "accepted"
    out = requests.post(rig.http_url, json=tilt | {"args": {"tilt_position_deg_x100": 9001}}, timeout=5)
    assert out.status_code == 400 and "range" in out.json()["error"]
    assert requests.post(rig.http_url, data=b"not json", timeout=5).status_code == 400
    unknown = requests.post(rig.http_url, json=tilt | {"command_id": "fly"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown command"
    assert wait_until(lambda: rig.pose()["tilt_deg_x100"] == -1000, 2.0)
    lrf = requests.post(rig.http_url, json={"device_id": "acikgoz_lrf", "command_id": "get_state"}, timeout=5)
    assert 25.0 <= lrf.json()["measured_distance_meters"] <= 400.0
    rec = {"device_id": RGB_ID, "command_id": "start_recording_command", "args": {"duration_second": 2}}
    assert requests.post(rig.http_url, json=rec, timeout=5).status_code == 200
    transports = [c["transport"] for c in rig.commands_received()]
    assert transports == ["http"] * 6


@pytest.mark.integration
def test_http_faults(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), start_delay_s=0.0)
    rig.faults.invoke_status = 500
    assert requests.post(rig.http_url, json=pan_command(1000), timeout=5).status_code == 500
    time.sleep(0.2)
    assert rig.pose()["pan_deg_x100"] == 0, "a failed invoke must not execute"
    rig.faults.invoke_status = None
    rig.faults.invoke_delay_s = 0.6
    with pytest.raises(requests.ReadTimeout):
        requests.post(rig.http_url, json=pan_command(0), timeout=(2, 0.2))
    started = time.monotonic()
    assert requests.post(rig.http_url, json=pan_command(0), timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.55


# -- WebSocket frames ---------------------------------------------------------------------------


@pytest.mark.integration
def test_acking_reader_gets_every_frame_at_nominal_rate(make_rig: Callable[..., SimRig]) -> None:
    cams = small_cameras(fps=20.0) | {LWIR_ID: CameraSim("mono16", 64, 48, 10.0)}
    rig = make_rig(cameras=cams)
    messages = read_stream(rig.ws_url, 1.5 * T)
    seen: dict[str, list[int]] = {}
    for _, msg in messages:
        frames = frames_of(msg)
        assert len(frames) <= rig.cfg.frames_per_message
        for f in frames:
            seen.setdefault(f["device_id"].strip(), []).append(f["frame_index"])
    for cid, cam in cams.items():
        idx = seen[cid]
        assert idx == list(range(idx[0], idx[0] + len(idx))), f"{cid}: gaps in {idx}"
        assert len(idx) >= 0.8 * cam.fps * 1.5, f"{cid}: {len(idx)} frames"
    # Frames of cameras due at the same tick travel together.
    together = [frames_of(m) for _, m in messages]
    assert any({f["device_id"].strip() for f in fr} == set(cams) for fr in together)
    # Everything received is in sent_frames, with the pose at capture.
    sent = {(s.camera_id, s.frame_index): s for s in rig.sent_frames()}
    assert all((cid, i) in sent for cid, ids in seen.items() for i in ids)
    assert sent[(RGB_ID, seen[RGB_ID][0])].pose["pan_deg_x100"] == 0


@pytest.mark.integration
def test_slow_reader_sees_gaps(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras={RGB_ID: CameraSim("encoded", 160, 90, 20.0)}, ack_timeout_s=0.25)
    indices = [f["frame_index"] for _, m in read_stream(rig.ws_url, 1.3 * T, ack=False) for f in frames_of(m)]
    assert 3 <= len(indices) <= 7, indices
    assert all(b - a >= 4 for a, b in itertools.pairwise(indices)), indices
    assert rig.stats()["frames_skipped"] > 0


@pytest.mark.integration
def test_a_slow_reader_still_gets_every_camera_newest_frame(make_rig: Callable[..., SimRig]) -> None:
    # A fast and a slow camera, and a reader that never answers: each message after the first ack
    # timeout carries each camera's newest frame, so the 4 fps camera is not crowded out by the 40 fps one.
    cams = {RGB_ID: CameraSim("encoded", 160, 90, 40.0), LWIR_ID: CameraSim("mono16", 64, 48, 4.0)}
    rig = make_rig(cameras=cams, ack_timeout_s=0.3, frames_per_message=2)
    seen: dict[str, list[int]] = {}
    for _, msg in read_stream(rig.ws_url, 3.0 * T, ack=False):
        for f in frames_of(msg):
            seen.setdefault(f["device_id"].strip(), []).append(f["frame_index"])
    assert len(seen.get(LWIR_ID, [])) >= 4, seen  # about 10 messages, nearly all with an LWIR frame
    for cid, indices in seen.items():
        assert indices == sorted(set(indices)), f"{cid}: repeated or out of order: {indices}"
    assert rig.stats()["frames_skipped"] > 0


@pytest.mark.integration
def test_frames_decode_to_size_and_format(make_rig: Callable[..., SimRig]) -> None:
    cams = {
        RGB_ID: CameraSim("encoded", 320, 180, 10.0, zoom_device=True),
        SWIR_ID: CameraSim("mono8", 96, 80, 10.0),
        LWIR_ID: CameraSim("mono16", 128, 96, 10.0),
        VNIR_ID: CameraSim("rgb8", 64, 48, 10.0),
        "cameradevice_extra_bgr": CameraSim("bgr8", 48, 32, 10.0),
    }
    rig = make_rig(cameras=cams, frames_per_message=8)
    frames = [f for _, m in read_stream(rig.ws_url, 0.5 * T) for f in frames_of(m)]
    with_fmt = {f["device_id"].strip() for f in frames if "pixel_format" in f["image_data"]}
    without = {f["device_id"].strip() for f in frames if "pixel_format" not in f["image_data"]}
    assert with_fmt == set(cams) and without == set(cams)
    for f in frames:
        cam = cams[f["device_id"].strip()]
        img = decode_pixels(f, cam.pixel_format)
        assert img.shape[:2] == (cam.height, cam.width)
        assert abs(f["timestamp_ns"] / 1e9 - time.time()) < 10
        if cam.pixel_format == "mono16":
            assert img.dtype == np.uint16 and img.max() > 255 and img.min() >= 20000
        if cam.pixel_format == "encoded":
            assert f["image_data"]["pixels"][:2] == b"\xff\xd8" and img.shape[2] == 3


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_fault_drop_stream(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), faults=Faults(drop_stream_after_s=0.4))
    for _ in range(2):  # dropped, reconnected, dropped again
        started = time.monotonic()
        with connect(rig.ws_url, max_size=2**25) as ws, pytest.raises(ConnectionClosed):
            while time.monotonic() - started < 3 * T:
                ws.recv(timeout=3 * T)
                ws.send("received")
        assert 0.35 <= time.monotonic() - started <= 1.5 * T
    rig.faults.drop_stream_after_s = None
    assert len(read_stream(rig.ws_url, 0.8)) >= 8
    assert rig.stats()["drops"] == 2


@pytest.mark.integration
def test_fault_never_settle(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), faults=Faults(never_settle=True))
    topic = f"{rig.cfg.topic_prefix}/entity_state/{PANTILT_ID}"
    with MqttProbe([topic]) as probe:
        time.sleep(0.8 * T)
        pans = [p["pan_deg_x100"] for _, p, _ in probe.on(topic, live=True)]
    assert len(pans) >= 5 and all(0 < abs(p) <= 4 for p in pans)
    assert all(a != b for a, b in itertools.pairwise(pans))
    assert rig.pose()["pan_deg_x100"] == 0 and not rig.pose()["moving"]


@pytest.mark.integration
def test_fault_silent_state(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), faults=Faults(silent_state={"acikgoz_lrf"}))
    prefix = rig.cfg.topic_prefix
    with MqttProbe([f"{prefix}/entity_state/+"]) as probe:
        time.sleep(0.5 * T)
        assert probe.on(f"{prefix}/entity_state/{PANTILT_ID}")
        assert not probe.on(f"{prefix}/entity_state/acikgoz_lrf")
        rig.faults.silent_state.add(PANTILT_ID)  # at runtime
        time.sleep(0.15)
        since = time.monotonic()
        time.sleep(0.5 * T)
        assert not probe.on(f"{prefix}/entity_state/{PANTILT_ID}", since=since)
        assert probe.on(f"{prefix}/entity_state/{RGB_ID}", since=since)


@pytest.mark.integration
def test_fault_malformed_every(make_rig: Callable[..., SimRig]) -> None:
    cams = {SWIR_ID: CameraSim("mono8", 32, 24, 20.0), LWIR_ID: CameraSim("mono16", 32, 24, 20.0)}
    rig = make_rig(cameras=cams, faults=Faults(malformed_every=2))
    messages = [m for _, m in read_stream(rig.ws_url, 0.8 * T)][:6]
    assert len(messages) == 6
    kinds: list[str] = []
    for msg in messages:
        try:
            frames = frames_of(msg)
        except Exception:
            kinds.append("not_msgpack")
            continue
        bad = []
        for f in frames:
            fmt = f["image_data"].get("pixel_format", cams[f["device_id"].strip()].pixel_format)
            if fmt not in BYTES_PER_PIXEL:
                bad.append("unknown_format")
            elif len(f["image_data"]["pixels"]) != 32 * 24 * BYTES_PER_PIXEL[fmt]:
                bad.append("byte_count")
        assert len(bad) <= 1 and len(frames) == 2  # a bad frame travels with a good one
        kinds.append(bad[0] if bad else "ok")
    assert kinds == ["ok", "not_msgpack", "ok", "byte_count", "ok", "unknown_format"]
    assert any(not s.valid for s in rig.sent_frames())


@pytest.mark.integration
def test_fault_stream_delay(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras={RGB_ID: CameraSim("encoded", 160, 90, 20.0)}, faults=Faults(stream_delay_s=0.25))
    messages = read_stream(rig.ws_url, 1.2 * T)
    assert 2 <= len(messages) <= 5
    times = [t for t, _ in messages]
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(times))
    indices = [f["frame_index"] for _, m in messages for f in frames_of(m)]
    assert all(b - a > 1 for a, b in itertools.pairwise(indices))


@pytest.mark.integration
def test_fault_mqtt_respond_off(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras(), start_delay_s=0.0, faults=Faults(mqtt_respond=False))
    prefix = rig.cfg.topic_prefix
    with MqttProbe([f"{prefix}/entity_response/+"]) as probe:
        payload = json.dumps(pan_command(500) | {"request_id": "quiet"})
        probe.client.publish(f"{prefix}/entity_command/{PANTILT_ID}", payload, qos=1)
        assert wait_until(lambda: rig.pose()["pan_deg_x100"] == 500, 2.0), "command not executed"
        time.sleep(0.3)
        assert probe.messages == []
    assert rig.commands_received()[-1]["answered"] is False


# -- lifecycle ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_start_fails_cleanly_without_broker() -> None:
    rig = SimRig(SimConfig(mqtt_port=1, http_port=0, ws_port=0, start_timeout_s=1.0, cameras={}))
    started = time.monotonic()
    with pytest.raises(SimStartError):
        rig.start()
    assert time.monotonic() - started < 5
    rig.stop()  # idempotent after a failed start


@pytest.mark.integration
def test_stop_is_idempotent_and_closes_ports(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(cameras=small_cameras())
    url = rig.http_url
    with SimRig(
        SimConfig(topic_prefix=rig.cfg.topic_prefix + "b", http_port=0, ws_port=0, cameras={})
    ) as other:
        assert other.ws_url != rig.ws_url
    other.stop()
    rig.stop()
    rig.stop()
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=pan_command(0), timeout=1)
