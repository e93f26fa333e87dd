"""The simulated rig's hardware timing options against real peers (Mosquitto on 127.0.0.1:1883,
WebSocket on loopback): the send queue, the pipeline delay, and camera clocks (offset, drift, no
stamps). Every option is off by default; tests/test_simulator.py covers the default behaviour.

Delays are measured as (client receive time - capture stamp) with both on this machine's epoch
clock, so they include loopback and decoding time (milliseconds)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from websockets.sync.client import connect

from simulator import CameraSim, SentFrame, SimConfig, SimRig
from simulator.__main__ import _parser, config_from_args
from simulator.config import LWIR_ID, RGB_ID, SWIR_ID, VNIR_ID
from simulator.frames import CapturedFrame, build_message
from simulator.stream import SendQueue, StreamStats
from tests.test_simulator import T, frames_of, pan_command, small_cameras, wait_until

pytestmark = pytest.mark.solo  # rates and timings: alone (tests/solo.py)

Received = tuple[float, dict[str, Any]]  # (epoch receive time, frame map)


def read_frames(
    url: str,
    duration: float,
    ack_pause: Callable[[float], float] = lambda elapsed: 0.0,
    until: Callable[[list[Received]], bool] | None = None,
) -> list[Received]:
    """Every frame received within ``duration`` seconds with its epoch arrival time. Before each ack
    the reader sleeps ``ack_pause(seconds since it connected)``; it stops early once ``until`` holds."""
    out: list[Received] = []
    with connect(url, max_size=2**25, open_timeout=5 * T) as ws:
        opened = time.monotonic()
        deadline = opened + duration
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = ws.recv(timeout=left)
            except TimeoutError:
                break
            arrived = time.time()
            out.extend((arrived, f) for f in frames_of(msg))
            if until is not None and until(out):
                break
            pause = ack_pause(time.monotonic() - opened)
            if pause > 0:
                time.sleep(pause)
            ws.send("received")
    return out


def cam_of(frame: dict[str, Any]) -> str:
    return str(frame["device_id"]).strip()


def lag_s(received: Received) -> float:
    """Receive time minus the frame's stamp, in seconds."""
    arrived, frame = received
    return arrived - int(frame["timestamp_ns"]) / 1e9


def sent_by_key(rig: SimRig) -> dict[tuple[str, int], SentFrame]:
    return {(s.camera_id, s.frame_index): s for s in rig.sent_frames()}


# -- pure: configuration, CLI, the queue ----------------------------------------------------------


def test_timing_options_are_off_by_default_and_validated() -> None:
    cfg = SimConfig()
    assert (cfg.send_queue, cfg.send_queue_max_frames, cfg.pipeline_delay_s) == (False, 600, 0.0)
    cam = CameraSim("mono8", 32, 32, 10.0)
    assert (cam.pipeline_delay_s, cam.clock_offset_s, cam.clock_drift_ppm, cam.send_timestamps) == (
        0.0,
        0.0,
        0.0,
        True,
    )
    bad_cameras: list[dict[str, Any]] = [
        {"pipeline_delay_s": -0.1},
        {"pipeline_delay_s": math.inf},
        {"pipeline_delay_s": math.nan},
        {"clock_offset_s": math.nan},
        {"clock_offset_s": -math.inf},
        {"clock_drift_ppm": math.inf},
        {"clock_drift_ppm": -1e6},
    ]
    for kw in bad_cameras:
        with pytest.raises(ValueError, match=next(iter(kw))):
            CameraSim("mono8", 32, 32, 10.0, **kw)
    with pytest.raises(ValueError, match="send_queue_max_frames"):
        SimConfig(send_queue_max_frames=0)
    with pytest.raises(ValueError, match="pipeline_delay_s"):
        SimConfig(pipeline_delay_s=-1.0)
    # A camera's own delay wins; 0 means "the rig-wide one".
    cams = {RGB_ID: CameraSim("mono8", 32, 32, 10.0, pipeline_delay_s=0.2), SWIR_ID: cam}
    mixed = SimConfig(cameras=cams, pipeline_delay_s=0.5)
    assert (mixed.pipeline_delay_of(RGB_ID), mixed.pipeline_delay_of(SWIR_ID)) == (0.2, 0.5)


