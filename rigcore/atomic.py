"""Atomic JSON files: write to a temp file in the same folder, fsync, ``os.replace``.

A reader never sees half a file, and a crash mid-write leaves the old file intact. A file that
cannot be parsed is moved aside (``<name>.damaged-<stamp>``) and reported, never silently reset.

File modes: a temp file from :func:`tempfile.mkstemp` is 0600 whatever the umask, so the file that
replaces the old one would be too (``session.json`` unreadable to a colleague who can read the
frames beside it). Before the rename it gets the mode any file the process creates gets,
``0o666 & ~umask`` — or the mode the caller asks for (``config.json`` holding a secret: 0600).
The umask is read once, when this module is imported (:func:`process_umask`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PRIVATE = 0o600  # a file only its owner may read (config.json holding a secret)


def _read_umask() -> int:
    """The process umask. Linux shows it in /proc/self/status (read-only: no race); elsewhere the only
    way is to set it and set it back, which is safe only before other threads create files, so this
    runs once, at import (the service imports this module at start, before its threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def process_umask() -> int:
    """The umask the process had when it started (read once: os.umask is process-wide state)."""
    return _UMASK


def default_file_mode() -> int:
    """The mode of a file created by ``open()`` in this process: ``0o666 & ~umask``."""
    return 0o666 & ~_UMASK


def write_json_atomic(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, mode: int | None = None
) -> None:
    """Write ``obj`` as JSON to ``path`` so that the file is either the old or the new content.
    ``mode``: the file's mode (default: what the umask gives, as for any other file written)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n"
    write_bytes_atomic(path, [text.encode("utf-8")], mode=mode)


def write_bytes_atomic(
    path: str | os.PathLike[str], chunks: Iterable[bytes], *, mode: int | None = None
) -> None:
    """Write ``chunks`` to ``path`` atomically: a temp file in the same folder, fsync, ``os.replace``.
    ``mode``: as for :func:`write_json_atomic`.

    For content already encoded (history.json keeps each entry's JSON text, so a change re-encodes
    one entry, not all of them)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # Before any byte is written: a private file is never readable by others, even for a
            # moment. (chmod on the path, not fchmod: Windows has it too, where it sets read-only.)
            os.chmod(tmp, default_file_mode() if mode is None else mode)
            fh.writelines(chunks)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json_or_quarantine(path: str | os.PathLike[str]) -> tuple[Any | None, str | None]:
    """Read a JSON file.

    Returns ``(obj, None)`` when it parses, ``(None, None)`` when it does not exist, and
    ``(None, warning)`` when it is damaged: the damaged file is renamed aside first so that
    nothing is lost, and ``warning`` says where it went.
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, set_aside(source, "it is a folder, not a file")
    except OSError as exc:  # unreadable (permissions, I/O error): left where it is, never fatal
        warning = f"{source.name} cannot be read ({exc}); starting without it"
        log.warning(warning)
        return None, warning
    try:
        # Any bytes at all: not UTF-8 (UnicodeDecodeError is a ValueError), not JSON, nested too deep.
        return json.loads(raw.decode("utf-8")), None
    except (ValueError, RecursionError) as exc:
        return None, set_aside(source, f"{type(exc).__name__}: {str(exc)[:200]}")


def set_aside(path: Path, why: str) -> str:
    """Move a damaged file aside as ``<name>.damaged-<stamp>-<pid>``; return the warning that says so
    (also logged). For a file that parses but does not fit its model, as well as unparsable JSON."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    warning = f"{path.name} was damaged ({why}); kept as {aside.name} and started afresh"
    log.warning(warning)
    return warning
