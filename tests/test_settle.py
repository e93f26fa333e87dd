"""SettleTracker decides "settled" exactly as docs/protocol.md §5 says (pure logic, no broker)."""

from __future__ import annotations

import pytest

from rigcore.state import SettleTracker, StateSample, get_path


def tracker(
    since: float = 10.0, target: float | None = 4500, window: float = 0.5, n: int = 5
) -> SettleTracker:
    return SettleTracker(
        "acikgoz_pantilt",
        ("pan_deg_x100", "tilt_deg_x100"),
        {"pan_deg_x100": target, "tilt_deg_x100": None},
        {"pan_deg_x100": 5.0},
        since,
        window,
        n,
    )


def sample(t: float, pan: int, tilt: int = 0, retained: bool = False) -> StateSample:
    return StateSample("acikgoz_pantilt", {"pan_deg_x100": pan, "tilt_deg_x100": tilt}, t, 1e9 + t, retained)


def feed_series(tr: SettleTracker, start: float, pans: list[int], dt: float = 0.1) -> list[bool]:
    return [tr.feed(sample(start + i * dt, p)) for i, p in enumerate(pans)]


def test_get_path_reads_nested_fields_and_missing_is_none() -> None:
    payload = {"zoom_lens_state": {"zoom_step": 7}, "a": 1}
    assert get_path(payload, "zoom_lens_state.zoom_step") == 7
    assert get_path(payload, "zoom_lens_state.nope") is None
    assert get_path(payload, "a.b") is None


def test_settles_after_five_equal_messages_spanning_the_window() -> None:
    tr = tracker()
    got = feed_series(tr, 11.0, [4500] * 6)
    # 5 messages span 0.4 s only; the 6th makes 0.5 s.
    assert got == [False] * 5 + [True]
    assert tr.settled_mono == 11.5


def test_stale_and_retained_messages_never_count() -> None:
    tr = tracker(since=10.0)
    for i in range(10):
        assert not tr.feed(sample(5.0 + i * 0.1, 4500))  # before the command
    for i in range(10):
        assert not tr.feed(sample(10.0 + i * 0.1, 4500, retained=True))
    assert tr.counted == 0 and tr.ignored_stale == 20


def test_old_pose_before_motion_starts_does_not_settle_away_from_target() -> None:
    # The rig reports its old pose for 400 ms after the command, then moves, then stops at target.
    tr = tracker(since=0.0)
    pans = [0] * 8 + [1000, 2500, 4000, 4498] + [4500] * 6
    got = feed_series(tr, 0.0, pans)
    assert got.index(True) == len(pans) - 1
    assert tr.last_values == {"pan_deg_x100": 4500, "tilt_deg_x100": 0}


def test_value_within_tolerance_counts_and_any_change_restarts_the_window() -> None:
    tr = tracker()
    got = feed_series(tr, 11.0, [4497, 4497, 4497, 4497, 4496, 4496, 4496, 4496, 4496, 4496])
    assert got.index(True) == 9  # restarted at the change (index 4), needs 5 msgs and 0.5 s


def test_out_of_tolerance_never_settles_and_reason_says_so() -> None:
    tr = tracker()
    assert not any(feed_series(tr, 11.0, [4400] * 20))
    assert "tolerance" in tr.reason()


def test_no_target_only_needs_stability() -> None:
    tr = tracker(target=None)
    assert feed_series(tr, 11.0, [123] * 6)[-1]


def test_missing_field_is_ignored_and_counted() -> None:
    tr = tracker()
    assert not tr.feed(StateSample("acikgoz_pantilt", {"pan_deg_x100": 4500}, 11.0, 0.0, False))
    assert tr.ignored_missing == 1 and tr.counted == 0
    assert "no fresh state" in tr.reason()


def test_moving_flag_blocks_settle_while_true() -> None:
    tr = SettleTracker("pt", ("p",), {"p": 1}, {"p": 0}, 0.0, 0.5, 5, moving_field="moving")
    for i in range(10):
        assert not tr.feed(StateSample("pt", {"p": 1, "moving": True}, i * 0.1, 0.0, False))
    got = [tr.feed(StateSample("pt", {"p": 1, "moving": False}, 1.0 + i * 0.1, 0.0, False)) for i in range(6)]
    assert got == [False] * 5 + [True]


def test_a_settled_tracker_proves_it_time_residual_and_steady_run() -> None:
    tracker = SettleTracker(
        "acikgoz_pantilt",
        ("pan_deg_x100", "tilt_deg_x100"),
        {"pan_deg_x100": 4500, "tilt_deg_x100": None},
        {"pan_deg_x100": 5},
        since_mono=10.0,
        window_s=0.5,
        min_messages=5,
    )
    for i in range(8):
        pan = 4400 + 40 * i if i < 2 else 4503
        sample = StateSample(
            "acikgoz_pantilt", {"pan_deg_x100": pan, "tilt_deg_x100": -10}, 10.1 + 0.1 * i, 0, False
        )
        tracker.feed(sample)
    assert tracker.settled
    proof = tracker.proof()
    assert proof["residual"] == {"pan_deg_x100": 3.0} and proof["targets"] == {"pan_deg_x100": 4500}
    # Steady from the third message (10.3 s); the sixth equal one spans the 0.5 s window (10.8 s).
    assert proof["steady_messages"] == 6 and proof["steady_window_s"] == pytest.approx(0.5)
    assert proof["time_to_settle_s"] == pytest.approx(0.8) and tracker.steady_since_mono == pytest.approx(
        10.3
    )
