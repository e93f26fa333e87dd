"""Event capture, the pure parts (no broker, no rig): the ring of frames and its horizon, shared pool
buffers, the state ring, the trigger's checks, the ring against the memory cap in the configuration,
and a ring too big refused at start (application.py exits naming the numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from camera.frames import Frame
from camera.pool import FramePool, PoolBuffer
from camera.ring import PREFIX_BYTES, FrameRing
from rigcore.config import Config, ConfigError
from rigcore.config_events import EventsConfig, ring_budget_bytes, ring_problem
from rigcore.memory import MIB
from rigcore.state import StateSample
from service.events.states import StateRing
from service.events.trigger import Received, parse_trigger
from sessions.writer import CameraWriteOptions, SessionWriter, create_session_dir
from tests.conftest import ROOT

CAM, OTHER = "cameradevice_lwir_1", "cameradevice_rgb_1"
PAGE = 4096


def frame(cam: str, t: float, size: int = 1000, index: int = 0) -> Frame:
    pixels = b"\xff\xd8\xff" + bytes([index % 251]) * (size - 3)
    return Frame(cam, pixels, 10, 10, "encoded", None, index, 1_000_000.0 + t, t)


class Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[Frame, PoolBuffer | None]] = []

    def on_frame(self, frame: Frame, held: PoolBuffer | None = None) -> None:
        self.frames.append((frame, held))

    def on_rejection(self, rejection: Any, received_mono: float) -> None:
        pass


@pytest.fixture
def pool() -> Any:
    pool = FramePool(max_bytes=None, warm_s=0.0, min_warm_bytes=0, arena_bytes=16 * PAGE)
    pool.fill(4 * 16 * PAGE)
    yield pool
    pool.close()


def test_the_ring_keeps_its_seconds_in_pool_memory_and_lets_go_oldest_first(pool: FramePool) -> None:
    ring = FrameRing(pool)
    ring.configure([CAM], seconds=1.0, max_bytes=None, horizon_mono=0.0)
    for k in range(30):  # 10 fps for 3 s
        ring.on_frame(frame(CAM, k / 10, index=k))
        ring.on_frame(frame(OTHER, k / 10, index=k))  # not kept
    status = ring.status()["cameras"][CAM]
    assert status["frames"] == 11 and status["released"] == 19  # captured within 1 s of the newest
    assert ring.horizon([CAM]) == pytest.approx(1.8) and ring.horizon([OTHER]) == float("inf")
    assert pool.stats().in_use_bytes == 11 * 1000 == ring.bytes
    # An event attached from 2.5 s gets the frames held from then, each with its buffer, then new ones.
    sink = Sink()
    assert ring.attach(sink, 2.5) == 5
    ring.on_frame(frame(CAM, 3.0, index=30))
    ring.on_frame(frame(OTHER, 3.0, index=30))
    kept = [(f, b) for f, b in sink.frames if f.camera_id == CAM]
    assert [f.frame_index for f, _ in kept] == [25, 26, 27, 28, 29, 30]
    assert all(b is not None and len(f.pixels) == PREFIX_BYTES for f, b in kept)
    other = [(f, b) for f, b in sink.frames if f.camera_id == OTHER]
    assert len(other) == 1 and other[0][1] is None and len(other[0][0].pixels) == 1000
    ring.detach(sink)
    ring.clear()
    assert pool.stats().in_use_bytes == 0 and ring.bytes == 0


def test_a_buffer_shared_with_a_writer_outlives_the_ring(pool: FramePool) -> None:
    ring = FrameRing(pool)
    ring.configure([CAM], seconds=0.5, max_bytes=None, horizon_mono=0.0)
    sink = Sink()
    ring.attach(sink, 0.0)
    ring.on_frame(frame(CAM, 0.0, index=7))
    _, held = sink.frames[0]
    assert held is not None
    pool.retain(held)  # what SessionWriter.add(held=...) does
    ring.on_frame(frame(CAM, 1.0, index=8))  # the first is let go of by the ring
    assert ring.status()["cameras"][CAM]["released"] == 1
    assert bytes(held.view[3:5]) == bytes([7, 7]), "still held by the writer"
    assert pool.stats().in_use_bytes == 2000
    pool.release(held)
    assert pool.stats().in_use_bytes == 1000


def test_the_ring_stays_within_its_bytes_and_a_shorter_length_applies_at_once(pool: FramePool) -> None:
    ring = FrameRing(pool)
    ring.configure([CAM, OTHER], seconds=10.0, max_bytes=5000, horizon_mono=0.0)
    for k in range(10):
        ring.on_frame(frame(CAM, k / 10, index=k))
        ring.on_frame(frame(OTHER, k / 10 + 0.05, index=k))
    assert ring.bytes <= 5000 and ring.status()["released_for_bytes"] == 15
    assert ring.horizon([CAM, OTHER]) == pytest.approx(0.7)  # the newest frame let go of, either camera
    ring.configure([CAM], seconds=0.2, max_bytes=None, horizon_mono=0.0)
    assert set(ring.status()["cameras"]) == {CAM}


def test_an_events_writer_shares_the_rings_buffers_and_saves_them_bit_exact(
    pool: FramePool, tmp_path: Path
) -> None:
    ring = FrameRing(pool)
    ring.configure([CAM, OTHER], seconds=10.0, max_bytes=None, horizon_mono=0.0)
    rng = np.random.default_rng(3)
    raw = [rng.integers(0, 65535, (10, 12), dtype=np.uint16) for _ in range(3)]
    for k, arr in enumerate(raw):
        ring.on_frame(Frame(CAM, arr.astype("<u2").tobytes(), 12, 10, "mono16", None, k, 1e6 + k, float(k)))
        ring.on_frame(frame(OTHER, float(k), index=k))
    session_id, path = create_session_dir(tmp_path)
    with ThreadPoolExecutor(2) as executor:
        options = {CAM: CameraWriteOptions(image_format="fast"), OTHER: CameraWriteOptions()}
        writer = SessionWriter(path, session_id, options, executor, pool=pool)
        ring.attach(Taker(writer), 0.0)
        in_use = pool.stats().in_use_bytes
        manifest = writer.finish({})
    assert in_use == ring.bytes, "the writer shared the ring's buffers: nothing was copied"
    assert writer.warm_frames == 6
    frames = manifest.cameras
    for arr, entry in zip(raw, frames[CAM].frames, strict=True):
        assert np.array_equal(tifffile.imread(path / entry.file), arr)
    for k, entry in enumerate(frames[OTHER].frames):
        assert (path / entry.file).read_bytes() == frame(OTHER, float(k), index=k).pixels
    ring.clear()
    assert pool.stats().in_use_bytes == 0


class Taker:
    """A ring sink that hands every frame to a writer with its buffer (as the event's recorder does)."""

    def __init__(self, writer: SessionWriter) -> None:
        self.writer = writer

    def on_frame(self, frame: Frame, held: PoolBuffer | None = None) -> None:
        self.writer.add(frame, held=held)

    def on_rejection(self, rejection: Any, received_mono: float) -> None:
        pass


def test_without_warm_memory_frames_are_kept_as_they_came() -> None:
    ring = FrameRing(None)
    ring.configure([CAM], seconds=1.0, max_bytes=None, horizon_mono=0.0)
    sink = Sink()
    ring.attach(sink, 0.0)
    ring.on_frame(frame(CAM, 0.0))
    assert ring.cold_frames == 1 and sink.frames[0][1] is None and len(sink.frames[0][0].pixels) == 1000


def sample(dev: str, t: float, pan: int = 0) -> StateSample:
    return StateSample(dev, {"pan_deg_x100": pan}, t, 1_000_000.0 + t, False)


def test_the_state_ring_keeps_its_seconds_and_each_devices_value_before_them() -> None:
    states = StateRing(2.0)
    states.seed([sample("lrf", 0.0), sample("pt", 0.5, 100)])
    for k in range(8, 48):  # every 1/8 s from 1 s to 5.875 s
        states.on_state(sample("pt", k / 8, k))
    assert len(states) == 17  # 3.875 .. 5.875
    got = states.since(5.0)
    assert [s.device_id for s in got[:2]] == ["lrf", "pt"]  # each device's value before 5.0
    assert got[1].payload["pan_deg_x100"] == 39 and got[2].received_mono == 5.0
    states.resize(0.5)
    assert len(states) == 5


EVENTS = EventsConfig(enabled=True, pre_max_s=3.0, post_default_s=1.0, max_s=10.0)
GOT = Received("http", 2_000_000.0, 500.0)


def parse(body: Any) -> tuple[Any, list[dict[str, Any]]]:
    return parse_trigger(body, EVENTS, [CAM], [CAM, OTHER], GOT)


def test_a_trigger_takes_its_defaults_from_the_configuration() -> None:
    trigger, problems = parse({})
    assert not problems and trigger is not None
    assert (trigger.pre_s, trigger.post_s, trigger.cameras, trigger.at_mono) == (3.0, 1.0, (CAM,), 500.0)
    trigger, _ = parse({"at": GOT.at - 1.0, "label": "gate"})
    assert trigger is not None and trigger.pre_s == 2.0 and trigger.at_mono == 499.0  # what the ring holds
    assert trigger.label == "gate" and trigger.record().source == "http"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"pre_s": 4}, "pre_s", "more than 3 s (events.pre_max_s"),
        ({"pre_s": "2"}, "pre_s", "must be a number"),
        ({"post_s": -1}, "post_s", "0 or more"),
        ({"post_s": 9}, "post_s", "more than events.max_s"),
        ({"cameras": ["nope"]}, "cameras[0]", "unknown camera 'nope'"),
        ({"cameras": [OTHER]}, "cameras[0]", "not kept by the event ring"),
        ({"cameras": []}, "cameras", "non-empty array"),
        ({"at": GOT.at - 5}, "at", "before what the ring holds"),
        ({"at": GOT.at + 5}, "at", "in the future"),
        ({"at": GOT.at - 2, "pre_s": 2}, "pre_s", "reaches 4.0 s back"),
        ({"label": 5}, "label", "must be a string"),
        ({"when": 1}, "when", "unknown key"),
        ([1], "(body)", "must be a JSON object"),
    ],
)
def test_a_bad_trigger_is_refused_naming_the_field(body: Any, field: str, words: str) -> None:
    trigger, problems = parse(body)
    assert trigger is None and problems
    assert problems[0]["field"] == field and words in problems[0]["message"], problems


