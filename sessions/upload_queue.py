"""The one owner of the upload queue on disk: ``images_data/uploads/``.

Each session (or final scan manifest) to copy to the object store has two files, under
``uploads/sessions/`` or ``uploads/scans/``:

``<id>.json``          an :class:`UploadRecord`, written atomically on each change of state: where the
                       item is, where it goes (``target``), its state, attempts, back-off and last error.
``<id>.verified.jsonl`` one :class:`VerifiedObject` per line, appended (and flushed) the moment an object
                       was uploaded and checked against the store. It is the record of what never needs
                       uploading again; a torn last line (a kill mid-write) is ignored.

The record is rewritten a few times per item, the journal once per object: a session of thousands of
frames costs thousands of short appends, not thousands of rewrites of a growing file. The journal is
valid for one ``target`` (endpoint, bucket, key prefix) only: when the configured store changes, the
item starts over (:func:`reset_journal`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rigcore.atomic import write_json_atomic
from rigcore.config_paths import UPLOADS_DIR  # under images_data_dir

log = logging.getLogger(__name__)

UPLOAD_FORMAT_VERSION = 1
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$")

ItemKind = Literal["session", "scan"]


class UploadState(StrEnum):
    PENDING = "pending"  # queued, nothing tried yet
    UPLOADING = "uploading"  # being uploaded (or cut off while it was: resumed at the next start)
    UPLOADED = "uploaded"  # every object uploaded and verified; the local copy is kept
    FAILED = "failed"  # the last attempt failed (last_error); tried again at next_attempt_at
    LOCAL_DELETED = "local-deleted"  # uploaded and verified, then the local copy was deleted


# States in which an item still has work to do.
OPEN_STATES = frozenset({UploadState.PENDING, UploadState.UPLOADING, UploadState.FAILED})


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class UploadRecord(_Doc):
    format_version: int = UPLOAD_FORMAT_VERSION
    kind: ItemKind
    item_id: str
    # The session folder, or the scan manifest file.
    source: str
    # "<endpoint> <bucket> <key prefix>": the journal holds objects verified in this place only.
    target: str
    state: UploadState = UploadState.PENDING
    queued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    # Known once an attempt listed the files: how many objects and bytes the item has.
    objects: int | None = None
    bytes_total: int | None = None
    # Multipart uploads begun and not completed (key → upload id): aborted before the next attempt.
    multipart: dict[str, str] = Field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The item's state as the API shows it (GET /sessions/<id> "upload")."""
        return {
            "state": str(self.state),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "queued_at": self.queued_at,
            "finished_at": self.finished_at,
            "next_attempt_at": self.next_attempt_at if self.state == UploadState.FAILED else None,
            "objects": self.objects,
            "bytes": self.bytes_total,
        }


class VerifiedObject(_Doc):
    key: str
    size: int
    etag: str
    at: float


def _kind_dir(images_data_dir: Path, kind: ItemKind) -> Path:
    return images_data_dir / UPLOADS_DIR / f"{kind}s"


def record_path(images_data_dir: Path, kind: ItemKind, item_id: str) -> Path:
    if not _SAFE_ID.match(item_id):
        raise ValueError(f"{item_id!r} is not usable as an upload item id")
    return _kind_dir(images_data_dir, kind) / f"{item_id}.json"


def journal_path(images_data_dir: Path, kind: ItemKind, item_id: str) -> Path:
    return record_path(images_data_dir, kind, item_id).with_suffix(".verified.jsonl")


def write_record(images_data_dir: Path, record: UploadRecord) -> None:
    write_json_atomic(record_path(images_data_dir, record.kind, record.item_id), record.to_json())


def read_record(images_data_dir: Path, kind: ItemKind, item_id: str) -> UploadRecord | None:
    """The item's record, or None: none (or an id that cannot be one), or not readable (logged)."""
    try:
        path = record_path(images_data_dir, kind, item_id)
    except ValueError:
        return None
    return _load(path)


def _load(path: Path) -> UploadRecord | None:
    try:
        return UploadRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError, RecursionError) as exc:  # damaged: the item starts over
        log.warning("upload record %s is not readable (%s); ignored", path, exc)
        return None


def list_records(images_data_dir: Path) -> Iterator[UploadRecord]:
    """Every readable record, sessions first, each kind in name order."""
    for kind in ("session", "scan"):
        folder = _kind_dir(images_data_dir, kind)
        try:
            names = sorted(p for p in folder.iterdir() if p.name.endswith(".json"))
        except FileNotFoundError:
            continue
        for path in names:
            if path.name.startswith("."):
                continue
            record = _load(path)
            if record is not None:
                yield record


def read_journal(images_data_dir: Path, kind: ItemKind, item_id: str) -> dict[str, VerifiedObject]:
    """The objects verified so far, by key. Lines that do not parse (a torn last line) are skipped."""
    verified: dict[str, VerifiedObject] = {}
    try:
        # Any bytes: a line that is not UTF-8 or not JSON is skipped like a torn one.
        text = journal_path(images_data_dir, kind, item_id).read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return verified
    except OSError as exc:
        log.warning("upload journal of %s %s unreadable (%s); objects checked again", kind, item_id, exc)
        return verified
    for line in text.splitlines():
        try:
            obj = VerifiedObject.model_validate(json.loads(line))
        except (ValueError, ValidationError, RecursionError):
            continue
        verified[obj.key] = obj
    return verified


class Journal:
    """Appends verified objects to one item's journal; one line per object, flushed at once (a kill
    of the process loses nothing flushed; a power cut may lose the last lines, which the uploader
    finds again by asking the store before it uploads anything of an item it resumes)."""

    def __init__(self, images_data_dir: Path, kind: ItemKind, item_id: str) -> None:
        path = journal_path(images_data_dir, kind, item_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        # A line torn by a kill has no newline: start on a fresh line so the next one parses.
        if self._fh.tell() > 0:
            with path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self._fh.write("\n")

    def add(self, obj: VerifiedObject) -> None:
        self._fh.write(json.dumps(obj.to_json(), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def reset_journal(images_data_dir: Path, kind: ItemKind, item_id: str) -> None:
    """Forget what was verified (the item goes to another store now)."""
    try:
        journal_path(images_data_dir, kind, item_id).unlink()
    except FileNotFoundError:
        pass
