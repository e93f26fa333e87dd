"""The one owner of the scan manifest: ``images_data/scans/<scan_id>.json``.

A scan (``POST /scans``) records the same cameras at a list of poses, one session folder per pose.
Its manifest indexes the poses: each pose's target, status, session (id and folder) and the
session's settle proof (the ``settle`` block of its ``session.json``). It is written atomically at
the start of the scan and after every pose, so a scan that has left memory (or whose process died)
is read back from it. ``format_version`` 1; unknown keys are kept, as in ``sessions.manifest``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rigcore.atomic import write_json_atomic
from rigcore.config_paths import SCANS_DIR  # under images_data_dir

SCAN_FORMAT_VERSION = 1
SCAN_ID_RE = re.compile(r"^scan-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")

ScanStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
PoseStatus = Literal["pending", "running", "done", "failed", "skipped"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class PoseTarget(_Doc):
    # int | float: a whole number stays one (a resumed scan sends it again; integer commands want it).
    pan_deg_x100: int | float
    tilt_deg_x100: int | float
    zoom: dict[str, int | float] = Field(default_factory=dict)


class PoseRecord(_Doc):
    index: int
    target: PoseTarget
    preset: str | None = None
    status: PoseStatus = "pending"
    attempts: int = 0
    session_id: str | None = None
    path: str | None = None
    settle: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class ScanManifest(_Doc):
    format_version: int = SCAN_FORMAT_VERSION
    scan_id: str
    job_id: str | None = None
    label: str | None = None
    status: ScanStatus = "queued"
    request: Any = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    poses: list[PoseRecord] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def scans_dir(images_data_dir: Path) -> Path:
    return images_data_dir / SCANS_DIR


def scan_path(images_data_dir: Path, scan_id: str) -> Path | None:
    """The manifest's path, or None for a string that is not a scan id (never a path elsewhere)."""
    if not SCAN_ID_RE.match(scan_id):
        return None
    return scans_dir(images_data_dir) / f"{scan_id}.json"


def write_scan_manifest(images_data_dir: Path, manifest: ScanManifest) -> Path:
    path = scan_path(images_data_dir, manifest.scan_id)
    assert path is not None, manifest.scan_id
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, manifest.to_json())
    return path


def read_scan_manifest(images_data_dir: Path, scan_id: str) -> ScanManifest | None:
    """The scan's manifest, or None when there is none or it cannot be read."""
    path = scan_path(images_data_dir, scan_id)
    if path is None or not path.is_file() or path.is_symlink():
        return None
    try:
        return ScanManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def list_scan_manifests(images_data_dir: Path) -> list[ScanManifest]:
    """Every readable scan manifest (unordered)."""
    folder = scans_dir(images_data_dir)
    if not folder.is_dir():
        return []
    found = (read_scan_manifest(images_data_dir, p.stem) for p in folder.glob("scan-*.json"))
    return [m for m in found if m is not None]
