"""Atomic JSON files: write to a temp file in the same folder, fsync, ``os.replace``.

A reader never sees half a file, and a crash mid-write leaves the old file intact. A file that
cannot be parsed is moved aside (``<name>.damaged-<stamp>``) and reported, never silently reset.
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


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` so that the file is either the old or the new content."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n"
    write_bytes_atomic(path, [text.encode("utf-8")])


def write_bytes_atomic(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` atomically: a temp file in the same folder, fsync, ``os.replace``.

    For content already encoded (history.json keeps each entry's JSON text, so a change re-encodes
    one entry, not all of them)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
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
