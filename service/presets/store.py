"""Named presets: poses an operator returns to (a gate, a ridge line, a calibration target).

One owner of ``presets.json`` (beside ``config.json``): :class:`PresetStore`, a typed model written
atomically under a lock (rigcore.json_store). A damaged file is moved aside with a warning, never
silently reset.

Bounds (docs/operations/security.md): at most :data:`MAX_PRESETS` presets, each at most
:data:`MAX_PRESET_BYTES` bytes as JSON with at most :data:`MAX_ZOOM_KEYS` zoom keys; beyond them a
request is refused (4xx) and nothing is saved, so presets.json stays small enough to rewrite whole.

A batch names a preset with ``{"command_id": GOTO_PRESET, "args": {"preset": name}}``;
:func:`expand_presets` (pure) replaces that command with the positioning commands that reach the
preset — pan, tilt, then each zoom — using the command ids and arguments of the configuration's
``positioning_commands`` (through :class:`RigLayout`). The plan is compiled from the expanded
commands, so they are what the rig receives, what the job's ``results`` list (one result per
command sent) and what the settle before a recording waits for; the job's history entry keeps the
batch as sent (``request``) beside them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from rigcore.checks import json_size
from rigcore.config_paths import PRESETS_FILE as PRESETS_FILE
from rigcore.json_store import FileBacked
from rigcore.rig import RigLayout

log = logging.getLogger(__name__)

MAX_PRESETS = 200  # presets in presets.json; PUT of a new name beyond it: 409
MAX_PRESET_BYTES = 16 * 1024  # one preset's body, as compact JSON; beyond it: 400
MAX_ZOOM_KEYS = 64  # cameras in one preset's zoom
GOTO_PRESET = "goto_preset"  # the command id that moves the rig to a preset (one place)
PRESET_ARG = "preset"
CAMERA_TARGET = "camera_device"  # the target_id of a command to a camera (docs/protocol.md)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Number = StrictInt | StrictFloat


class PresetValues(BaseModel):
    """A pose: pan and tilt (hundredths of a degree) and the zoom of some cameras (PUT /presets/<name>)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "description": "A pose: pan and tilt (hundredths of a degree) and the zoom of some cameras. "
            f"At most {MAX_PRESET_BYTES} bytes as JSON; at most {MAX_PRESETS} presets are kept."
        },
    )

    pan_deg_x100: Number = Field(examples=[4500], description="within the pan command's limits")
    tilt_deg_x100: Number = Field(examples=[-1000], description="within the tilt command's limits")
    zoom: dict[str, Number] = Field(
        default_factory=dict,
        max_length=MAX_ZOOM_KEYS,
        examples=[{"cameradevice_swir_1": 200}],
        description="camera id (a camera with a zoom) → zoom value, within its zoom command's limits",
    )


class Preset(PresetValues):
    """A stored pose: its values and when they were saved."""

    saved_at: float | None = None


class PresetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presets: dict[str, Preset] = Field(default_factory=dict)


class PresetsFull(Exception):
    """A new preset would make more than MAX_PRESETS; nothing was saved."""

    def __init__(self) -> None:
        super().__init__(f"there are already {MAX_PRESETS} presets; delete one first")


def size_problems(body: Any) -> list[dict[str, Any]]:
    """A body over MAX_PRESET_BYTES or MAX_ZOOM_KEYS, checked before its values (one problem, so the
    answer stays small whatever the body holds); [] otherwise."""
    size = json_size(body)
    if size > MAX_PRESET_BYTES:
        return [
            {
                "index": None,
                "field": "body",
                "message": f"{size} bytes as JSON; a preset is at most {MAX_PRESET_BYTES}",
            }
        ]
    zoom = body.get("zoom") if isinstance(body, dict) else None
    if isinstance(zoom, dict) and len(zoom) > MAX_ZOOM_KEYS:
        return [{"index": None, "field": "zoom", "message": f"{len(zoom)} keys; at most {MAX_ZOOM_KEYS}"}]
    return []


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a preset, or None."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return "a preset name is 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'"


def presets_path(config_path: Path | None, base_dir: Path) -> Path:
    """presets.json in the folder of the service's config file, else in ``base_dir``."""
    return (config_path.parent if config_path is not None else base_dir) / PRESETS_FILE


class PresetStore(FileBacked[PresetFile]):
    """The presets, read once at start and rewritten whole (atomically) on every change."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, PresetFile)
        self._presets: dict[str, Preset] = {} if self.loaded is None else dict(self.loaded.presets)

    def all(self) -> dict[str, Preset]:
        """A snapshot of every preset (the store replaces its mapping whole; this one never changes)."""
        return self._presets

    def get(self, name: str) -> Preset | None:
        return self._presets.get(name)

    def put(self, name: str, preset: Preset) -> bool:
        """Store ``preset`` under ``name`` (already validated); True when the name is new. PresetsFull
        when it is new and MAX_PRESETS are kept already."""
        stamped = preset.model_copy(update={"saved_at": time.time()})
        with self._file.lock:
            created = name not in self._presets
            if created and len(self._presets) >= MAX_PRESETS:
                raise PresetsFull
            self._save({**self._presets, name: stamped})
        return created

    def delete(self, name: str) -> bool:
        """Remove ``name``; False when there was no such preset."""
        with self._file.lock:
            if name not in self._presets:
                return False
            self._save({k: v for k, v in self._presets.items() if k != name})
        return True

    def _save(self, presets: dict[str, Preset]) -> None:
        # The file first: if it cannot be written, nothing changes in memory either.
        self._file.save(PresetFile(presets=presets))
        self._presets = presets


def preset_commands(preset: Preset, layout: RigLayout, target_id: str) -> list[dict[str, Any]]:
    """The positioning commands that move the rig to ``preset`` (validated: each has a command)."""
    moves = [
        (target_id, layout.pantilt_id, layout.pan_field, preset.pan_deg_x100),
        (target_id, layout.pantilt_id, layout.tilt_field, preset.tilt_deg_x100),
        *((CAMERA_TARGET, cam, layout.zoom_fields[cam], value) for cam, value in preset.zoom.items()),
    ]
    out = []
    for target, device, field, value in moves:
        command_id = layout.command_for(field)
        assert command_id is not None, f"validation checks that a command drives {field}"
        arg = layout.positioning[command_id].arg
        out.append({"target_id": target, "device_id": device, "command_id": command_id, "args": {arg: value}})
    return out


def expand_presets(
    commands: Sequence[Mapping[str, Any]], presets: Mapping[str, Preset], layout: RigLayout
) -> list[Mapping[str, Any]]:
    """``commands`` with every GOTO_PRESET command replaced by its positioning commands."""
    out: list[Mapping[str, Any]] = []
    for cmd in commands:
        if cmd["command_id"] != GOTO_PRESET:
            out.append(cmd)
            continue
        out.extend(preset_commands(presets[cmd["args"][PRESET_ARG]], layout, cmd["target_id"]))
    return out
