"""The memory-cap arithmetic, in one place (``recording.memory_cap_mb``).

The cap covers everything a recording holds in memory: the frame router's pre-roll, the frames waiting
for their write, and the warm pool those frames are copied into (camera.pool). The pool gets the cap
less room for the pre-roll and for frames on their way to the spill file; a recording's writer gets
the cap less what the pre-roll holds when it starts.
"""

from __future__ import annotations

MIB = 2**20
POOL_HEADROOM_BYTES = 128 * MIB  # of a memory cap, kept out of the warm pool (at most a quarter)


def pool_max_bytes(memory_cap_mb: float | None) -> int | None:
    """The warm pool's share of the cap (None: no cap)."""
    if memory_cap_mb is None:
        return None
    cap = int(memory_cap_mb * MIB)
    return cap - min(cap // 4, POOL_HEADROOM_BYTES)


def writer_cap_bytes(memory_cap_mb: float | None, preroll_bytes: int) -> int | None:
    """What a recording's writer may hold in memory before it spills (None: no cap)."""
    if not memory_cap_mb:
        return None
    return max(0, int(memory_cap_mb * MIB) - preroll_bytes)
