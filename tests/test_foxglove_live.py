"""The live view in Foxglove (service.live, issue 23).

Integration tests connect a real Foxglove WebSocket client — the ``websockets`` package speaking the
protocol the SDK serves: JSON ``serverInfo`` and ``advertise``, a ``subscribe``, then binary message
frames (opcode 0x01, subscription id, log time, payload) — to the service's live server, and check
what it gets against the MCAP export's topics and schemas; a capture made while slow clients are
subscribed to everything passes the same frame-by-frame checks as tests/test_capture_time.py.
Unit tests cover the pure parts: the configuration's rule for hosts, the image messages, the job
events.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api import create_app
from camera.capture_clock import CaptureTime, TimeSource
from camera.frames import Frame
from rigcore.atomic import write_json_atomic
from rigcore.config import Config, ConfigError
from rigcore.config_foxglove import FoxgloveConfig, exposure_problem, is_loopback
from rigcore.config_policy import ConfigRefused, Place, plan_change
from rigcore.rig import RigLayout
from rigcore.state import StateSample
from service.capture import CaptureService
from service.live.images import image_message
from service.live.jobs import EVENT_SCHEMA, EVENTS, JobEvents
from service.live.rig import RigFeed
from service.status import JobPhase, JobStatus
from sessions.manifest import SessionManifest, SessionStatus
from sessions.mcap_export import file_descriptor_set
from sessions.mcap_rig import RIG_STATE_SCHEMA, rig_states
from sessions.state_log import StateLogInfo, StateRecord
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import pan_command, record_command, scaled
from tests.test_capture_time import true_checks
from tests.test_engine_cases import LWIR, RGB, SWIR, VNIR, check_folder, job_sessions

pytestmark = pytest.mark.solo  # rates and timings: alone (tests/solo.py)

integration = pytest.mark.integration

# The SDK 0.30 speaks the first: the same protocol as the second, renamed.
SUBPROTOCOLS = [Subprotocol("foxglove.sdk.v1"), Subprotocol("foxglove.websocket.v1")]
CAMERAS = (RGB, SWIR, LWIR, VNIR)  # the simulated rig streams all four
TOKEN = "s3cret-token"


# -- a Foxglove WebSocket client ------------------------------------------------------------------
@dataclass
class Received:
    """What one topic brought: a count, the newest payload and log time, every JSON message."""

    count: int = 0
    payload: bytes = b""
    log_ns: int = 0
    json: list[Any] = field(default_factory=list)


class LiveClient:
    """A Foxglove WebSocket client reading in a thread of its own; ``read_delay_s`` makes it slow
    (it sleeps that long after each message, so the server's queue for it fills)."""

    def __init__(self, url: str, read_delay_s: float = 0.0) -> None:
        self.ws: ClientConnection = connect(
            url,
            subprotocols=SUBPROTOCOLS,
            max_size=None,
            open_timeout=scaled(5),
            close_timeout=1,  # a slow client's closing handshake waits behind its backlog: don't
            legacy=True,  # the connection itself, not a context manager (the reader thread owns it)
        )
        self.read_delay_s = read_delay_s
        self.server_info: dict[str, Any] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.topics: dict[int, str] = {}  # subscription id -> topic
        self.received: defaultdict[str, Received] = defaultdict(Received)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        deadline = time.monotonic() + scaled(5)
        while not (self.server_info and self.channels) and time.monotonic() < deadline:
            self._on_text(json.loads(self.ws.recv(timeout=scaled(5))))

    def _on_text(self, message: dict[str, Any]) -> None:
        if message["op"] == "serverInfo":
            self.server_info = message
        elif message["op"] == "advertise":
            self.channels.update({c["id"]: c for c in message["channels"]})

    def by_topic(self) -> dict[str, dict[str, Any]]:
        return {c["topic"]: c for c in self.channels.values()}

    def subscribe_all(self) -> None:
        subs = [{"id": n, "channelId": cid} for n, cid in enumerate(sorted(self.channels))]
        self.topics = {s["id"]: self.channels[s["channelId"]]["topic"] for s in subs}
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
        self._thread = threading.Thread(target=self._read, name="foxglove test client", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            if isinstance(data, str):
                self._on_text(json.loads(data))
                continue
            if data[0] != 0x01:  # only message data matters here (0x02 would be the server's time)
                continue
            sub_id, log_ns = struct.unpack_from("<IQ", data, 1)
            topic = self.topics[sub_id]
            payload = bytes(data[13:])
            with self._lock:
                got = self.received[topic]
                got.count += 1
                got.payload, got.log_ns = payload, log_ns
                if self.channels_of(topic)["encoding"] == "json":
                    got.json.append(json.loads(payload))
                    del got.json[:-200]  # bounded: /rig/state comes tens of times a second
            if self.read_delay_s:
                time.sleep(self.read_delay_s)

    def channels_of(self, topic: str) -> dict[str, Any]:
        return self.by_topic()[topic]

    def got(self, topic: str) -> Received:
        with self._lock:
            r = self.received[topic]
            return Received(r.count, r.payload, r.log_ns, list(r.json))

    def wait_for(self, topics: list[str], timeout: float) -> dict[str, int]:
        """Until every topic brought a message; the counts (fails naming the silent topics)."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            counts = {t: self.got(t).count for t in topics}
            if all(counts.values()):
                return counts
            time.sleep(0.05)
        silent = [t for t in topics if not self.got(t).count]
        raise AssertionError(f"no message on {silent} in {timeout} s")

    def close(self) -> None:
        self._stop.set()
        self.ws.close()
        if self._thread is not None:
            self._thread.join(5)


@pytest.fixture
def clients() -> Iterator[Callable[..., LiveClient]]:
    made: list[LiveClient] = []

    def make(url: str, read_delay_s: float = 0.0) -> LiveClient:
        client = LiveClient(url, read_delay_s)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def live_url(service: CaptureService) -> str:
    status = service.status()["foxglove"]
    assert status["running"] and status["error"] is None, status
    url: str = status["url"]
    assert url.startswith("ws://127.0.0.1:")
    return url


def image_size(sim: SimRig, camera: str) -> tuple[int, int]:
    cam = sim.cfg.cameras[camera]
    return cam.width, cam.height


def check_channels(client: LiveClient, raw: bool) -> None:
    """The advertised channels are the MCAP export's topics with its schemas (same bytes)."""
    topics = client.by_topic()
    assert sorted(topics) == sorted(["/rig/state", "/tf", "/rig/jobs", *(f"/{c}/image" for c in CAMERAS)])
    state = topics["/rig/state"]
    assert (state["encoding"], state["schemaName"]) == ("json", "rigcapture.RigState")
    assert json.loads(state["schema"]) == RIG_STATE_SCHEMA
    assert json.loads(topics["/rig/jobs"]["schema"]) == EVENT_SCHEMA
    tf = topics["/tf"]
    assert (tf["encoding"], tf["schemaName"]) == ("protobuf", "foxglove.FrameTransforms")
    assert base64.b64decode(tf["schema"]) == file_descriptor_set(FrameTransforms)
    for cam in CAMERAS:
        channel = topics[f"/{cam}/image"]
        kind = RawImage if raw and cam in (SWIR, LWIR) else CompressedImage
        assert channel["schemaName"] == kind.DESCRIPTOR.full_name, cam
        assert base64.b64decode(channel["schema"]) == file_descriptor_set(kind)
        assert channel["metadata"] == {"camera_id": cam}


def check_state_and_tf(client: LiveClient) -> None:
    state = client.got("/rig/state").json[-1]
    assert set(state) == set(RIG_STATE_SCHEMA["properties"])
    assert state["source"] == "telemetry" and state["pan_deg"] is not None
    tf = FrameTransforms.FromString(client.got("/tf").payload)
    links = [(t.parent_frame_id, t.child_frame_id) for t in tf.transforms]
    assert links[:2] == [("base", "pan"), ("pan", "tilt")]
    assert sorted(child for parent, child in links[2:]) == sorted(CAMERAS)


def check_compressed(client: LiveClient, sim: SimRig, camera: str) -> None:
    got = client.got(f"/{camera}/image")
    message = CompressedImage.FromString(got.payload)
    assert message.frame_id == camera and message.format == "jpeg"
    image = cv2.imdecode(np.frombuffer(message.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and (image.shape[1], image.shape[0]) == image_size(sim, camera)
    # Logged at capture time: within seconds of now, and the image's stamp is the camera's.
    assert abs(got.log_ns / 1e9 - time.time()) < scaled(10)
    assert message.timestamp.ToNanoseconds() > 0


def check_raw(client: LiveClient, sim: SimRig, camera: str, encoding: str, depth: int) -> None:
    message = RawImage.FromString(client.got(f"/{camera}/image").payload)
    width, height = image_size(sim, camera)
    assert (message.encoding, message.width, message.height) == (encoding, width, height)
    assert message.step == width * depth and len(message.data) == width * height * depth


# -- integration -----------------------------------------------------------------------------------
@integration
def test_a_foxglove_client_gets_the_rig_its_cameras_and_the_job_events(
    sim: SimRig, start_service: Callable[..., CaptureService], clients: Callable[..., LiveClient]
) -> None:
    service = start_service("mqtt", foxglove={"enabled": True, "port": 0})
    client = clients(live_url(service))
    assert client.server_info["name"] == "rigcapture"
    check_channels(client, raw=False)
    client.subscribe_all()
    client.wait_for(["/rig/state", "/tf", *(f"/{c}/image" for c in CAMERAS)], timeout=10)
    check_state_and_tf(client)
    for cam in CAMERAS:
        check_compressed(client, sim, cam)
    assert service.status()["foxglove"]["clients"] == 1
    job = (
        create_app(service)
        .test_client()
        .post("/process-request", json={"requests": [pan_command(2000), record_command(1.0, SWIR, RGB)]})
        .get_json()
    )
    assert job["status"] == "succeeded", job
    [(summary, _, _)] = job_sessions(job, 1)
    deadline = time.monotonic() + scaled(5)
    while "job_finished" not in [e["event"] for e in client.got("/rig/jobs").json]:
        assert time.monotonic() < deadline, client.got("/rig/jobs").json
        time.sleep(0.05)
    events = client.got("/rig/jobs").json
    names = [e["event"] for e in events]
    assert names == list(EVENTS)  # each of the schema's events, once, in order
    assert {e["job_id"] for e in events} == {job["job_id"]}
    saved = events[names.index("session_saved")]
    assert saved["session_id"] == summary["session_id"] and saved["session_status"] == "complete"
    assert events[-1]["status"] == "succeeded"


@integration
def test_a_capture_with_two_slow_raw_clients_subscribed_to_everything_loses_nothing(
    sim_config: SimConfig, request: pytest.FixtureRequest, clients: Callable[..., LiveClient]
) -> None:
    """Two clients that read slowly (0.2 s per message) hold everything at full depth while a batch
    records: the recording passes the frame-by-frame checks of tests/test_capture_time.py."""
    sim: SimRig = request.getfixturevalue("sim")
    service: CaptureService = request.getfixturevalue("start_service")(
        "mqtt", foxglove={"enabled": True, "port": 0, "image": "raw", "max_fps": 10}
    )
    url = live_url(service)
    slow = [clients(url, read_delay_s=0.2) for _ in range(2)]
    for client in slow:
        check_channels(client, raw=True)
        client.subscribe_all()
    for client in slow:
        client.wait_for([f"/{SWIR}/image", f"/{LWIR}/image"], timeout=10)
    requests = [pan_command(-3000), record_command(2.0, SWIR, LWIR, RGB)]
    job = create_app(service).test_client().post("/process-request", json={"requests": requests}).get_json()
    assert job["status"] == "succeeded", job
    [(_, path, manifest)] = job_sessions(job, 1)
    assert manifest["status"] == "complete", manifest["problems"]
    for cam in (SWIR, LWIR, RGB):
        true_checks(sim, manifest, cam, pan=-3000)
    check_folder(service, path, manifest)
    for client in slow:
        check_raw(client, sim, SWIR, "mono8", 1)
        check_raw(client, sim, LWIR, "mono16", 2)
    assert service.status()["foxglove"]["clients"] == 2


@pytest.fixture
def with_file(sim: SimRig, make_config: Callable[..., Config], tmp_path: Path) -> Iterator[CaptureService]:
    """A service started from a config.json with a token (PUT /config needs the file)."""
    config = make_config("mqtt", api={"token": TOKEN})
    path = tmp_path / "config.json"
    write_json_atomic(path, config.to_json())
    service = CaptureService(config, base_dir=tmp_path, config_path=path)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@integration
def test_put_config_restarts_only_the_live_server_and_refuses_an_open_host_with_a_token(
    with_file: CaptureService, clients: Callable[..., LiveClient]
) -> None:
    api = create_app(with_file).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert with_file.status()["foxglove"]["running"] is False
    resp = api.put("/config", json={"foxglove": {"enabled": True, "port": 0}}, headers=auth)
    assert resp.status_code == 200 and resp.get_json()["restart_required"] == [], resp.get_json()
    first = live_url(with_file)
    client = clients(first)
    assert len(client.channels) == len(CAMERAS) + 3
    resp = api.put("/config", json={"foxglove": {"max_fps": 5}}, headers=auth)
    assert resp.status_code == 200 and resp.get_json()["restart_required"] == []
    # A new server (new context): the same channels once each, nothing left of the first one.
    again = clients(live_url(with_file))
    assert sorted(again.by_topic()) == sorted(client.by_topic()) and len(again.channels) == len(CAMERAS) + 3
    before = with_file.config_path.read_bytes() if with_file.config_path else b""
    resp = api.put("/config", json={"foxglove": {"host": "0.0.0.0"}}, headers=auth)
    body = resp.get_json()
    assert resp.status_code == 400 and "foxglove.host" in [d["field"] for d in body["details"]], body
    assert "SSH tunnel" in body["error"]
    resp = api.put("/config", json={"foxglove": {"allow_unauthenticated": True}}, headers=auth)
    assert resp.status_code == 403 and "foxglove.allow_unauthenticated" in resp.get_json()["error"]
    assert with_file.config_path is not None and with_file.config_path.read_bytes() == before
    assert with_file.config.foxglove.host == "127.0.0.1"
    resp = api.put("/config", json={"foxglove": {"enabled": False}}, headers=auth)
    assert resp.status_code == 200
    assert with_file.status()["foxglove"] == {**with_file.status()["foxglove"], "running": False, "url": None}


# -- unit: the rule for hosts ----------------------------------------------------------------------
def test_a_non_loopback_host_with_a_token_is_refused_at_start_naming_the_key() -> None:
    open_host = {"enabled": True, "host": "0.0.0.0"}
    with pytest.raises(ConfigError, match=r"foxglove\.host: '0\.0\.0\.0' is not a loopback address"):
        Config.from_dict({"api": {"token": TOKEN}, "foxglove": open_host})
    # Allowed in the file, or without a token (the API is open then too), or while disabled.
    assert Config.from_dict(
        {"api": {"token": TOKEN}, "foxglove": {**open_host, "allow_unauthenticated": True}}
    )
    assert Config.from_dict({"foxglove": open_host})
    assert Config.from_dict({"api": {"token": TOKEN}, "foxglove": {**open_host, "enabled": False}})
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
        assert exposure_problem(FoxgloveConfig(enabled=True, host=host), TOKEN) is None
    for host in ("0.0.0.0", "::", "192.168.1.20", "rig-pc", ""):
        assert not is_loopback(host), host


def test_put_may_not_open_the_host_with_a_token_nor_set_allow_unauthenticated(tmp_path: Path) -> None:
    current = Config.from_dict({"api": {"token": TOKEN}})
    config_file = (tmp_path / "config.json").resolve()
    write_json_atomic(config_file, current.to_json())
    place = Place(config_file, tmp_path, current.resolve(tmp_path))
    with pytest.raises(ConfigRefused) as info:
        plan_change(current, {"foxglove": {"enabled": True, "host": "0.0.0.0"}}, place)
    assert info.value.status == 400 and info.value.details[0]["field"] == "foxglove.host"
    with pytest.raises(ConfigRefused) as info:
        plan_change(current, {"foxglove": {"host": "0.0.0.0", "allow_unauthenticated": True}}, place)
    assert info.value.status == 403
    assert plan_change(current, {"foxglove": {"enabled": True, "max_fps": 5}}, place).foxglove.max_fps == 5
    with pytest.raises(ConfigRefused, match=r"foxglove\.max_fps"):
        plan_change(current, {"foxglove": {"max_fps": 31}}, place)


# -- unit: image messages ----------------------------------------------------------------------------
def frame(pixel_format: str, pixels: bytes, width: int, height: int, source: TimeSource) -> Frame:
    capture = CaptureTime(mono=100.0, at=1_700_000_000.5, source=source)
    return Frame(
        "cam", pixels, width, height, pixel_format, 1_700_000_000_400_000_000, 7, 1.7e9 + 1, 101.0, capture
    )


@pytest.mark.parametrize(
    ("pixel_format", "dtype", "channels", "encoding"),
    [
        ("mono8", np.uint8, 1, "mono8"),
        ("mono16", "<u2", 1, "mono16"),
        ("rgb8", np.uint8, 3, "rgb8"),
        ("bgr8", np.uint8, 3, "bgr8"),
    ],
)
def test_raw_frames_go_out_raw_at_their_depth_or_as_a_jpeg_of_their_display_copy(
    pixel_format: str, dtype: Any, channels: int, encoding: str
) -> None:
    shape = (48, 64, channels) if channels > 1 else (48, 64)
    arr = (np.arange(np.prod(shape)) % 251).astype(dtype).reshape(shape)
    f = frame(pixel_format, arr.tobytes(), 64, 48, TimeSource.STAMP)
    raw = RawImage.FromString(image_message(f, "raw", None))
    assert (raw.encoding, raw.width, raw.height, raw.step) == (encoding, 64, 48, 64 * arr.itemsize * channels)
    assert raw.data == f.pixels and raw.frame_id == "cam"
    assert raw.timestamp.ToNanoseconds() == f.timestamp_ns  # a trusted camera clock: its own stamp
    jpeg = CompressedImage.FromString(image_message(f, "compressed", None))
    decoded = cv2.imdecode(np.frombuffer(jpeg.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert jpeg.format == "jpeg" and decoded is not None and decoded.shape[:2] == (48, 64)


def test_encoded_frames_pass_through_and_untrusted_stamps_give_the_capture_time() -> None:
    _, png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    f = frame("encoded", bytes(png), 8, 8, TimeSource.FALLBACK)
    for mode in ("raw", "compressed"):
        message = CompressedImage.FromString(image_message(f, mode, None))
        assert message.format == "png" and message.data == f.pixels
        assert message.timestamp.ToNanoseconds() == round(f.captured_at * 1e9)


# -- unit: job events --------------------------------------------------------------------------------
@dataclass
class FakeJob:
    id: str = "job-1"
    status: JobStatus = JobStatus.QUEUED
    phase: JobPhase = JobPhase.QUEUED
    sessions: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    scan: Any = None


def test_job_events_follow_the_phases_and_name_the_sessions() -> None:
    events, job, names = JobEvents(), FakeJob(), []
    steps: list[tuple[JobStatus, JobPhase, int]] = [
        (JobStatus.RUNNING, JobPhase.COMMANDING, 0),
        (JobStatus.RUNNING, JobPhase.SETTLING, 0),
        (JobStatus.RUNNING, JobPhase.RECORDING, 0),
        (JobStatus.RUNNING, JobPhase.RECORDING, 0),  # progress only: nothing new
        (JobStatus.RUNNING, JobPhase.SAVING, 0),
        (JobStatus.RUNNING, JobPhase.SAVING, 1),
        (JobStatus.RUNNING, JobPhase.SETTLING, 1),
        (JobStatus.FAILED, JobPhase.DONE, 1),  # the second settle timed out
    ]
    for status, phase, sessions in steps:
        job.status, job.phase = status, phase
        job.sessions = [{"session_id": f"s{i}", "status": "complete"} for i in range(sessions)]
        job.error = {"message": "settle timeout"} if status.finished else None
        names += [e["event"] for e in events.changed(job, 1.0)]
    assert names == [
        "job_started",
        "settling",
        "settled",
        "recording",
        "saving",
        "session_saved",
        "settling",
        "job_finished",
    ]
    assert Counter(names)["session_saved"] == 1
    cancelled_in_queue = FakeJob(id="job-2", status=JobStatus.CANCELLED, phase=JobPhase.DONE)
    assert [e["event"] for e in events.changed(cancelled_in_queue, 2.0)] == ["job_finished"]


# -- unit: /rig/state and /tf ------------------------------------------------------------------------
@dataclass
class FakeChannel:
    sinks: bool = True
    logged: list[tuple[Any, int | None]] = field(default_factory=list)

    def has_sinks(self) -> bool:
        return self.sinks

    def log(self, msg: Any, *, log_time: int | None = None) -> None:
        self.logged.append((msg, log_time))


def test_rig_state_is_the_exports_message_of_the_newest_samples() -> None:
    config = Config.from_dict({})
    layout = RigLayout.from_config(config)
    state, tf = FakeChannel(), FakeChannel()
    feed = RigFeed(layout, list(config.cameras), state, tf)
    payloads: list[tuple[str, dict[str, Any]]] = [
        ("acikgoz_pantilt", {"pan_deg_x100": 4500, "tilt_deg_x100": -1000}),
        ("acikgoz_lrf", {"measured_distance_meters": 12.5}),
        ("cameradevice_rgb_1", {"zoom_value": 3.0}),
        ("acikgoz_pantilt", {"pan_deg_x100": 4600, "tilt_deg_x100": -1000}),
        ("some_other_device", {"x": 1}),  # no part of the pose: nothing logged
    ]
    samples = [
        StateSample(dev, payload, 100.0 + n, 1.7e9 + n, False) for n, (dev, payload) in enumerate(payloads)
    ]
    for sample in samples:
        feed.on_sample(sample)
    records = [
        StateRecord(device_id=s.device_id, received_at=s.received_at, values=v)
        for s in samples
        if (v := layout.state_values(s)) is not None
    ]
    # What a session holding every one of these samples would export, message for message.
    manifest = SessionManifest(
        session_id="s", status=SessionStatus.COMPLETE, state_log=StateLogInfo(samples=4)
    )
    assert [m for m, _ in state.logged] == rig_states(manifest, records)
    assert [t for _, t in state.logged] == [round(r.received_at * 1e9) for r in records]
    last = FrameTransforms.FromString(tf.logged[-1][0])
    assert len(tf.logged) == 2 and last.transforms[0].child_frame_id == "pan"
    assert len(last.transforms) == 2 + len(config.cameras)
    # No subscriber: nothing is built, but the newest samples are kept for the first one.
    quiet = RigFeed(layout, list(config.cameras), FakeChannel(sinks=False), FakeChannel(sinks=False))
    for sample in samples:
        quiet.on_sample(sample)
    assert quiet.state_now() == state.logged[-1][0]
