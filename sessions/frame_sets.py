"""The one owner of ``frame_sets.json``: one frame per camera taken at the same instant, grouped.

Multispectral work wants the RGB, SWIR and LWIR frame of one instant side by side. A session's frames
are listed per camera in arrival order (``session.json``); this module pairs them across cameras and
keeps the result beside the session as ``frame_sets.json``, written after the session is saved (an
aftercare hook, off the recording path). A session saved before this file existed still has frame
sets: :func:`load_frame_sets` computes them on demand (without writing anything into the folder).

The format::

    FrameSets                 frame_sets.json
    ├── clock                 "capture" (captured_at of every frame), "camera" (timestamp_ns of
    │                         every frame) or "arrival" (received_at)
    ├── tolerance_ms          the widest spread a set may have
    ├── cameras               the cameras every set holds one frame of
    ├── sets: [FrameSet]      in time order
    │   ├── timestamp_ns      the mean time of its frames, on ``clock``
    │   ├── spread_ms         latest minus earliest frame time
    │   └── frames            {camera_id: file relative to the session folder}
    └── unmatched             {camera_id: frames of that camera in no set}

The rules (:func:`match_frames`, pure, no I/O):

* **Clock.** Capture times (``captured_at``) when every frame of every camera has one: they are
  all on the service's clock, whether a camera's came from its stamps or, where its stamps were
  missing or implausible, from its arrival less the camera's latency (sessions saved since format
  version 3). Otherwise, for older sessions: camera timestamps when every frame has one, else
  arrival times for all (mixing two clocks would pair frames that were not taken together).
  Capture times matter when cameras lag by different amounts: frames of one instant arrive far
  apart, and pairing by arrival would match frames taken at different instants.
* **Tolerance.** By default half the slowest camera's median frame interval on that clock: two
  frames of the slowest camera never fit in one window, so a set cannot choose between them.
* **Sets are complete.** A set holds exactly one frame of every camera that has frames in the
  session; a camera that recorded nothing takes no part (it would leave no set at all). Frames of
  faster cameras with no partner of the slowest one stay unmatched, and are counted.
* **Each frame is in at most one set**, and sets never cross: a later set only takes later frames.
* **One camera alone** gives one set per frame (spread 0): the same rule applied to one camera, so a
  reader stepping through sets needs no special case.

Matching walks the slowest camera's frames (the reference) in time order; for each, every other
camera offers its nearest unused frame, which must lie within the tolerance and not be nearer to the
next reference frame (it then belongs to that one). The set is kept when its spread is within the
tolerance.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rigcore.atomic import write_json_atomic
from sessions.manifest import FrameRecord, SessionManifest

FRAME_SETS_NAME = "frame_sets.json"
FORMAT_VERSION = 1

Clock = Literal["capture", "camera", "arrival"]


class FrameSetsError(Exception):
    """``frame_sets.json`` that is not JSON or not in the format; names the file."""


class _Doc(BaseModel):
    # Unknown keys are kept, as in sessions.manifest: a reader never drops what a newer writer added.
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class FrameSet(_Doc):
    timestamp_ns: int
    spread_ms: float
    frames: dict[str, str]


class FrameSets(_Doc):
    format_version: int = FORMAT_VERSION
    clock: Clock
    tolerance_ms: float
    cameras: list[str] = Field(default_factory=list)
    sets: list[FrameSet] = Field(default_factory=list)
    unmatched: dict[str, int] = Field(default_factory=dict)


# -- matching (pure) --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Track:
    """One camera's frames that have a time on the chosen clock, sorted by it."""

    camera_id: str
    times: list[int]
    files: list[str]
    total: int  # frames of the camera, timed or not

    @property
    def median_interval(self) -> float | None:
        if len(self.times) < 2:
            return None
        return float(statistics.median(b - a for a, b in zip(self.times, self.times[1:], strict=False)))


def match_frames(
    cameras: Mapping[str, Sequence[FrameRecord]], tolerance_ms: float | None = None
) -> FrameSets:
    """Group the frames of ``cameras`` (per camera, as in ``session.json``) into frame sets.

    ``tolerance_ms`` None: half the slowest camera's median frame interval (0 when no camera has two
    frames with a time). See the module docstring for the rules.
    """
    clock = _clock_of(cameras)
    tracks = [_track(cam, frames, clock) for cam, frames in cameras.items()]
    if tolerance_ms is None:
        intervals = [i for t in tracks if (i := t.median_interval) is not None]
        tolerance_ns = max(intervals) / 2 if intervals else 0.0
    else:
        tolerance_ns = tolerance_ms * 1e6
    taking_part = [t for t in tracks if t.times]
    sets = _match(taking_part, tolerance_ns) if taking_part else []
    matched = {t.camera_id: 0 for t in tracks}
    for frame_set in sets:
        for cam in frame_set.frames:
            matched[cam] += 1
    return FrameSets(
        clock=clock,
        tolerance_ms=round(tolerance_ns / 1e6, 3),
        cameras=[t.camera_id for t in taking_part],
        sets=sets,
        unmatched={t.camera_id: t.total - matched[t.camera_id] for t in tracks},
    )


