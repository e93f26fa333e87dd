"""At start: find what a killed service left unfinished, and record it truthfully.

A session folder that still holds the recording marker was cut off while recording or saving. Its
frames already on disk are kept and listed in a ``session.json`` with status ``incomplete``; the
history entry of its job says so too. Jobs the history shows as queued or running are marked
``interrupted``: the process that ran them is gone.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PIL import Image

from service.atomic import read_json_or_quarantine, write_json_atomic
from service.history import HistoryStore
from service.jobs import RECORDING_MARKER

log = logging.getLogger(__name__)

FRAME_SUFFIXES = {".png", ".jpg", ".tif", ".tiff"}


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # any decoder complaint means a torn write
        return False


def recover_session(folder: Path) -> dict[str, Any] | None:
    """Write an ``incomplete`` manifest for a cut-off session folder; return it (None if intact)."""
    marker = folder / RECORDING_MARKER
    if not marker.exists():
        return None
    if (folder / "session.json").exists():  # finished; only the marker's removal was lost
        marker.unlink(missing_ok=True)
        return None
    info, _warning = read_json_or_quarantine(marker)
    info = info if isinstance(info, dict) else {}
    cameras: dict[str, Any] = {}
    for cam_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        frames, damaged = [], []
        for f in sorted(p for p in cam_dir.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES):
            if _readable(f):
                frames.append(
                    {
                        "file": f"{cam_dir.name}/{f.name}",
                        "received_at": None,
                        "timestamp_ns": None,
                        "frame_index": None,
                        "pose": None,
                    }
                )
            else:
                damaged.append(f"{cam_dir.name}/{f.name}")
        cameras[cam_dir.name] = {
            "frame_count": len(frames),
            "rejected_frames": 0,
            "damaged_files": damaged,
            "frames": frames,
        }
    manifest = {
        "session_id": folder.name,
        "job_id": info.get("job_id"),
        "status": "incomplete",
        "reason": "the service stopped while this session was being recorded or saved; "
        "the frames found on disk are listed, without their per-frame metadata",
        "recovered_at": time.time(),
        "request": info.get("request"),
        "command": info.get("command"),
        "record_started_at": info.get("record_started_at"),
        "record_ended_at": None,
        "duration_second": info.get("duration_second"),
        "cameras": cameras,
    }
    write_json_atomic(folder / "session.json", manifest)
    marker.unlink(missing_ok=True)
    return manifest


def recover(save_dir: Path, history: HistoryStore) -> list[dict[str, Any]]:
    """Recover every cut-off session and interrupted job; return the recovered manifests."""
    recovered = []
    if save_dir.is_dir():
        for folder in sorted(p for p in save_dir.iterdir() if p.is_dir()):
            manifest = recover_session(folder)
            if manifest is None:
                continue
            recovered.append(manifest)
            log.warning("session %s was cut off; marked incomplete", folder.name)
            job_id = manifest.get("job_id")
            entry = history.get(str(job_id)) if job_id else None
            if entry is not None:
                summary = {
                    "session_id": folder.name,
                    "path": str(folder),
                    "status": "incomplete",
                    "cameras": {
                        c: {"frame_count": v["frame_count"], "rejected_frames": 0}
                        for c, v in manifest["cameras"].items()
                    },
                }
                history.update(str(job_id), sessions=[*entry.get("sessions", []), summary])
    for entry in history.entries():
        if entry.get("status") in ("queued", "running"):
            history.update(
                str(entry["id"]),
                status="interrupted",
                finished_at=time.time(),
                error={"type": "Interrupted", "message": "the service stopped before this job finished"},
            )
    return recovered
