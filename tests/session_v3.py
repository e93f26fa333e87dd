"""A session folder in the capture-time format (``format_version`` 3), built by hand for unit tests of
its readers (MCAP export, frame sets, report, dashboard summaries): ``session.json`` with capture
times, time sources, the capture window and the settle proof's delays, and ``state.jsonl`` with the
state samples of every device, from the move before the settle to the recording's end.

Two cameras at 10 fps over a one-second window starting at ``T0``: SWIR stamps its frames (time
source ``stamp``, its clock 3 ms ahead of the service's) and arrives 0.4 s late; LWIR sends no
stamps (``arrival``) and arrives 1.3 s late. :func:`old_session` is the same recording as a
session saved before capture times existed (arrival only, no state log).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sessions.manifest import SessionManifest, read_manifest
from sessions.state_log import StateRecord, write_state_log

T0 = 1_800_000_000.0
SWIR, LWIR = "cameradevice_swir_1", "cameradevice_lwir_1"
DELAY = {SWIR: 0.4, LWIR: 1.3}
STAMP_OFFSET_NS = 3_000_000  # SWIR's clock runs 3 ms ahead of the service's
PANTILT, LRF = "acikgoz_pantilt", "acikgoz_lrf"
FRAMES = 10


def captured(k: int) -> float:
    return T0 + 0.05 + k * 0.1


def _frames(cam: str) -> list[dict[str, Any]]:
    out = []
    for k in range(FRAMES):
        at = captured(k)
        out.append(
            {
                "file": f"{cam}/{k + 1:06d}.png",
                "received_at": at + DELAY[cam],
                "timestamp_ns": round(at * 1e9) + STAMP_OFFSET_NS if cam == SWIR else None,
                "frame_index": k + 1,
                "pose": {"pan_deg_x100": 4500, "tilt_deg_x100": -1000, "zoom": 4, "distance_m": 70.5},
                "captured_at": at,
                "time_source": "stamp" if cam == SWIR else "arrival",
                "pose_method": "interpolated",
            }
        )
    return out


def samples() -> list[StateRecord]:
    """The pan-tilt moving from 0 to 45° pan from T0 - 3 s and holding from T0 - 1 s, SWIR's zoom
    going 3 → 4, the range finder every 0.5 s (one reading without a valid distance)."""
    out = [StateRecord(device_id=PANTILT, received_at=T0 - 3.2, retained=True, values={"pan_deg_x100": 0})]
    for k in range(46):
        at = T0 - 3.0 + k * 0.1
        pan = min(4500, round(k * 4500 / 20))
        values = {"pan_deg_x100": pan, "tilt_deg_x100": -1000, "moving": pan < 4500}
        out.append(StateRecord(device_id=PANTILT, received_at=at, values=values))
    out.append(StateRecord(device_id=SWIR, received_at=T0 - 2.5, values={"zoom": 3}))
    out.append(StateRecord(device_id=SWIR, received_at=T0 - 1.5, values={"zoom": 4}))
    for k, distance in enumerate((70.0, 70.5, None, 71.0, 70.5, 70.5, 70.0, 70.5, 70.5)):
        out.append(
            StateRecord(device_id=LRF, received_at=T0 - 3.0 + k * 0.5, values={"distance_m": distance})
        )
    return sorted(out, key=lambda s: s.received_at)


def settle_proof(settled_at: float, time_to_settle_s: float, **more: Any) -> dict[str, Any]:
    """A session's ``settle``: the pan-tilt steady at 45° pan, -10° tilt (its targets, no residual)
    from ``settled_at``, ``time_to_settle_s`` after the move; ``more``: the proof's other keys."""
    held = {"pan_deg_x100": 4500, "tilt_deg_x100": -1000}
    device = {
        "time_to_settle_s": time_to_settle_s,
        "values": dict(held),
        "targets": dict(held),
        "residual": {"pan_deg_x100": 0, "tilt_deg_x100": 0},
        "steady_messages": 6,
        "steady_window_s": 0.55,
    }
    return {"settled_at": settled_at, "devices": {PANTILT: device}, **more}