def test_cli_timing_flags() -> None:
    args = _parser().parse_args(
        [
            "--send-queue",
            "--send-queue-max-frames",
            "50",
            "--pipeline-delay",
            "0.5",
            "--rgb-pipeline-delay",
            "1.5",
            "--swir-clock-offset",
            "10",
            "--lwir-clock-drift-ppm",
            "100",
            "--vnir-no-timestamps",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.send_queue, cfg.send_queue_max_frames, cfg.pipeline_delay_s) == (True, 50, 0.5)
    assert cfg.pipeline_delay_of(RGB_ID) == 1.5 and cfg.pipeline_delay_of(SWIR_ID) == 0.5
    assert cfg.cameras[SWIR_ID].clock_offset_s == 10.0 and cfg.cameras[RGB_ID].clock_offset_s == 0.0
    assert cfg.cameras[LWIR_ID].clock_drift_ppm == 100.0
    assert [cid for cid, c in cfg.cameras.items() if not c.send_timestamps] == [VNIR_ID]
    # No flags: today's behaviour.
    plain = config_from_args(_parser().parse_args([]))
    assert not plain.send_queue and plain.pipeline_delay_s == 0.0
    assert all(
        c == CameraSim(c.pixel_format, c.width, c.height, c.fps, c.zoom_device, c.zoom_style)
        for c in plain.cameras.values()
    )
    with pytest.raises(ValueError):
        config_from_args(_parser().parse_args(["--rgb-pipeline-delay", "-1"]))


def test_send_queue_order_and_drop_oldest_policy() -> None:
    def frame(cid: str, idx: int, captured_ns: int) -> CapturedFrame:
        return CapturedFrame(cid, idx, captured_ns, "mono8", 4, 4, bytes(16), {}, captured_ns)

    stats = StreamStats()
    queue = SendQueue(7, [RGB_ID, SWIR_ID], 3, stats)
    queue.push([frame(RGB_ID, 0, 100), frame(SWIR_ID, 0, 100)])
    queue.push([frame(RGB_ID, 1, 200)])
    queue.push([frame(SWIR_ID, 1, 150)])  # released late (a longer pipeline delay), captured earlier
    for i in range(2, 6):
        queue.push([frame(RGB_ID, i, 100 * (i + 1))])
    # RGB held at most 3: its oldest three (0, 1, 2) were dropped and counted.
    assert (stats.frames_skipped, stats.queue_overflow_drops) == (3, 3)
    assert stats.queue_depth == {7: {RGB_ID: 3, SWIR_ID: 2}} and stats.queue_depth_max[RGB_ID] == 3
    assert queue.ready.is_set() and len(queue) == 5
    taken = [(f.camera_id, f.frame_index) for f in queue.take(3) + queue.take(3)]
    assert taken == [(SWIR_ID, 0), (SWIR_ID, 1), (RGB_ID, 3), (RGB_ID, 4), (RGB_ID, 5)]
    assert not queue.ready.is_set() and len(queue) == 0 and queue.take(3) == []
    queue.close()
    assert stats.queue_depth == {} and stats.queue_depth_max == {RGB_ID: 3, SWIR_ID: 2}


def test_frames_without_stamps_have_no_timestamp_key() -> None:
    stamped = CapturedFrame(RGB_ID, 2, 5, "mono8", 4, 4, bytes(16), {}, 1)
    bare = CapturedFrame(RGB_ID, 3, None, "mono8", 4, 4, bytes(16), {}, 1)
    first, second = frames_of(build_message([stamped, bare], 1, None)[0])
    assert first["timestamp_ns"] == 5 and "timestamp_ns" not in second
    assert (first["frame_index"], second["frame_index"]) == (2, 3)


# -- the pipeline delay ---------------------------------------------------------------------------


@pytest.mark.integration
def test_pipeline_delay_holds_frames_back_from_capture(make_rig: Callable[..., SimRig]) -> None:
    # Rig-wide 0.5 s; LWIR has its own 0.2 s. No send queue: each camera's newest available frame.
    cams = small_cameras(fps=15.0) | {LWIR_ID: CameraSim("mono16", 64, 48, 10.0, pipeline_delay_s=0.2)}
    rig = make_rig(cameras=cams, pipeline_delay_s=0.5)
    connected = time.time()
    got = read_frames(rig.ws_url, 1.6 * T)
    first_by_cam = {cid: min(t for t, f in got if cam_of(f) == cid) for cid in cams}
    assert first_by_cam[LWIR_ID] - connected >= 0.2 and first_by_cam[RGB_ID] - connected >= 0.5
    sent = sent_by_key(rig)
    for cid in cams:
        frames = [r for r in got if cam_of(r[1]) == cid]
        lo, hi = (0.18, 0.5) if cid == LWIR_ID else (0.45, 1.0)
        lags = [lag_s(r) for r in frames]
        assert len(frames) >= 0.6 * cams[cid].fps and all(lo <= x < hi for x in lags), (cid, lags)
        indices = [f["frame_index"] for _, f in frames]
        assert indices == sorted(set(indices)), f"{cid}: out of order or twice: {indices}"
        # Without a send queue a camera's newest frame replaces one not yet sent: a reader held up (a
        # loaded machine) may miss some, but never one the rig sent.
        missing = set(range(indices[0], indices[-1] + 1)) - set(indices)
        lost = sorted(i for i in missing if (cid, i) in sent)
        assert not lost, f"{cid}: sent but never received: {lost}"
        for _, f in frames:
            truth = sent[(cid, f["frame_index"])]
            assert truth.timestamp_ns == truth.captured_ns == f["timestamp_ns"]
            held = truth.available_at_epoch - truth.captured_ns / 1e9
            assert lo <= held < hi and truth.sent_at_epoch >= truth.available_at_epoch


@pytest.mark.integration
def test_pose_of_a_delayed_frame_is_the_pose_at_capture(make_rig: Callable[..., SimRig]) -> None:
    # Pan at 60 °/s with a 0.5 s pipeline delay: a frame's pose at capture and the pose when it was
    # sent differ by ~30°. SentFrame.pose must be the former.
    rig = make_rig(
        cameras={RGB_ID: CameraSim("mono8", 64, 48, 20.0)}, pipeline_delay_s=0.5, start_delay_s=0.0
    )
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.time(), rig.pose()["pan_deg_x100"]))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert requests.post(rig.http_url, json=pan_command(9000), timeout=5).status_code == 200
        read_frames(rig.ws_url, 1.6 * T)
    finally:
        stop.set()
        sampler.join()

    def pan_at(epoch: float) -> float:
        before = max((s for s in samples if s[0] <= epoch), default=samples[0])
        return before[1]

    def pan_of(s: SentFrame) -> int:
        pan = s.pose["pan_deg_x100"]
        assert isinstance(pan, int)
        return pan

    moving = [s for s in rig.sent_frames() if 500 < pan_of(s) < 8500]
    assert len(moving) >= 5
    for s in moving:
        pan = pan_of(s)
        assert abs(pan - pan_at(s.captured_ns / 1e9)) <= 60, "pose is not the pose at capture"
        assert abs(pan - pan_at(s.sent_at_epoch)) >= 1500, "pose looks like the pose at send time"


