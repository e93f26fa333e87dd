"""At start: find the sessions a killed service left unfinished, and record them truthfully.

A session folder that still holds the recording marker was cut off while recording or saving. Its
frames already on disk are kept and listed in a ``session.json`` with status ``incomplete``. Spill
files (raw frames waiting for their encode, ``images_data/spill/``) of a process that is gone are
removed: their frames were never written and cannot be numbered or placed any more, and the manifest
says how many bytes were dropped that way. Which job each recovered session belonged to is told to
the caller, which updates the history (``service.capture``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PIL import Image

from sessions.manifest import (
    CameraRecord,
    FrameRecord,
    Problem,
    SessionManifest,
    SessionStatus,
    has_manifest,
    has_marker,
    read_marker,
    remove_marker,
    write_manifest,
)

log = logging.getLogger(__name__)

FRAME_SUFFIXES = {".png", ".jpg", ".tif", ".tiff"}
SPILL_SUFFIX = ".spill"


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            if img.format == "TIFF":
                img.load()  # verify() checks nothing in a TIFF: a strip cut short fails to decode
            else:
                img.verify()
        return True
    except Exception:  # any decoder complaint means a torn write
        return False


def _camera_record(cam_dir: Path) -> tuple[CameraRecord, list[str]]:
    frames, damaged = [], []
    for f in sorted(p for p in cam_dir.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES):
        name = f"{cam_dir.name}/{f.name}"
        if _readable(f):
            frames.append(
                FrameRecord(file=name, received_at=None, timestamp_ns=None, frame_index=None, pose=None)
            )
        else:
            damaged.append(name)
    return CameraRecord(frame_count=len(frames), frames=frames, damaged_files=damaged), damaged


def recover_session(folder: Path, spilled_bytes: int = 0) -> SessionManifest | None:
    """Write an ``incomplete`` manifest for a cut-off session folder; return it (None if intact)."""
    if not has_marker(folder):
        return None
    if has_manifest(folder):  # finished; only the marker's removal was lost
        remove_marker(folder)
        return None
    marker = read_marker(folder)
    cameras: dict[str, CameraRecord] = {}
    problems = [
        Problem(
            type="Interrupted",
            message="the service stopped while this session was being recorded or saved; the frames "
            "found on disk are listed, without their per-frame metadata",
        )
    ]
    for cam_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        cameras[cam_dir.name], damaged = _camera_record(cam_dir)
        if damaged:
            problems.append(
                Problem(
                    type="DamagedFiles",
                    camera_id=cam_dir.name,
                    message=f"{len(damaged)} torn file(s) not listed",
                )
            )
    if spilled_bytes:
        problems.append(
            Problem(type="SpillDropped", message=f"{spilled_bytes} bytes of frames not yet encoded were lost")
        )
    carried = ("scan_id", "pose_index", "node_id", "kind", "event_id", "trigger_at")
    manifest = SessionManifest(
        **({key: getattr(marker, key) for key in carried} if marker else {}),
        session_id=folder.name,
        job_id=marker.job_id if marker else None,
        status=SessionStatus.INCOMPLETE,
        request=marker.request if marker else None,
        command=marker.command if marker else None,
        settled_at=marker.settled_at if marker else None,
        record_started_at=marker.record_started_at if marker else None,
        duration_second=marker.duration_second if marker else None,
        problems=problems,
        cameras=cameras,
        recovered_at=time.time(),
    )
    write_manifest(folder, manifest)
    remove_marker(folder)
    return manifest


def remove_spill_files(spill_dir: Path) -> dict[str, int]:
    """Delete spill files left by a process that is gone; return their sizes by session id."""
    dropped: dict[str, int] = {}
    if not spill_dir.is_dir():
        return dropped
    for path in spill_dir.glob(f"*{SPILL_SUFFIX}"):
        try:
            dropped[path.stem] = path.stat().st_size
            path.unlink()
        except OSError as exc:
            log.warning("cannot remove the spill file %s: %s", path, exc)
    return dropped


def recover_sessions(save_dir: Path, spill_dir: Path) -> list[SessionManifest]:
    """Recover every cut-off session folder in ``save_dir``; return the manifests written."""
    spilled = remove_spill_files(spill_dir)
    recovered = []
    if save_dir.is_dir():
        for folder in sorted(p for p in save_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            manifest = recover_session(folder, spilled.get(folder.name, 0))
            if manifest is not None:
                log.warning("session %s was cut off; marked incomplete", folder.name)
                recovered.append(manifest)
    return recovered
