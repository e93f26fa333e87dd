"""The spill file of a session being written (sessions.writer): raw frame bytes moved out of memory
when the writer's memory cap is reached, and read back once by the encoders.

One spill thread appends (or, when it falls behind, the caller's thread: the writer decides); the
encoders read with ``pread`` on the same descriptor, so the appender's position is untouched. The file
is removed when the session is finished.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# Spilled bytes are dropped from the page cache once written back: every SPILL_DROP_EVERY appended
# bytes, the file up to SPILL_DROP_LAG behind its end. Left cached, a long recording would grow the
# cache by all it spills, each page a fresh one for the spill thread to fault in; dropped, the
# same pages serve again. Encoders read their frame back from the disk if it is gone.
SPILL_DROP_EVERY = 64 * 2**20
SPILL_DROP_LAG = 128 * 2**20


class SpillFile:
    """``path``, made at the first append; its spill thread, started at the first :meth:`submit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self._lock = threading.Lock()  # one append at a time
        self._dropped_at = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        """Run ``job(*args)`` on the spill thread."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spill")
        self._executor.submit(job, *args)

    def append(self, data: bytes | memoryview) -> tuple[int, int]:
        """Append ``data``; its (offset, length) in the file."""
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a+b")  # noqa: SIM115 - closed in close()
            offset = self._fh.seek(0, os.SEEK_END)
            self._fh.write(data)
            self._fh.flush()  # readers use pread on their own descriptor
            end = offset + len(data)
            if end - self._dropped_at >= SPILL_DROP_EVERY and end > SPILL_DROP_LAG:
                # Starts the write-back of what is dirty, drops what is clean (see SPILL_DROP_EVERY).
                drop_cached(self._fh.fileno(), 0, end - SPILL_DROP_LAG)
                self._dropped_at = end
        return offset, len(data)

    def read(self, offset: int, length: int) -> bytes:
        """Bytes appended before (the file is open until :meth:`close`), dropped from the cache after:
        each is read once."""
        assert self._fh is not None  # open until every write is done (SessionWriter.finish)
        fd = self._fh.fileno()
        data = os.pread(fd, length, offset)  # pread: the appender's position is untouched
        drop_cached(fd, offset, length)  # read once, never again
        return data

    def close(self) -> None:
        """Wait for the spill thread, close and remove the file."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.path.unlink(missing_ok=True)


def drop_cached(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to drop a file range from the page cache (where it can be asked)."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # advice only


__all__ = ["SPILL_DROP_EVERY", "SPILL_DROP_LAG", "SpillFile", "drop_cached"]
