"""Keep the C heap's freed memory for reuse (glibc), so the stream reader's buffers stay warm.

Every message the reader takes costs a few transient buffers as large as the message (the socket
reads joined, the frame, the unpacked pixels): 2-9 MB each, hundreds of MB a second in W2. glibc
serves such sizes with fresh ``mmap`` pages at first, and returns the top of its heap to the kernel
as soon as 128 KiB-32 MiB of it are free; either way the next message faults fresh pages in on the
reader's thread, the cost :mod:`camera.pool` exists to keep away from it (0.7-2 CPU-s per GB here).
With these settings the buffers come from the heap and freed heap memory is kept for the next
message; the heap keeps at most its own peak, a few messages' worth (the frames themselves live in
the pool's arenas, which are separate mappings). W2 against the simulated rig, whose process builds
those messages and needs the same settings (bench/capture_bench.py applies them): SWIR 96-98 %
with neither tuned, 96-100 % with one, 98.7-100 % with both.

Only glibc on Linux, and only when the ``MALLOC_*`` environment variables do not already choose.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
# Allocations below this come from the heap: glibc's largest allowed value on 64-bit, above any
# message the stream accepts by default but the largest (stream_client.max_message_bytes, 64 MiB).
MMAP_THRESHOLD_BYTES = 32 * 2**20
# Free memory at the heap's top is given back only above this.
TRIM_THRESHOLD_BYTES = 256 * 2**20
_ENV_CHOICES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_heap_warm() -> bool:
    """Apply the settings above to this process; True if they were applied."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _ENV_CHOICES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not applied:
        log.warning("could not tune the C heap (mallopt refused); frames may be lost under heavy load")
    return applied


__all__ = ["keep_heap_warm"]