def test_the_ring_is_checked_against_the_memory_cap_with_the_numbers() -> None:
    events = EventsConfig(enabled=True, pre_max_s=10.0)
    assert ring_budget_bytes(None) is None and ring_budget_bytes(1024) == (1024 - 128) * MIB // 2
    assert ring_problem(events, 1024, {CAM: 40e6}, "measured") is None  # 420 MB in 448 MiB
    problem = ring_problem(events, 512, {CAM: 40e6}, "measured")
    assert problem is not None
    for words in ("needs 401 MiB", "measured 40.0 MB/s", "10.5 s", "memory_cap_mb 512 MiB allows it 192 MiB"):
        assert words in problem, problem
    assert "pre_max_s to 4.5 s or less" in problem and "memory_cap_mb to 930 MiB or more" in problem
    assert ring_problem(events, None, {CAM: 40e9}, "measured") is None  # no cap, no check


def test_a_configuration_whose_ring_cannot_fit_does_not_load() -> None:
    data = {
        "recording": {"memory_cap_mb": 256},
        "events": {"enabled": True, "expected_mb_s": {CAM: 50}},
    }
    with pytest.raises(ConfigError, match=r"events: the ring needs 501 MiB \(expected 50.0 MB/s"):
        Config.from_dict(data)
    data["events"]["pre_max_s"] = 2  # 125 MB in 96 MiB: still too much
    with pytest.raises(ConfigError, match=r"pre_max_s to 1\.5 s or less"):
        Config.from_dict(data)
    data["events"]["pre_max_s"] = 1.5
    assert Config.from_dict(data).events.ring_s == 2.0
    with pytest.raises(ConfigError, match=r"events.cameras: camera\(s\) 'x' not in cameras"):
        Config.from_dict({"events": {"cameras": ["x"]}})
    with pytest.raises(ConfigError, match="more than max_s"):
        Config.from_dict({"events": {"pre_max_s": 100, "max_s": 101}})


def test_a_ring_too_big_for_the_cap_is_refused_at_start_naming_the_numbers(tmp_path: Path) -> None:
    config = {
        "api": {"host": "127.0.0.1", "port": 0},
        "recording": {"memory_cap_mb": 300},
        "events": {"enabled": True, "pre_max_s": 20, "expected_mb_s": {CAM: 30, OTHER: 10}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, str(ROOT / "application.py"), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    for words in ("the ring needs 782 MiB", "40.0 MB/s", "memory_cap_mb 300 MiB allows it 112 MiB"):
        assert words in result.stderr, result.stderr