def _clock_of(cameras: Mapping[str, Sequence[FrameRecord]]) -> Clock:
    """The one clock every frame has a time on: capture, else camera stamps, else arrival."""
    frames = [f for records in cameras.values() for f in records]
    if frames and all(f.captured_at is not None for f in frames):
        return "capture"
    if frames and all(f.timestamp_ns is not None for f in frames):
        return "camera"
    return "arrival"


def _track(camera_id: str, frames: Sequence[FrameRecord], clock: Clock) -> _Track:
    timed: list[tuple[int, str]] = []
    for frame in frames:
        t = _time_ns(frame, clock)
        if t is not None:
            timed.append((t, frame.file))
    timed.sort()
    return _Track(camera_id, [t for t, _ in timed], [f for _, f in timed], len(frames))


def _time_ns(frame: FrameRecord, clock: Clock) -> int | None:
    if clock == "camera":
        return frame.timestamp_ns
    seconds = frame.captured_at if clock == "capture" else frame.received_at
    return None if seconds is None else round(seconds * 1e9)


def _match(tracks: list[_Track], tolerance_ns: float) -> list[FrameSet]:
    # The reference is the slowest camera: the largest median interval (one frame: slowest of all),
    # then the fewest frames, then the name, so the choice never depends on dict order.
    ref = max(
        tracks,
        key=lambda t: (
            t.median_interval if t.median_interval is not None else float("inf"),
            -len(t.times),
            t.camera_id,
        ),
    )
    others = [t for t in tracks if t is not ref]
    next_free = {t.camera_id: 0 for t in others}
    sets: list[FrameSet] = []
    for i, t in enumerate(ref.times):
        t_next = ref.times[i + 1] if i + 1 < len(ref.times) else None
        chosen: dict[str, int] = {}
        for track in others:
            j = _partner(track, next_free[track.camera_id], t, t_next, tolerance_ns)
            if j is None:
                break
            chosen[track.camera_id] = j
        else:
            times = [t, *(track.times[chosen[track.camera_id]] for track in others)]
            spread = max(times) - min(times)
            if spread <= tolerance_ns:
                frames = {ref.camera_id: ref.files[i]}
                for track in others:
                    frames[track.camera_id] = track.files[chosen[track.camera_id]]
                    next_free[track.camera_id] = chosen[track.camera_id] + 1
                sets.append(
                    FrameSet(
                        timestamp_ns=round(sum(times) / len(times)),
                        spread_ms=round(spread / 1e6, 3),
                        frames=frames,
                    )
                )
    return sets


def _partner(track: _Track, lo: int, t: int, t_next: int | None, tolerance_ns: float) -> int | None:
    """The index of ``track``'s unused frame (from ``lo``) nearest to ``t``, if it is within the
    tolerance and not nearer to the next reference frame ``t_next``; else None."""
    j = bisect.bisect_left(track.times, t, lo=lo)
    candidates = [k for k in (j - 1, j) if lo <= k < len(track.times)]
    if not candidates:
        return None
    best = min(candidates, key=lambda k: (abs(track.times[k] - t), k))
    distance = abs(track.times[best] - t)
    if distance > tolerance_ns:
        return None
    if t_next is not None and abs(track.times[best] - t_next) < distance:
        return None
    return best


def frame_sets_of(manifest: SessionManifest, tolerance_ms: float | None = None) -> FrameSets:
    """The frame sets of a session, from its manifest."""
    return match_frames({cam: rec.frames for cam, rec in manifest.cameras.items()}, tolerance_ms)


# -- files ------------------------------------------------------------------------------------------
def write_frame_sets(folder: Path, frame_sets: FrameSets) -> None:
    """Write ``frame_sets.json`` into the session folder, atomically."""
    write_json_atomic(folder / FRAME_SETS_NAME, frame_sets.to_json(), indent=1)


def read_frame_sets(folder: Path) -> FrameSets | None:
    """``frame_sets.json`` of a session folder; None when there is none (a session saved before it
    existed, or still in aftercare). FrameSetsError when it cannot be read; a symbolic link is refused."""
    path = folder / FRAME_SETS_NAME
    if path.is_symlink():
        raise FrameSetsError(f"{path.name} is a symbolic link; not followed out of the session")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FrameSetsError(f"{path} cannot be read: {exc}") from exc
    try:
        return FrameSets.model_validate(data)
    except ValidationError as exc:
        raise FrameSetsError(
            f"{path} is not in the frame sets format: {exc.error_count()} problem(s)"
        ) from exc


def load_frame_sets(folder: Path, manifest: SessionManifest) -> FrameSets:
    """The session's frame sets: ``frame_sets.json`` when it is there and readable, else computed from
    ``manifest`` now (nothing is written: reading a session never changes its folder)."""
    try:
        found = read_frame_sets(folder)
    except FrameSetsError:
        found = None
    return found if found is not None else frame_sets_of(manifest)


def write_session_frame_sets(manifest: SessionManifest, folder: Path) -> None:
    """The aftercare hook (service.aftercare): ``frame_sets.json`` for a session just saved."""
    write_frame_sets(folder, frame_sets_of(manifest))


__all__ = [
    "FORMAT_VERSION",
    "FRAME_SETS_NAME",
    "Clock",
    "FrameSet",
    "FrameSets",
    "FrameSetsError",
    "frame_sets_of",
    "load_frame_sets",
    "match_frames",
    "read_frame_sets",
    "write_frame_sets",
    "write_session_frame_sets",
]
