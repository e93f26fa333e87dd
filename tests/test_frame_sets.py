"""Frame sets (sessions/frame_sets.py): pure matching on synthetic timestamps, and the file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sessions.frame_sets import (
    FRAME_SETS_NAME,
    FrameSets,
    FrameSetsError,
    frame_sets_of,
    load_frame_sets,
    match_frames,
    read_frame_sets,
    write_frame_sets,
    write_session_frame_sets,
)
from sessions.manifest import CameraRecord, FrameRecord, SessionManifest, SessionStatus

T0 = 1_764_480_000_000_000_000  # ns, an epoch time in 2025
MS = 1_000_000


def frames(
    cam: str,
    times_ns: list[int | None],
    *,
    stamps: bool = True,
    arrival_delay_ns: int = 2 * MS,
    captured: bool = False,
) -> list[FrameRecord]:
    """Frame records of ``cam`` captured at ``times_ns``; received ``arrival_delay_ns`` later.
    ``captured``: with their capture time (a session saved since format version 3)."""
    out = []
    for n, t in enumerate(times_ns, start=1):
        out.append(
            FrameRecord(
                file=f"{cam}/{n:06d}.png",
                received_at=None if t is None else (t + arrival_delay_ns) / 1e9,
                timestamp_ns=t if stamps else None,
                frame_index=n,
                pose=None,
                captured_at=None if t is None or not captured else t / 1e9,
                time_source=None if not captured else "stamp" if stamps else "arrival",
            )
        )
    return out


def ticks(fps: float, seconds: float, jitter_ms: float = 0.0, seed: int = 1) -> list[int | None]:
    rng = random.Random(seed)
    n = int(seconds * fps)
    return [T0 + round(k / fps * 1e9 + rng.uniform(-jitter_ms, jitter_ms) * MS) for k in range(n)]


def assert_well_formed(result: FrameSets) -> None:
    """Each frame in at most one set, every set complete and within the tolerance, in time order."""
    seen: set[str] = set()
    for s in result.sets:
        assert sorted(s.frames) == sorted(result.cameras)
        assert s.spread_ms <= result.tolerance_ms + 1e-6
        for file in s.frames.values():
            assert file not in seen
            seen.add(file)
    stamps = [s.timestamp_ns for s in result.sets]
    assert stamps == sorted(stamps)


def test_cameras_at_one_rate_capturing_together_pair_every_frame() -> None:
    t = ticks(15, 4)
    result = match_frames({"rgb": frames("rgb", t), "swir": frames("swir", t), "lwir": frames("lwir", t)})
    assert result.clock == "camera"
    assert len(result.sets) == len(t)
    assert result.unmatched == {"rgb": 0, "swir": 0, "lwir": 0}
    assert all(s.spread_ms == 0 for s in result.sets)
    assert result.sets[3].frames == {
        "rgb": "rgb/000004.png",
        "swir": "swir/000004.png",
        "lwir": "lwir/000004.png",
    }
    assert result.sets[3].timestamp_ns == t[3]
    # Half the (slowest) median interval of 1/15 s.
    assert result.tolerance_ms == pytest.approx(1000 / 15 / 2, abs=0.01)
    assert_well_formed(result)


def test_jitter_at_one_rate_still_pairs_at_least_95_percent_within_the_tolerance() -> None:
    cams = {c: frames(c, ticks(15, 10, jitter_ms=8, seed=i)) for i, c in enumerate(("a", "b", "c"))}
    result = match_frames(cams)
    assert len(result.sets) >= 0.95 * 150
    assert_well_formed(result)


def test_different_rates_pair_every_frame_of_the_slowest_camera() -> None:
    fast = ticks(15, 6)  # 0, 66.7, 133.3, 200 ms ...
    slow = ticks(10, 6)  # 0, 100, 200 ms ...
    result = match_frames({"fast": frames("fast", fast), "slow": frames("slow", slow)})
    assert result.tolerance_ms == pytest.approx(50, abs=0.01)
    assert len(result.sets) == len(slow)
    assert result.unmatched == {"fast": len(fast) - len(slow), "slow": 0}
    assert_well_formed(result)


def test_a_missing_frame_leaves_the_others_of_that_instant_unmatched() -> None:
    t = ticks(15, 2)
    gappy = [x if k != 5 else None for k, x in enumerate(t)]
    b = [f for f in frames("b", gappy) if f.timestamp_ns is not None]
    result = match_frames({"a": frames("a", t), "b": b, "c": frames("c", t)})
    assert len(result.sets) == len(t) - 1
    assert result.unmatched == {"a": 1, "b": 0, "c": 1}
    assert all(s.frames["a"] != "a/000006.png" for s in result.sets)
    assert_well_formed(result)


def test_one_camera_without_timestamps_makes_every_camera_match_on_arrival() -> None:
    t = ticks(15, 2)
    result = match_frames({"a": frames("a", t), "b": frames("b", t, stamps=False)})
    assert result.clock == "arrival"
    assert len(result.sets) == len(t)
    # Arrival is 2 ms after capture: the set's time is on the arrival clock.
    assert abs(result.sets[0].timestamp_ns - (T0 + 2 * MS)) < 1000  # epoch seconds as a float: ~0.2 µs
    assert_well_formed(result)


def test_a_slow_camera_is_never_paired_with_two_instants() -> None:
    # b's single frame sits between two of a's: it goes to the nearer one only.
    a = [T0, T0 + 100 * MS, T0 + 200 * MS]
    b = [T0 + 130 * MS]
    result = match_frames({"a": frames("a", list(a)), "b": frames("b", list(b))}, tolerance_ms=50)
    assert [s.frames for s in result.sets] == [{"a": "a/000002.png", "b": "b/000001.png"}]
    assert result.sets[0].spread_ms == 30
    assert result.unmatched == {"a": 2, "b": 0}


def test_a_frame_nearer_the_next_reference_frame_waits_for_it() -> None:
    # The reference (slowest) is b; a's frame at 70 ms is within 50 ms of b's frame at 30 ms, but
    # nearer b's next frame at 90 ms: it is paired with that one.
    a = [T0 + 70 * MS, T0 + 75 * MS]
    b = [T0 + 30 * MS, T0 + 90 * MS]
    result = match_frames({"a": frames("a", list(a)), "b": frames("b", list(b))}, tolerance_ms=50)
    assert [s.frames for s in result.sets] == [{"b": "b/000002.png", "a": "a/000002.png"}]


def test_spread_beyond_the_tolerance_makes_no_set() -> None:
    a = [T0]
    b = [T0 + 30 * MS]
    c = [T0 - 30 * MS]
    result = match_frames({"a": frames("a", a), "b": frames("b", b), "c": frames("c", c)}, tolerance_ms=40)
    assert result.sets == []
    assert result.unmatched == {"a": 1, "b": 1, "c": 1}


def test_one_camera_alone_gives_one_set_per_frame() -> None:
    t = ticks(10, 1)
    result = match_frames({"solo": frames("solo", t)})
    assert len(result.sets) == len(t)
    assert [s.frames for s in result.sets][:2] == [{"solo": "solo/000001.png"}, {"solo": "solo/000002.png"}]
    assert all(s.spread_ms == 0 for s in result.sets)
    assert result.unmatched == {"solo": 0}


def test_a_camera_that_recorded_nothing_takes_no_part() -> None:
    t = ticks(15, 1)
    result = match_frames({"a": frames("a", t), "b": frames("b", t), "silent": []})
    assert result.cameras == ["a", "b"]
    assert len(result.sets) == len(t)
    assert result.unmatched == {"a": 0, "b": 0, "silent": 0}


def test_frames_without_any_time_are_unmatched() -> None:
    # A session rebuilt after a crash lists frames with received_at and timestamp_ns null.
    result = match_frames({"a": frames("a", [None, None]), "b": frames("b", [None])})
    assert result.clock == "arrival"
    assert result.sets == []
    assert result.cameras == []
    assert result.unmatched == {"a": 2, "b": 1}
    assert result.tolerance_ms == 0


def test_no_cameras_at_all() -> None:
    result = match_frames({})
    assert result.sets == [] and result.unmatched == {}


def test_random_rates_gaps_and_jitter_keep_the_rules() -> None:
    rng = random.Random(7)
    for trial in range(30):
        cams = {}
        for c in ("a", "b", "c"):
            t = ticks(rng.choice([5, 10, 15, 30]), 3, jitter_ms=rng.uniform(0, 20), seed=trial)
            kept = [x for x in t if rng.random() > 0.1]
            cams[c] = frames(c, kept, stamps=rng.random() > 0.2)
        result = match_frames(cams)
        assert_well_formed(result)
        for cam, recs in cams.items():
            in_sets = sum(cam in s.frames for s in result.sets)
            assert in_sets + result.unmatched[cam] == len(recs)


# -- capture times (format version 3) ------------------------------------------------------------
def test_cameras_arriving_with_different_delays_pair_by_capture_time() -> None:
    # One instant every 100 ms for all three; lwir's frames arrive 1.25 s late, swir's 0.4 s, rgb's
    # 20 ms. Paired by arrival they would match frames taken up to a second apart (or none at all).
    t = ticks(10, 4)
    cams = {
        "rgb": frames("rgb", t, stamps=False, arrival_delay_ns=20 * MS, captured=True),
        "swir": frames("swir", t, arrival_delay_ns=400 * MS, captured=True),
        "lwir": frames("lwir", t, stamps=False, arrival_delay_ns=1250 * MS, captured=True),
    }
    result = match_frames(cams)
    assert result.clock == "capture"
    assert len(result.sets) == len(t) and result.unmatched == {"rgb": 0, "swir": 0, "lwir": 0}
    for k, s in enumerate(result.sets):
        assert set(s.frames.values()) == {f"{cam}/{k + 1:06d}.png" for cam in cams}
        assert s.spread_ms < 0.01
        assert abs(s.timestamp_ns - t[k]) < 1000  # on the capture clock, not the arrival one
    assert_well_formed(result)
    # The same frames without capture times (an older session) pair on arrival: wrongly.
    for records in cams.values():
        for f in records:
            f.captured_at = None
    old = match_frames(cams)
    assert old.clock == "arrival" and old.sets
    assert not any(len({file.rsplit("/", 1)[1] for file in s.frames.values()}) == 1 for s in old.sets), (
        "arrival pairs frames of different instants"
    )


def test_capture_times_win_over_camera_stamps_and_partial_capture_times_do_not_count() -> None:
    t = ticks(15, 1)
    a = frames("a", t, arrival_delay_ns=500 * MS, captured=True)
    b = frames("b", t, arrival_delay_ns=5 * MS, captured=True)
    assert match_frames({"a": a, "b": b}).clock == "capture"
    b[3].captured_at = None  # one frame without a capture time: today's rules (all stamped: camera)
    assert match_frames({"a": a, "b": b}).clock == "camera"


def test_capture_clock_is_kept_in_the_file(tmp_path: Path) -> None:
    t = ticks(10, 1)
    m = SessionManifest(
        session_id="s3",
        status=SessionStatus.COMPLETE,
        cameras={
            "a": CameraRecord(frame_count=len(t), frames=frames("a", t, captured=True)),
            "b": CameraRecord(
                frame_count=len(t), frames=frames("b", t, arrival_delay_ns=900 * MS, captured=True)
            ),
        },
    )
    write_session_frame_sets(m, tmp_path)
    read = read_frame_sets(tmp_path)
    assert read is not None and read.clock == "capture" and len(read.sets) == len(t)


# -- the file ------------------------------------------------------------------------------------
def manifest(t: list[int | None]) -> SessionManifest:
    return SessionManifest(
        session_id="s1",
        status=SessionStatus.COMPLETE,
        cameras={
            "a": CameraRecord(frame_count=len(t), frames=frames("a", t)),
            "b": CameraRecord(frame_count=len(t), frames=frames("b", t)),
        },
    )


def test_written_file_round_trips_and_has_the_issue_shape(tmp_path: Path) -> None:
    m = manifest(ticks(15, 1))
    write_session_frame_sets(m, tmp_path)
    data = json.loads((tmp_path / FRAME_SETS_NAME).read_text())
    assert {"tolerance_ms", "sets", "unmatched"} <= set(data)
    assert set(data["sets"][0]) == {"timestamp_ns", "spread_ms", "frames"}
    assert read_frame_sets(tmp_path) == frame_sets_of(m)


def test_sessions_without_the_file_get_frame_sets_on_demand(tmp_path: Path) -> None:
    m = manifest(ticks(15, 1))
    assert read_frame_sets(tmp_path) is None
    assert load_frame_sets(tmp_path, m) == frame_sets_of(m)
    assert not (tmp_path / FRAME_SETS_NAME).exists()  # reading never writes into the session


def test_a_damaged_file_is_reported_and_load_falls_back_to_computing(tmp_path: Path) -> None:
    m = manifest(ticks(15, 1))
    (tmp_path / FRAME_SETS_NAME).write_text("{not json")
    with pytest.raises(FrameSetsError, match=FRAME_SETS_NAME):
        read_frame_sets(tmp_path)
    assert load_frame_sets(tmp_path, m) == frame_sets_of(m)


def test_a_file_written_earlier_is_read_as_written(tmp_path: Path) -> None:
    m = manifest(ticks(15, 1))
    custom = frame_sets_of(m, tolerance_ms=1.0)
    write_frame_sets(tmp_path, custom)
    assert load_frame_sets(tmp_path, m).tolerance_ms == 1.0


def test_symlinked_file_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / FRAME_SETS_NAME).symlink_to(outside)
    with pytest.raises(FrameSetsError, match="symbolic link"):
        read_frame_sets(folder)
