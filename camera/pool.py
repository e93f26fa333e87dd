"""Warm memory for received frames: the stream reader never touches a fresh page.

Holding frames while they wait for their encode means holding a lot of memory (W2 buffers gigabytes
in ten seconds), and the first write to each fresh page costs a page fault and the page's zeroing —
here about 0.7-1.6 CPU-seconds a gigabyte, 20-40 times the cost of writing to a page already
mapped. Paid on the stream reader's thread, that made the rig skip a third of the frames of W2; a
bare reader that only *keeps* what it receives shows the same loss.

So the writer copies each frame it keeps into a :class:`FramePool`: arenas of anonymous memory that a
low-priority grower thread maps and touches *before* they are needed, and that are reused, not
freed, as frames are written. The copy itself is a ``memcpy`` into mapped memory (about 25 times
cheaper than faulting the same bytes in), and the message ``bytes`` it came from are freed at once, so
the reader's own allocations recycle the same few megabytes.

* :meth:`FramePool.acquire` (the event loop thread) never maps or touches memory: it carves the
  buffer from the current arena, or from a warm free one, or returns ``None`` (the caller then spills
  or keeps the frame as it is).
* The grower keeps ``warm_s`` seconds of the streams' ingest rate (at least ``min_warm_bytes``) free
  and warm, never mapping more than ``max_bytes`` in all; it runs at nice 10, below the reader but
  above the encoders (nice 19), so the recording's buffers come before the encoding.
* An arena returns to the free list when its last buffer is released; free arenas beyond the warm
  target are unmapped once no buffer has been taken for ``trim_after_s``.

Arenas are ``mmap`` anonymous mappings, not heap blocks, so unmapping one really returns its memory:
the pool's memory is exactly ``arenas x arena_bytes``.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIB = 2**20
ARENA_BYTES = 64 * MIB  # larger than any frame docs/protocol.md §4 allows in one message (20 MiB)
ALIGN = 64  # buffer offsets, for the memcpy
PAGE = mmap.PAGESIZE
RATE_WINDOW_S = 10.0  # the ingest rate used for the warm target is the peak over this window
TICK_S = 0.25  # the grower looks at the rate, the target and the trim this often
GROWER_NICE = 10


@dataclass(eq=False, slots=True)
class _Arena:
    mm: mmap.mmap
    view: memoryview
    used: int = 0  # bump pointer
    live: int = 0  # buffers handed out and not released


@dataclass(eq=False, slots=True)
class PoolBuffer:
    """``nbytes`` of warm memory; ``view`` is writable. Give it back with :meth:`FramePool.release`
    (once per holder: :meth:`FramePool.retain` adds one, e.g. an event's writer sharing the ring's copy)."""

    view: memoryview
    nbytes: int
    arena: _Arena
    holders: int = 1


@dataclass(frozen=True, slots=True)
class PoolStats:
    mapped_bytes: int  # arenas mapped (warm): the pool's memory
    free_bytes: int  # in free arenas, ready to hand out
    in_use_bytes: int  # in buffers handed out and not released
    peak_mapped_bytes: int
    hits: int  # acquire calls served
    misses: int  # acquire calls that got None
    target_bytes: int  # what the grower keeps free


class FramePool:
    """Pre-touched arenas handed out as frame buffers. Thread-safe; see the module text."""

    def __init__(
        self,
        *,
        max_bytes: int | None,
        warm_s: float = 2.0,
        min_warm_bytes: int = 2 * ARENA_BYTES,
        arena_bytes: int = ARENA_BYTES,
        ingest_bytes: Callable[[], int] | None = None,
        trim_after_s: float = 5.0,
    ) -> None:
        if arena_bytes <= 0 or arena_bytes % PAGE:
            raise ValueError(f"arena_bytes must be a positive multiple of the page size ({PAGE})")
        self.arena_bytes = arena_bytes
        self.max_arenas: int | None = None
        self._warm_s = 0.0
        self._min_warm_bytes = max(0, min_warm_bytes)
        self._min_warm = 0
        self._ingest_bytes = ingest_bytes
        self._trim_after_s = trim_after_s
        self._cond = threading.Condition(threading.Lock())
        self._free: list[_Arena] = []  # empty and warm; the most recently used last (reused first)
        self._current: _Arena | None = None
        self._arenas = 0
        self._in_use = 0
        self._peak_arenas = 0
        self._hits = 0
        self._misses = 0
        self._target = 0
        self._last_acquire = time.monotonic()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.configure(max_bytes, warm_s)

    def configure(self, max_bytes: int | None, warm_s: float) -> None:
        """New limits; the grower follows them from its next tick (warm_s 0: keep nothing warm)."""
        with self._cond:
            self.max_arenas = None if max_bytes is None else max(0, max_bytes) // self.arena_bytes
            self._warm_s = max(0.0, warm_s)
            self._min_warm = self._min_warm_bytes if self._warm_s > 0 else 0
            self._target = self._round_up(self._min_warm)
            self._cond.notify_all()

    # -- the loop thread ------------------------------------------------------------------------

    def acquire(self, nbytes: int) -> PoolBuffer | None:
        """A warm buffer of ``nbytes``, or None if none is ready. Never maps or touches memory."""
        if nbytes <= 0 or nbytes > self.arena_bytes:
            return None
        with self._cond:
            self._last_acquire = time.monotonic()
            arena = self._current
            # (release() starts an arena over once its last buffer is back, so a full one is in use.)
            if arena is None or arena.used + nbytes > self.arena_bytes:
                if not self._free:
                    self._misses += 1
                    self._cond.notify_all()
                    return None
                self._current = arena = self._free.pop()
            offset = arena.used
            arena.used = min(self.arena_bytes, (offset + nbytes + ALIGN - 1) // ALIGN * ALIGN)
            arena.live += 1
            self._in_use += nbytes
            self._hits += 1
            if len(self._free) * self.arena_bytes < self._target:
                self._cond.notify_all()  # wake the grower
        return PoolBuffer(arena.view[offset : offset + nbytes], nbytes, arena)

    def copy_in(self, data: bytes | memoryview) -> PoolBuffer | None:
        """``data`` copied into a warm buffer, or None if none is ready."""
        buffer = self.acquire(len(data))
        if buffer is not None:
            buffer.view[:] = data
        return buffer

    # -- any thread -------------------------------------------------------------------------------

    def retain(self, buffer: PoolBuffer) -> PoolBuffer:
        """One more holder of ``buffer`` (each one releases it); the memory is not copied."""
        with self._cond:
            buffer.holders += 1
        return buffer

    def release(self, buffer: PoolBuffer) -> None:
        """Give a buffer back. Once its last holder did, its memory may be handed out again at once:
        drop every view of it."""
        with self._cond:
            buffer.holders -= 1
            if buffer.holders > 0:
                return
            arena = buffer.arena
            arena.live -= 1
            self._in_use -= buffer.nbytes
            if arena.live == 0:
                arena.used = 0
                if arena is not self._current:
                    self._free.append(arena)

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(
                mapped_bytes=self._arenas * self.arena_bytes,
                free_bytes=len(self._free) * self.arena_bytes,
                in_use_bytes=self._in_use,
                peak_mapped_bytes=self._peak_arenas * self.arena_bytes,
                hits=self._hits,
                misses=self._misses,
                target_bytes=self._target,
            )

    def start(self) -> None:
        """Start the grower thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._grow_loop, name="frame-pool", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the grower and drop the free arenas (buffers still out stay valid until released)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._cond:
            self._arenas -= len(self._free)
            self._free.clear()

    def fill(self, nbytes: int) -> None:
        """Map and touch arenas until ``nbytes`` are free (within ``max_bytes``), on this thread."""
        while self._grow_one(nbytes):
            pass

    def _grow_one(self, wanted_free: int) -> bool:
        """Map and touch one more arena if fewer than ``wanted_free`` bytes are free and the limit
        allows; False if none was needed or allowed. Raises what mapping raises."""
        with self._cond:
            if not self._needs_arena(wanted_free):
                return False
            self._arenas += 1  # counted before mapping, so the limit holds while we map
            self._peak_arenas = max(self._peak_arenas, self._arenas)
        try:
            arena = self._map_arena()
        except BaseException:
            with self._cond:
                self._arenas -= 1
            raise
        with self._cond:
            self._free.insert(0, arena)  # cold end: warm arenas already in use go first
        return True

    def _needs_arena(self, wanted_free: int) -> bool:
        """Lock held."""
        return len(self._free) * self.arena_bytes < wanted_free and not self._at_limit()

    # -- the grower thread --------------------------------------------------------------------------

    def _grow_loop(self) -> None:
        lower_thread_priority(GROWER_NICE)
        rates: deque[tuple[float, int]] = deque()
        while True:
            with self._cond:
                if self._closed:
                    return
                self._target = target = self._warm_target(rates)
            try:
                if self._grow_one(target):
                    continue
            except (OSError, ValueError, MemoryError) as exc:
                log.warning("frame pool: could not map %d bytes (%s); retrying", self.arena_bytes, exc)
                time.sleep(1.0)
                continue
            with self._cond:
                if self._needs_arena(self._target):
                    continue  # buffers were taken meanwhile
                self._cond.wait(TICK_S)
                if self._closed:
                    return
                self._trim_idle()

    def _warm_target(self, rates: deque[tuple[float, int]]) -> int:
        """Free bytes to keep: ``warm_s`` x the peak ingest rate of the last RATE_WINDOW_S, at least
        ``min_warm_bytes``. The counter is sampled once a tick at most. Called with the lock held."""
        target = self._min_warm
        if self._ingest_bytes is not None and self._warm_s > 0:
            now = time.monotonic()
            if not rates or now - rates[-1][0] >= TICK_S:
                rates.append((now, self._ingest_bytes()))
                while len(rates) > 2 and rates[1][0] < now - RATE_WINDOW_S:
                    rates.popleft()
            peak = max(((b1 - b0) / (t1 - t0) for (t0, b0), (t1, b1) in pairwise(rates)), default=0.0)
            target = max(target, int(peak * self._warm_s))
        return self._round_up(target)

    def _trim_idle(self) -> None:
        """Unmap free arenas beyond the target once nobody has asked for a while, and at once those
        beyond a lowered limit. Lock held."""
        keep = len(self._free)
        if time.monotonic() - self._last_acquire >= self._trim_after_s:
            keep = self._target // self.arena_bytes
            if self._current is not None and self._current.live == 0:
                self._free.append(self._current)  # idle and empty: as free as the others
                self._current = None
        if self.max_arenas is not None:
            keep = min(keep, max(0, len(self._free) - (self._arenas - self.max_arenas)))
        while len(self._free) > keep:
            arena = self._free.pop(0)  # the coldest
            self._arenas -= 1
            try:
                arena.view.release()
                arena.mm.close()
            except BufferError:
                pass  # a stale view of it is still alive: the mapping goes when that view does

    def _at_limit(self) -> bool:
        return self.max_arenas is not None and self._arenas >= self.max_arenas

    def _round_up(self, nbytes: int) -> int:
        return -(-nbytes // self.arena_bytes) * self.arena_bytes

    def _map_arena(self) -> _Arena:
        mm = mmap.mmap(-1, self.arena_bytes)
        pages: Any = np.frombuffer(mm, dtype=np.uint8)
        pages[::PAGE] = 0  # one write per page: the kernel maps each one now, not on the reader's thread
        del pages
        return _Arena(mm, memoryview(mm))


def lower_thread_priority(nice: int) -> None:
    """Give the calling thread this nice value (Linux takes a thread id; elsewhere, or if not
    permitted, it keeps its priority)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass


__all__ = ["ARENA_BYTES", "FramePool", "PoolBuffer", "PoolStats", "lower_thread_priority"]
