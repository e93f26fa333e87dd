"""Unit tests of the capture-time rules (camera.capture_clock) and the pose at capture
(rigcore.pose_timeline): pure logic, no peers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from camera.capture_clock import CaptureClock, ClockStatus, TimeSource
from rigcore.config import CaptureTimeConfig, Config
from rigcore.pose_timeline import PoseTimeline
from rigcore.rig import EMPTY_POSE, RigLayout
from rigcore.state import StateSample
from sessions.manifest import FrameRecord

CFG = CaptureTimeConfig(max_delay_s=3.0, ahead_tolerance_s=0.1, window_s=2.0)
T0 = 1_800_000_000.0  # epoch seconds
M0 = 1000.0  # the monotonic clock at T0


def feed(
    clock: CaptureClock, t: float, delay: float | None, full_rate: bool = True
) -> tuple[float, float, TimeSource]:
    """A frame arriving at T0 + t captured ``delay`` earlier (None: no stamp)."""
    stamp = None if delay is None else round((T0 + t - delay) * 1e9)
    c = clock.time_of(stamp, T0 + t, M0 + t, full_rate)
    return c.mono - M0, c.at - T0, c.source


def test_a_plausible_stamp_is_the_capture_time_on_both_clocks() -> None:
    clock = CaptureClock(CFG)
    mono, at, source = feed(clock, 10.0, 1.2)
    assert source is TimeSource.STAMP and clock.status is ClockStatus.OK
    assert mono == pytest.approx(8.8, abs=1e-6) and at == pytest.approx(8.8, abs=1e-6)


def test_no_stamp_is_arrival_less_the_cameras_latency() -> None:
    clock = CaptureClock(CFG, latency_s=0.25)
    mono, at, source = feed(clock, 5.0, None)
    assert source is TimeSource.ARRIVAL and clock.status is ClockStatus.NO_STAMPS
    assert mono == pytest.approx(4.75) and at == pytest.approx(4.75)
    assert not clock.probing(M0 + 5.1)  # nothing to judge: it never holds the full rate


def test_a_clock_ahead_of_arrival_fails_at_once_and_falls_back() -> None:
    clock = CaptureClock(CFG, latency_s=0.1)
    assert feed(clock, 1.0, 0.05)[2] is TimeSource.STAMP
    mono, _, source = feed(clock, 1.1, -10.0)  # stamped 10 s in the future
    assert source is TimeSource.FALLBACK and clock.status is ClockStatus.FAILED
    assert mono == pytest.approx(1.0) and "ahead" in (clock.reason or "")
    # Within the tolerance is fine.
    assert feed(CaptureClock(CFG), 1.0, -0.05)[2] is TimeSource.STAMP


def test_stamps_going_backwards_fail_the_clock_until_a_whole_window_is_good_again() -> None:
    clock = CaptureClock(CFG)
    feed(clock, 1.0, 0.1)
    assert feed(clock, 1.1, 0.5)[2] is TimeSource.FALLBACK  # stamp earlier than the one before
    assert "backwards" in (clock.reason or "")
    t = 1.2
    while t < 3.1:  # good stamps again, but not yet for a whole window
        assert feed(clock, t, 0.1)[2] is TimeSource.FALLBACK
        t += 0.1
    assert feed(clock, 3.3, 0.1)[2] is TimeSource.STAMP and clock.status is ClockStatus.OK
    statuses = [e.status for e in clock.events]
    assert statuses == [ClockStatus.OK, ClockStatus.FAILED, ClockStatus.OK]


def test_a_backlog_shorter_than_the_window_does_not_count_against_the_clock() -> None:
    clock = CaptureClock(CFG)
    # At full rate, a backlog drains: delays fall from 6 s to 0.2 s within 1.5 s, then stay low.
    t, sources = 0.0, []
    while t < 6.0:
        delay = max(0.2, 6.0 - 4 * t)
        sources.append(feed(clock, t, delay)[2])
        t += 0.05
    assert set(sources) == {TimeSource.STAMP} and clock.status is ClockStatus.OK and clock.proven


def test_a_minimum_delay_above_the_bound_for_a_whole_window_fails_as_late() -> None:
    """Delays that vary (a reader falling behind: rising) are judged over a whole window."""
    clock = CaptureClock(CFG, latency_s=0.5)
    t = 0.0
    while t < 1.9:
        # not judged yet: less than a window, and not flat
        assert feed(clock, t, 3.5 + 0.5 * t)[2] is TimeSource.STAMP
        t += 0.1
    assert clock.probing(M0 + t)  # it wants the full rate until it is judged
    mono, _, source = feed(clock, 2.05, 4.0)
    assert source is TimeSource.FALLBACK and "max_delay_s" in (clock.reason or "")
    assert mono == pytest.approx(1.55)
    assert not clock.probing(M0 + 2.1)
    # One failure, not one per frame, while it stays late.
    for i in range(10):
        feed(clock, 2.1 + i / 10, 4.0)
    assert [e.status for e in clock.events].count(ClockStatus.FAILED) == 1
    # Prompt again for a whole window: trusted again.
    t = 3.2
    while t < 6.0:
        feed(clock, t, 0.3)
        t += 0.1
    assert clock.status is ClockStatus.OK


def test_a_flat_delay_above_the_bound_is_judged_after_a_second() -> None:
    """A slow pipeline: every frame 4 s late, about the same. No need to wait out the window."""
    clock = CaptureClock(CaptureTimeConfig(max_delay_s=3.0, window_s=5.0))
    sources = [feed(clock, i / 20, 4.0 + (i % 3) * 0.01)[2] for i in range(30)]
    assert set(sources[:20]) == {TimeSource.STAMP}  # under a second: not yet
    assert sources[-1] is TimeSource.FALLBACK and clock.proven


def test_a_draining_backlog_above_the_bound_is_not_judged_early() -> None:
    clock = CaptureClock(CaptureTimeConfig(max_delay_s=3.0, window_s=5.0))
    t = 0.0
    while t < 2.5:  # delays fall from 9 s to 4 s: a queue draining, still above the bound
        assert feed(clock, t, 9.0 - 2.0 * t)[2] is TimeSource.STAMP
        t += 0.05
    assert clock.status is ClockStatus.OK


def test_idle_frames_never_judge_the_delay() -> None:
    """While idle the service answers late on purpose; a rig that queues frames builds a backlog."""
    clock = CaptureClock(CFG)
    t = 0.0
    while t < 10.0:
        assert feed(clock, t, 8.0, full_rate=False)[2] is TimeSource.STAMP
        t += 0.1
    assert clock.status is ClockStatus.OK and not clock.proven
    # Full rate starts: the first frames are the backlog; a fresh window judges the delay.
    while t < 11.0:
        feed(clock, t, 8.0 - 7.5 * (t - 10.0))
        t += 0.05
    while t < 13.5:
        assert feed(clock, t, 0.5)[2] is TimeSource.STAMP
        t += 0.05
    assert clock.proven and clock.status is ClockStatus.OK


def test_the_session_format_knows_every_time_source_and_no_other() -> None:
    """The session format (sessions.manifest) and the clock name the same sources."""
    base: dict[str, Any] = {"file": "a", "received_at": 1.0, "timestamp_ns": None, "frame_index": None}
    for source in TimeSource:
        assert FrameRecord(**base, pose=None, time_source=source).time_source == source
    with pytest.raises(ValidationError):
        FrameRecord(**base, pose=None, time_source="x")


# -- pose at capture -------------------------------------------------------------------------------

LAYOUT = RigLayout.from_config(Config())
PT, RGB, LRF = "acikgoz_pantilt", "cameradevice_rgb_1", "acikgoz_lrf"


def sample(device: str, mono: float, payload: dict[str, Any]) -> StateSample:
    return StateSample(device, payload, mono, T0 + mono, False)


def test_pan_and_tilt_are_interpolated_zoom_and_distance_held() -> None:
    samples = [
        sample(PT, 1.0, {"pan_deg_x100": 1000, "tilt_deg_x100": 0}),
        sample(PT, 2.0, {"pan_deg_x100": 2000, "tilt_deg_x100": -100}),
        sample(RGB, 1.0, {"zoom_value": 2.0}),
        sample(RGB, 1.9, {"zoom_value": 3.0}),
        sample(LRF, 1.5, {"measured_distance_meters": 12.5}),
        sample(LRF, 1.8, {"measured_distance_meters": 0}),
    ]
    timeline = PoseTimeline(LAYOUT, samples, EMPTY_POSE)
    pose, method = timeline.pose_at(RGB, 1.25)
    assert method == "interpolated"
    assert pose == {"pan_deg_x100": 1250, "tilt_deg_x100": -25, "zoom": 2.0, "distance_m": 12.5}
    pose, method = timeline.pose_at(RGB, 1.95)
    assert pose["zoom"] == 3.0 and pose["distance_m"] is None  # 0 m: no valid reading
    pose, method = timeline.pose_at(RGB, 2.5)
    assert method == "held" and pose["pan_deg_x100"] == 2000
    pose, method = timeline.pose_at(RGB, 0.5)
    assert method == "earliest" and pose["pan_deg_x100"] == 1000 and pose["zoom"] == 2.0


def test_without_pantilt_samples_the_base_pose_is_kept() -> None:
    base = {**EMPTY_POSE, "pan_deg_x100": 4500, "tilt_deg_x100": 10, "zooms": {RGB: 5.0}}
    pose, method = PoseTimeline(LAYOUT, [], base).pose_at(RGB, 3.0)
    assert method is None
    assert pose == {"pan_deg_x100": 4500, "tilt_deg_x100": 10, "zoom": 5.0, "distance_m": None}