# -- the send queue -------------------------------------------------------------------------------


@pytest.mark.integration
def test_send_queue_delivers_every_frame_later_and_later_to_a_slow_reader(
    make_rig: Callable[..., SimRig],
) -> None:
    # 2 cameras at 20 fps, 2 frames a message, and a reader that takes 0.2 s per ack for 2 s
    # (10 frames/s of 40): the backlog grows, then drains once the reader is fast. A 0.2 s pipeline
    # delay on top: the queue holds frames once released.
    rig = make_rig(
        cameras=small_cameras(fps=20.0), frames_per_message=2, send_queue=True, pipeline_delay_s=0.2
    )
    slow_s = 2.0
    depths: list[dict[str, Any]] = []

    def ack_pause(elapsed: float) -> float:
        if elapsed < slow_s:
            depths.append(rig.stats()["queue_depth"])
            return 0.2
        return 0.0

    def caught_up(got: list[Received]) -> bool:
        return time.time() - got[0][0] > slow_s + 0.5 and lag_s(got[-1]) < 0.35

    got = read_frames(rig.ws_url, 6.0 * T, ack_pause, until=caught_up)
    assert lag_s(got[-1]) < 0.35, "the reader never caught up"
    # Every released frame arrived, in capture order across cameras, with no frame_index gap.
    for cid in (RGB_ID, SWIR_ID):
        indices = [f["frame_index"] for _, f in got if cam_of(f) == cid]
        assert indices == list(range(indices[0], indices[0] + len(indices))), f"{cid}: gaps {indices}"
    stamps = [f["timestamp_ns"] for _, f in got]
    assert stamps == sorted(stamps)
    # The delay grew while the reader was slow: ~1 s behind capture after 2 s (30 frames/s backlog).
    lags = [lag_s(r) for r in got]
    assert all(x >= 0.18 for x in lags)
    slow = [x for (t, _), x in zip(got, lags, strict=True) if t - got[0][0] < slow_s]
    assert slow[0] < 0.4 and max(slow) > slow[0] + 0.8, slow
    stats = rig.stats()
    assert stats["frames_skipped"] == stats["queue_overflow_drops"] == 0
    assert min(stats["queue_depth_max"][c] for c in (RGB_ID, SWIR_ID)) >= 15
    assert any(d and min(next(iter(d.values())).values()) >= 10 for d in depths), depths
    assert wait_until(lambda: rig.stats()["queue_depth"] == {}, 2.0), "closed connection still listed"


