"""A session folder as a zip, streamed while it is made (``GET /sessions/<id>.zip``, api.dashboard).

Files are stored, not compressed (frames are already compressed PNG/JPEG, and storing keeps the
download at disk speed); the zip is written to a file object without ``seek``/``tell``, so zipfile
writes data descriptors, as a stream needs. Symbolic links are skipped, never followed.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

ZIP_CHUNK = 1024 * 1024


def walk(folder: Path) -> Iterator[tuple[Path, str]]:
    """Regular files under ``folder`` (symlinks are skipped, never followed), sorted."""
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            yield path, path.relative_to(folder).as_posix()


class _Chunks:
    """A write-only file for :class:`zipfile.ZipFile`: it collects what is written until taken.
    Having no ``seek``/``tell``, it makes zipfile write data descriptors, as a stream needs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, b: bytes, /) -> int:
        self._parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_stream(session_id: str, files: list[tuple[Path, str]]) -> Iterator[bytes]:
    out = _Chunks()
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED) as zf:
        for path, rel in files:
            try:
                src = path.open("rb")
            except OSError:
                continue  # vanished since the listing: leave it out
            with src:
                st = os.fstat(src.fileno())
                info = zipfile.ZipInfo(f"{session_id}/{rel}", date_time=_zip_time(st.st_mtime))
                info.file_size = st.st_size  # decides zip64 up front
                info.compress_type = zipfile.ZIP_STORED
                with zf.open(info, mode="w") as dest:
                    while chunk := src.read(ZIP_CHUNK):
                        dest.write(chunk)
                        yield out.take()
            if data := out.take():
                yield data  # the data descriptor
    yield out.take()  # the central directory


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.localtime(max(mtime, 315532800))  # zip dates start in 1980
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec


__all__ = ["ZIP_CHUNK", "walk", "zip_stream"]
