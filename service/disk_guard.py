"""The disk guard: a recording that would not fit is refused before the rig is told anything.

A recording's size is estimated from what each recorded camera sends now — its byte rate as the frame
router measures it (``camera.router``: the larger of the last two seconds and the last full-rate
window) — times the duration, times what the session format makes of those bytes
(:data:`FORMAT_RATIO`: a lossless PNG of raw pixels is smaller than the pixels, a TIFF about the
same, a camera's own JPEG/PNG is written byte for byte), plus the 8-bit previews when configured.
The recording is refused when the free space of ``save_dir`` minus that estimate would fall below
``storage.min_free_mb`` (0 turns the guard off).

Checked twice: when a batch is accepted (``POST /process-request`` answers 507 with nothing
executed; every recording of the batch counted), and again right before each recording starts (the
job fails with the same error, before the start-recording command is sent). A camera that has sent
nothing yet counts as 0 bytes/s: the estimate is what is known, not a bound. A disk that fills anyway
(another program writing, a rate that rises) fails frame writes; the session is still saved with
``session.json`` listing every frame on disk (the writer; docs/architecture.md, "Recording") — the
reserve is what leaves room for that last file.

Pure parts (:func:`estimate_bytes`, :func:`format_ratio`, :func:`shortfall`) are unit-tested; the rest
reads the file system.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigcore.config import CameraConfig
from rigcore.errors import RigError
from rigcore.memory import MIB

# Bytes written per byte received, by image_format, for raw pixel formats (mono8/16, rgb8, bgr8).
# PNG of sensor data measured 0.55-0.7 of raw on the simulated rig's noisy frames; taken at the top.
# "fast" is tiff-zstd while the writer keeps up, and moves to partly or wholly uncompressed TIFF while
# frames wait (sessions/encode_ladder.py): counted at its worst, raw size.
FORMAT_RATIO: dict[str, float] = {"png": 0.7, "png-small": 0.65, "tiff": 1.0, "tiff-zstd": 0.8, "fast": 1.0}
# A format not in the table (a new one): conservatively more than raw.
UNKNOWN_FORMAT_RATIO = 1.1
# A camera's own JPEG/PNG ("encoded") is written as received.
ENCODED_RATIO = 1.0
# The 8-bit preview written beside each raw frame (previews: true): at most half a 16-bit frame.
PREVIEW_RATIO = 0.5
# session.json, the frame list: about this many bytes per second of recording and camera.
MANIFEST_BYTES_PER_S = 16 * 1024


class InsufficientStorage(RigError):
    """A recording would leave less than ``storage.min_free_mb`` free in the save folder."""

    http_status = 507

    def __init__(self, needed_bytes: int, free_bytes: int, min_free_mb: float, folder: Path) -> None:
        self.needed_bytes, self.free_bytes, self.min_free_mb, self.folder = (
            needed_bytes,
            free_bytes,
            min_free_mb,
            folder,
        )
        super().__init__(
            f"not enough disk space for the recording: it needs about {mb(needed_bytes)} MB, "
            f"{folder} has {mb(free_bytes)} MB free, and {min_free_mb:g} MB must stay free "
            "(storage.min_free_mb)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "needed_mb": mb(self.needed_bytes),
            "free_mb": mb(self.free_bytes),
            "min_free_mb": self.min_free_mb,
            "folder": str(self.folder),
        }


@dataclass(frozen=True)
class PlannedRecording:
    """What a recording step will record: its cameras and duration."""

    cameras: Sequence[str]
    duration_s: float


def mb(n: float) -> float:
    return round(n / MIB, 1)


def format_ratio(camera: CameraConfig | None) -> float:
    """Bytes written per byte received for one camera's configuration (pure)."""
    if camera is None:
        return UNKNOWN_FORMAT_RATIO
    if camera.pixel_format == "encoded":
        return ENCODED_RATIO
    ratio = FORMAT_RATIO.get(camera.image_format, UNKNOWN_FORMAT_RATIO)
    return ratio + (PREVIEW_RATIO if camera.previews else 0.0)


def estimate_bytes(
    recordings: Iterable[PlannedRecording],
    byte_rates: Mapping[str, float],
    cameras: Mapping[str, CameraConfig],
) -> int:
    """The bytes the recordings will write (pure): per camera, rate x duration x format ratio."""
    total = 0.0
    for rec in recordings:
        for cam in rec.cameras:
            rate = max(byte_rates.get(cam, 0.0), 0.0)
            total += rate * rec.duration_s * format_ratio(cameras.get(cam))
            total += MANIFEST_BYTES_PER_S * rec.duration_s
    return math.ceil(total)


def shortfall(needed: int, free: int, min_free_mb: float) -> bool:
    """True when writing ``needed`` bytes would leave less than the reserve (pure; 0 = no reserve)."""
    return min_free_mb > 0 and free - needed < min_free_mb * MIB


def _usage(folder: Path) -> Any:
    """shutil.disk_usage of ``folder``, or of its nearest existing parent (a save folder not made yet)."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return shutil.disk_usage(Path.cwd())


def free_bytes(folder: Path) -> int:
    """Free bytes (for this user) on the file system of ``folder``, or of its nearest existing parent."""
    return int(_usage(folder).free)


def check_space(
    recordings: Iterable[PlannedRecording],
    byte_rates: Mapping[str, float],
    cameras: Mapping[str, CameraConfig],
    folder: Path,
    min_free_mb: float,
) -> None:
    """Raise InsufficientStorage when the recordings would not leave the reserve free in ``folder``."""
    if min_free_mb <= 0:
        return
    needed = estimate_bytes(recordings, byte_rates, cameras)
    try:
        free = free_bytes(folder)
    except OSError:
        return  # the folder's own error (not writable, not mounted) is reported when it is used
    if shortfall(needed, free, min_free_mb):
        raise InsufficientStorage(needed, free, min_free_mb, folder)


def storage_status(folder: Path, min_free_mb: float) -> dict[str, Any]:
    """The save folder's space for ``/status``: free and total MB, the reserve, and a warning below it."""
    try:
        usage = _usage(folder)
    except OSError:  # the folder's own problem is in storage_warnings already (CaptureService.start)
        return {
            "folder": str(folder),
            "free_mb": None,
            "total_mb": None,
            "min_free_mb": min_free_mb,
            "warning": None,
        }
    low = min_free_mb > 0 and usage.free < min_free_mb * MIB
    return {
        "folder": str(folder),
        "free_mb": mb(usage.free),
        "total_mb": mb(usage.total),
        "min_free_mb": min_free_mb,
        "warning": (
            f"{folder} has {mb(usage.free)} MB free, below the {min_free_mb:g} MB reserve "
            "(storage.min_free_mb): recordings are refused"
            if low
            else None
        ),
    }