@pytest.mark.integration
def test_send_queue_bound_drops_the_oldest(make_rig: Callable[..., SimRig]) -> None:
    rig = make_rig(
        cameras={RGB_ID: CameraSim("encoded", 160, 90, 20.0)},
        frames_per_message=1,
        send_queue=True,
        send_queue_max_frames=5,
    )
    got = read_frames(rig.ws_url, 1.6 * T, ack_pause=lambda _: 0.2)
    stats = rig.stats()
    assert stats["queue_overflow_drops"] > 10 and stats["frames_skipped"] == stats["queue_overflow_drops"]
    assert stats["queue_depth_max"] == {RGB_ID: 5}
    # Dropping the oldest keeps the delay bounded by the queue (5 frames at 20 fps + one ack wait);
    # dropping the newest would let it grow.
    lags = [lag_s(r) for r in got]
    assert len(got) >= 5 and max(lags) < 0.6, lags
    indices = [f["frame_index"] for _, f in got]
    assert indices == sorted(set(indices)) and indices[-1] - indices[0] > len(indices)  # gaps


# -- camera clocks --------------------------------------------------------------------------------


@pytest.mark.integration
def test_clock_offset_stamps_ahead_of_true_capture(make_rig: Callable[..., SimRig]) -> None:
    cams = {
        RGB_ID: CameraSim("mono8", 64, 48, 15.0, clock_offset_s=10.0),
        SWIR_ID: CameraSim("mono8", 64, 48, 15.0),
    }
    rig = make_rig(cameras=cams)
    got = read_frames(rig.ws_url, 0.8 * T)
    sent = sent_by_key(rig)
    for cid, offset in ((RGB_ID, 10.0), (SWIR_ID, 0.0)):
        frames = [r for r in got if cam_of(r[1]) == cid]
        assert len(frames) >= 5
        for arrived, f in frames:
            assert -offset - 0.1 < arrived - f["timestamp_ns"] / 1e9 <= -offset + 0.01, (cid, f)
            truth = sent[(cid, f["frame_index"])]
            assert truth.timestamp_ns == f["timestamp_ns"] == truth.captured_ns + round(offset * 1e9)
            assert 0 <= arrived - truth.captured_ns / 1e9 < 0.1


@pytest.mark.integration
def test_camera_without_timestamps(make_rig: Callable[..., SimRig]) -> None:
    cams = {
        RGB_ID: CameraSim("mono8", 64, 48, 15.0, send_timestamps=False),
        SWIR_ID: CameraSim("mono8", 64, 48, 15.0),
    }
    rig = make_rig(cameras=cams)
    got = read_frames(rig.ws_url, 0.6 * T)
    bare = [f for _, f in got if cam_of(f) == RGB_ID]
    assert len(bare) >= 4 and all("timestamp_ns" not in f and "frame_index" in f for f in bare)
    assert all("timestamp_ns" in f for _, f in got if cam_of(f) == SWIR_ID)
    truth = [s for s in rig.sent_frames() if s.camera_id == RGB_ID]
    assert truth and all(s.timestamp_ns is None for s in truth)
    assert all(abs(s.captured_ns / 1e9 - s.sent_at_epoch) < 0.1 for s in truth)


@pytest.mark.integration
def test_clock_drift_grows_the_offset(make_rig: Callable[..., SimRig]) -> None:
    # 1e5 ppm: the clock gains 0.1 s a second from rig start.
    rig = make_rig(cameras={RGB_ID: CameraSim("mono8", 64, 48, 20.0, clock_drift_ppm=1e5)})
    got = read_frames(rig.ws_url, 1.2 * T)
    assert len(got) >= 15
    ahead = [-lag_s(r) for r in got]  # how far the stamp is ahead of arrival
    assert ahead[0] > 0 and ahead[-1] - ahead[0] > 0.08, ahead
    sent = sent_by_key(rig)
    truth = [sent[(RGB_ID, f["frame_index"])] for _, f in got]
    skews = [(s.captured_ns, s.timestamp_ns - s.captured_ns) for s in truth if s.timestamp_ns is not None]
    (c0, k0), (c1, k1) = skews[0], skews[-1]
    assert (k1 - k0) / (c1 - c0) == pytest.approx(0.1, abs=0.005)
