"""The file formats of the history (service.history.store): history.json and its archives laid out as
``json.dump(indent=2)`` would, written in pieces; the journal and the archive index as JSON lines,
appended with fsync."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

TAIL = b"\n  ]\n}\n"  # how document() ends a file without "archived": where an archive is extended


def normalized(value: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy holding only JSON types (what a reader of the files gets back)."""
    out: dict[str, Any] = json.loads(json_line(value))
    return out


def json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def encode_entry(entry: dict[str, Any]) -> bytes:
    """An entry as history.json shows it: indented by 2, nested in the "requests" list."""
    text = json.dumps(entry, indent=2, ensure_ascii=False, default=str)
    return to_bytes("    " + text.replace("\n", "\n    "))


def document(texts: Iterable[bytes], archived: dict[str, Any] | None = None) -> Iterator[bytes]:
    """``{"requests": [...]}`` from encoded entries, laid out as ``json.dump(indent=2)`` would, in
    pieces (written one after the other: no copy of the whole)."""
    before = b'{\n  "requests": [\n'
    for text in texts:
        yield before
        yield text
        before = b",\n"
    yield b'{\n  "requests": []' if before != b",\n" else b"\n  ]"
    if archived:
        yield b',\n  "archived": ' + json.dumps(archived, indent=2).replace("\n", "\n  ").encode()
    yield b"\n}\n"


def to_bytes(text: str) -> bytes:
    # A lone surrogate (JSON "\ud800" reads as one) is written back as its JSON escape: still valid.
    return text.encode("utf-8", "backslashreplace")


def append_lines(path: Path, lines: Iterable[str]) -> int:
    """Append lines and fsync; a failed append is cut off so no torn line stays. Returns the new size."""
    data = b"".join(to_bytes(line) + b"\n" for line in lines)
    with open(path, "ab") as fh:
        start = fh.tell()
        try:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            try:
                fh.truncate(start)
            except OSError:
                pass
            raise
        return start + len(data)


def read_lines(path: Path) -> tuple[list[Any], int, bool]:
    """The JSON lines of ``path``: (values, unreadable complete lines, torn last line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0, False
    lines = data.split(b"\n")
    torn = lines.pop() != b""  # a kill mid-append: that change was never acknowledged
    values, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
            bad += 1
    return values, bad, torn


def month_of(entry: dict[str, Any]) -> str:
    when = entry.get("received_at")
    if isinstance(when, int | float) and not isinstance(when, bool):
        try:
            return time.strftime("%Y-%m", time.localtime(when))
        except (OverflowError, OSError, ValueError):
            pass
    return "undated"


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def aside_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
