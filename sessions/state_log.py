"""The one owner of ``state.jsonl``: the rig's state samples kept with a session.

A frame's pose is the rig's state at the frame's *capture* time (docs/protocol.md §5), and frames
travel behind the state topics, so a session keeps the state samples themselves: every device's
messages (pan-tilt, zoom lenses, range finder) from the batch's first command to the recording's
end, with their arrival times. The report's settle trace and the MCAP ``/rig/state`` topic are drawn
from them; each frame's pose was interpolated from them when the session was saved.

The format: one JSON object per line, oldest first::

    {"device_id": "acikgoz_pantilt", "received_at": 1765012345.123, "retained": false,
     "values": {"pan_deg_x100": 4500, "tilt_deg_x100": 0}}

``values`` names what the sample reports in the service's own terms: ``pan_deg_x100`` and
``tilt_deg_x100`` (pan-tilt; ``moving`` where the rig sends that flag), ``zoom`` (a camera's lens),
``distance_m`` (range finder; ``null`` for no valid reading). ``session.json`` points at the file
with its ``state_log`` section (:class:`StateLogInfo`). A session saved before this file existed kept
pan-tilt and range-finder samples as ``telemetry`` in ``session.json``; :func:`read_state_log` reads
those too, so readers need no second path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

STATE_LOG_NAME = "state.jsonl"
# Samples kept per session (every device at 5-20 Hz: over ten minutes of a busy rig); beyond this the
# newest are dropped and counted in StateLogInfo.dropped.
MAX_STATE_SAMPLES = 50_000


class StateRecord(BaseModel):
    """One state message as kept: who sent it, when it arrived, what it said."""

    model_config = ConfigDict(extra="allow")

    device_id: str
    received_at: float
    retained: bool = False
    values: dict[str, Any]


class StateLogInfo(BaseModel):
    """``session.json``'s ``state_log``: where the samples are and what they span."""

    model_config = ConfigDict(extra="allow")

    file: str = STATE_LOG_NAME
    samples: int
    dropped: int = 0
    from_at: float | None = None  # epoch seconds: the span the samples were kept over
    to_at: float | None = None


def write_state_log(folder: Path, records: Iterable[StateRecord], *, fsync: bool = True) -> int:
    """Write ``state.jsonl`` (temp file, then rename); returns the number of lines."""
    path = folder / STATE_LOG_NAME
    tmp = path.with_name(f".{STATE_LOG_NAME}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.model_dump(mode="json"), separators=(",", ":")) + "\n")
            count += 1
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    return count


def read_state_log(folder: Path, manifest_extra: dict[str, Any] | None = None) -> list[StateRecord]:
    """The session's state samples, oldest first.

    From ``state.jsonl`` when the folder has one (a line that cannot be read is skipped); else from
    an older session's ``telemetry`` in ``session.json`` (``manifest_extra``: the manifest's extra
    keys), else none. A symbolic link is not followed out of the session.
    """
    path = folder / STATE_LOG_NAME
    if path.is_file() and not path.is_symlink():
        return _read_lines(path)
    return _from_telemetry((manifest_extra or {}).get("telemetry"))


def _read_lines(path: Path) -> list[StateRecord]:
    out: list[StateRecord] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(StateRecord.model_validate(json.loads(line)))
        except (ValueError, ValidationError):
            continue
    return out


_TELEMETRY_KEYS = ("pan_deg_x100", "tilt_deg_x100", "distance_m")


def _from_telemetry(telemetry: Any) -> list[StateRecord]:
    if not isinstance(telemetry, list):
        return []
    out = []
    for entry in telemetry:
        if not isinstance(entry, dict) or not isinstance(entry.get("received_at"), int | float):
            continue
        values = {k: entry[k] for k in _TELEMETRY_KEYS if k in entry}
        device = str(entry.get("device_id", ""))
        out.append(StateRecord(device_id=device, received_at=float(entry["received_at"]), values=values))
    return out


__all__ = [
    "MAX_STATE_SAMPLES",
    "STATE_LOG_NAME",
    "StateLogInfo",
    "StateRecord",
    "read_state_log",
    "write_state_log",
]