def manifest_doc() -> dict[str, Any]:
    kept = samples()
    return {
        "format_version": 3,
        "session_id": "20270115-080000-000",
        "job_id": "job-1",
        "status": "partial",
        "settled_at": T0 - 0.2,
        "record_started_at": T0,
        "record_ended_at": T0 + 1.0,
        "duration_second": 1.0,
        "pose_at_start": {
            "pan_deg_x100": 4500,
            "tilt_deg_x100": -1000,
            "distance_m": 70.5,
            "zooms": {SWIR: 4, LWIR: None},
        },
        "settle": settle_proof(
            T0 - 0.2,
            2.8,
            latest_dropped_capture_at=T0 - 0.05,
            earliest_saved_capture_at=captured(0),
            delay_s={
                SWIR: {"median": 0.4, "p99": 0.43, "max": 0.45, "frames": FRAMES},
                LWIR: {"median": 1.3, "p99": 1.38, "max": 1.41, "frames": FRAMES},
            },
        ),
        "cameras": {
            SWIR: {
                "frame_count": FRAMES,
                "frames": _frames(SWIR),
                "time_sources": {"stamp": FRAMES},
                "clock": {"status": "ok", "reasons": []},
            },
            LWIR: {
                "frame_count": FRAMES,
                "frames": _frames(LWIR),
                "time_sources": {"arrival": FRAMES},
                "clock": {"status": "no_stamps", "reasons": ["the camera sends no timestamp_ns"]},
            },
        },
        "capture": {
            "dropped_before": 12,
            "dropped_after": 3,
            "late_wait_s": 3.0,
            "waited_s": 1.35,
            "unconfirmed": [LWIR],
        },
        "state_log": {
            "file": "state.jsonl",
            "samples": len(kept),
            "dropped": 0,
            "from_at": kept[0].received_at,
            "to_at": T0 + 1.0,
        },
    }


def _write_pngs(folder: Path, doc: dict[str, Any]) -> None:
    for k, camera in enumerate(doc["cameras"].values()):
        for n, frame in enumerate(camera["frames"]):
            path = folder / frame["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((3, 4), 10 * k + n, dtype=np.uint8)).save(path)


def write_session(folder: Path, doc: dict[str, Any] | None = None, state: bool = True) -> SessionManifest:
    """The session folder: frame PNGs, ``session.json`` and (``state``) ``state.jsonl``."""
    doc = manifest_doc() if doc is None else doc
    folder.mkdir(parents=True, exist_ok=True)
    _write_pngs(folder, doc)
    if state:
        write_state_log(folder, samples(), fsync=False)
    (folder / "session.json").write_text(json.dumps(doc), encoding="utf-8")
    return read_manifest(folder)


def old_doc(telemetry: bool = False) -> dict[str, Any]:
    """The same recording saved before capture times (format version 2): frames by arrival, no
    capture window, no state log; ``telemetry``: the pan-tilt and range-finder samples in the window
    kept in session.json, as such sessions did."""
    doc = manifest_doc()
    doc["format_version"] = 2
    for key in ("capture", "state_log"):
        doc.pop(key)
    for key in ("latest_dropped_capture_at", "earliest_saved_capture_at", "delay_s"):
        doc["settle"].pop(key)
    for camera in doc["cameras"].values():
        camera.pop("time_sources")
        camera.pop("clock")
        for frame in camera["frames"]:
            for key in ("captured_at", "time_source", "pose_method"):
                frame.pop(key)
    if telemetry:
        doc["telemetry"] = [
            {"device_id": s.device_id, "received_at": s.received_at, **s.values}
            for s in samples()
            if s.received_at >= T0 and s.device_id in (PANTILT, LRF)
        ]
    return doc


def old_session(folder: Path, telemetry: bool = False) -> SessionManifest:
    return write_session(folder, old_doc(telemetry), state=False)
