"""Adaptive lossless encoding (issue 24): a cheaper lossless setting while frames wait for their encode,
the best one again once the writer has caught up, as zstd's ``--adapt`` and video rate control do.

Only ``image_format`` ``fast`` adapts (:data:`sessions.image_codecs.ADAPTIVE_FORMATS`); ``tiff-zstd``
is always the top rung, and ``png``/``tiff`` are what they say.

**The queue, in seconds.** When a writer thread starts a frame's encode, the frame's wait — seconds
since :meth:`sessions.writer.SessionWriter.add` took it — is one sample. The threads take frames in
arrival order, so a sample is the age of the oldest frame still waiting: it grows whenever the encoders
fall behind the cameras, whatever the frame rate or size, and it keeps telling after the recording ends
while a backlog drains.

**The ladder** (per pixel format, :data:`LADDERS`; measured with ``bench/codec_bench.py``, see
docs/performance.md "Adaptive encoding"). Every rung is a TIFF the same readers open bit-exact:

====================  =========================================================================
``zstd1+pred``        every strip Zstandard level 1 after the horizontal predictor (``tiff-zstd``)
``zstd1+pred/2``      half the strips so, the others stored (raw Zstandard blocks, a copy)
``zstd1+pred/4``      a quarter of the strips so
``none``              an uncompressed TIFF
====================  =========================================================================

The cost of a rung and its file size fall in proportion to the share of strips compressed, on every
content. Zstandard's negative levels (not reachable through imagecodecs, which clamps them; through
``zstandard`` they save 5-20 % of the CPU on noisy mono16 for 10-20 % larger files, and on rgb8 cost
as much as level 1 for no compression at all) and the predictor off (10-25 % less CPU for 50 % larger
files on noise) buy much less per byte given up, so they are not rungs. LZ4 has no TIFF compression
tag that Pillow reads.

**The controller** (:class:`LadderController`, pure): a sample above ``cheaper_after_s`` moves one rung
down (cheaper), at most once per ``dwell_s``; samples all below ``richer_below_s`` for
``back_dwell_s`` move one rung back up. The gap between the two thresholds and the longer dwell to
move back are the hysteresis: the writer settles on the richest rung it keeps up with, moving between
two neighbouring rungs rather than between the ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sessions.image_codecs import ADAPTIVE_FORMATS, FAST_FORMAT, CameraWriteOptions, TiffSetting

FULL = TiffSetting("zstd1+pred", share=1.0)
HALF = TiffSetting("zstd1+pred/2", share=0.5)
QUARTER = TiffSetting("zstd1+pred/4", share=0.25)
NONE = TiffSetting("none", share=0.0)

# pixel format -> rungs, best (smallest files) first, cheapest last. The same today for every format:
# the share of strips compressed is the knob that pays on each (docs/performance.md).
LADDERS: Mapping[str, tuple[TiffSetting, ...]] = {
    "mono8": (FULL, HALF, QUARTER, NONE),
    "mono16": (FULL, HALF, QUARTER, NONE),
    "rgb8": (FULL, HALF, QUARTER, NONE),
    "bgr8": (FULL, HALF, QUARTER, NONE),
}
DEPTH = max(len(rungs) for rungs in LADDERS.values())


@dataclass(frozen=True, slots=True)
class LadderTuning:
    """When the controller moves (seconds). The defaults keep the queue under about a second, the
    save lag that issue 24 aims at for a 10 s recording."""

    cheaper_after_s: float = 0.5  # a frame that waited longer than this: one rung cheaper ...
    dwell_s: float = 0.5  # ... at most once per this many seconds
    richer_below_s: float = 0.1  # every frame waited less than this ...
    back_dwell_s: float = 2.0  # ... for this long (and as long since the last move): one rung back

    def __post_init__(self) -> None:
        if not 0 <= self.richer_below_s < self.cheaper_after_s:
            raise ValueError("richer_below_s must be >= 0 and below cheaper_after_s (the hysteresis)")
        if self.dwell_s < 0 or self.back_dwell_s < 0:
            raise ValueError("dwell_s and back_dwell_s must be >= 0")


class LadderController:
    """Which rung (0 = best) from the samples of the queue's age. Pure: the caller gives the time."""

    def __init__(self, depth: int = DEPTH, tuning: LadderTuning | None = None, now: float = 0.0) -> None:
        if depth < 1:
            raise ValueError("a ladder has at least one rung")
        self.depth = depth
        self.tuning = tuning or LadderTuning()
        self.rung = 0
        self.moves = 0
        self.lowest = 0  # the cheapest rung reached
        self._moved_at = now
        self._calm_since: float | None = now  # since when every sample was below richer_below_s

    def update(self, waited_s: float, now: float) -> int:
        """Take one sample (a frame that waited ``waited_s``, at ``now``); the rung to use from now."""
        t = self.tuning
        if waited_s >= t.richer_below_s:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        if waited_s > t.cheaper_after_s and self.rung < self.depth - 1 and now - self._moved_at >= t.dwell_s:
            self._move(self.rung + 1, now)
        elif (
            self.rung > 0
            and self._calm_since is not None
            and now - self._calm_since >= t.back_dwell_s
            and now - self._moved_at >= t.back_dwell_s
        ):
            self._move(self.rung - 1, now)
        return self.rung

    def _move(self, rung: int, now: float) -> None:
        self.rung = rung
        self.moves += 1
        self.lowest = max(self.lowest, rung)
        self._moved_at = now


def fixed_name(image_format: str) -> str:
    """What session.json counts for a frame of a format that does not adapt: the top rung for
    ``tiff-zstd`` (the same file), else the format's own name."""
    return FULL.name if image_format == FAST_FORMAT else image_format


class EncodeLadder:
    """One session writer's ladder: thread-safe; the writer's threads call :meth:`choose`. ``clock``:
    the clock of the times given to :meth:`choose` (the writer's: ``time.monotonic``)."""

    def __init__(
        self, tuning: LadderTuning | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._controller = LadderController(DEPTH, tuning, clock())

    def choose(
        self, options: CameraWriteOptions, pixel_format: str, added: float
    ) -> tuple[TiffSetting | None, str | None]:
        """For a frame of a camera written with ``options``, taken at ``added``, whose encode starts now:
        the setting to write it at (None: the format's own) and the name session.json counts it under
        (None: an encoded frame, written as the camera sent it)."""
        image_format = options.image_format
        with self._lock:
            now = self._clock()
            rung = self._controller.update(now - added, now)
        if pixel_format == "encoded":
            return None, None
        if image_format not in ADAPTIVE_FORMATS:
            return None, fixed_name(image_format)
        rungs = LADDERS[pixel_format]
        setting = rungs[min(rung, len(rungs) - 1)]
        return setting, setting.name

    def report(self) -> dict[str, int]:
        """The ladder's moves in this session and the cheapest rung it reached (0: never left the top)."""
        with self._lock:
            return {"moves": self._controller.moves, "lowest_rung": self._controller.lowest}


__all__ = [
    "DEPTH",
    "FULL",
    "HALF",
    "LADDERS",
    "NONE",
    "QUARTER",
    "EncodeLadder",
    "LadderController",
    "LadderTuning",
    "fixed_name",
]
