"""Session folders in ``save_dir``: the one owner of what a session id is and how a folder is reached.

Every reader of session folders goes through here (the dashboard and the exports in ``api``, the
catalog, the gallery's summaries), so the rules exist once:

- the id rule: a session id is a folder name directly inside ``save_dir``, 1 to 128 characters of
  ``[0-9A-Za-z_.-]`` starting with a letter or digit, never containing ``..``;
- the traversal guard (:func:`session_folder`): an id is resolved under ``save_dir`` and refused when
  it is not a directory directly in it, or is a symbolic link;
- the listing (:func:`session_names`, :func:`newest_first`): the folders that are sessions, in the
  folder names' natural order (``…-9`` before ``…-10``), newest first;
- the stamp (:func:`manifest_stamp`): ``session.json``'s (mtime, size), which says a cached reading of
  it is still good;
- :class:`SessionFolder` (:func:`read_folder`): what a folder says about its session, its manifest
  when readable, else ``incomplete`` (none yet) or ``unreadable`` (and why) with the folder's mtime
  as its start. The gallery's summaries and the catalog's rows are both made from it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sessions.manifest import MANIFEST_NAME, ManifestError, SessionManifest, has_manifest, read_manifest

SESSION_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")

# session.json's (st_mtime_ns, st_size): unchanged, a reading of it is still good.
Stamp = tuple[int, int]


def is_session_id(name: str) -> bool:
    """Whether ``name`` may name a session folder (the id rule above)."""
    return SESSION_ID.fullmatch(name) is not None and ".." not in name


def session_folder(save_dir: Path, session_id: str) -> Path | None:
    """The resolved folder of an existing session directly inside ``save_dir`` (not a symlink), or None
    when ``session_id`` breaks the id rule or names no such folder."""
    if not is_session_id(session_id):
        return None
    folder = save_dir / session_id
    try:
        real = folder.resolve(strict=True)
        base = save_dir.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if folder.is_symlink() or not real.is_dir() or real.parent != base:
        return None
    return real


def session_names(save_dir: Path) -> list[str]:
    """Names of the session folders directly in ``save_dir``, unordered (symlinks are not sessions).
    A ``save_dir`` that does not exist has none; another OSError is raised."""
    try:
        with os.scandir(save_dir) as entries:
            return [e.name for e in entries if is_session_id(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def sort_key(name: str) -> str:
    """A string whose order is the natural order of folder names (``…-9`` before ``…-10``): numbers as
    numbers, then text (the catalog stores it, so SQLite sorts sessions as the folders are listed)."""
    return "\x01".join(_sort_part(p) for p in re.split(r"[-_.]", name))


def _sort_part(part: str) -> str:
    if not part.isdigit():
        return "1" + part
    # A number: its digit count first (one character), so that longer numbers sort later.
    digits = part.lstrip("0") or "0"
    return "0" + chr(0x40 + min(len(digits), 63)) + digits


def newest_first(names: Iterable[str]) -> list[str]:
    """Session names, newest first (the reverse of their natural order)."""
    return sorted(names, key=sort_key, reverse=True)


def manifest_stamp(folder: Path) -> Stamp | None:
    """``session.json``'s (mtime, size), or None when the folder has none (a symlink counts as none:
    it is never followed out of the session)."""
    if not has_manifest(folder):
        return None
    try:
        st = (folder / MANIFEST_NAME).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class SessionFolder:
    """A session folder as it reads: its manifest, or the reason there is none.

    ``status`` is the manifest's, or ``incomplete`` (no ``session.json``: recording, or interrupted)
    or ``unreadable`` (``error`` says why); ``started_at`` the recording's start, or without a
    manifest the folder's mtime."""

    path: Path
    stamp: Stamp | None  # session.json's, when it has one
    manifest: SessionManifest | None
    status: str
    started_at: float | None
    error: str | None = None

    @property
    def session_id(self) -> str:
        """The folder's name (which a copied folder's manifest may not agree with)."""
        return self.path.name


def read_folder(folder: Path, stamp: Stamp | None) -> SessionFolder:
    """Read a session folder whose ``session.json`` has ``stamp`` (:func:`manifest_stamp`, taken by the
    caller, which may have used it to skip the reading)."""
    if stamp is None:
        return _without_manifest(folder, None, "incomplete")
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        return _without_manifest(folder, stamp, "unreadable", str(exc))
    return of_manifest(folder, manifest, stamp)


def of_manifest(folder: Path, manifest: SessionManifest, stamp: Stamp | None) -> SessionFolder:
    """A folder whose manifest is already read (just written, say)."""
    return SessionFolder(folder, stamp, manifest, manifest.status.value, manifest.record_started_at)


def _without_manifest(
    folder: Path, stamp: Stamp | None, status: str, error: str | None = None
) -> SessionFolder:
    try:
        started: float | None = folder.stat().st_mtime
    except OSError:
        started = None
    return SessionFolder(folder, stamp, None, status, started, error)


__all__ = [
    "SESSION_ID",
    "SessionFolder",
    "Stamp",
    "is_session_id",
    "manifest_stamp",
    "newest_first",
    "of_manifest",
    "read_folder",
    "session_folder",
    "session_names",
    "sort_key",
]
