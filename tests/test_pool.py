"""camera.pool: warm frame buffers, and the session writer using them.

Real mmap arenas (1 MiB here, to keep the tests light), a real grower thread, real files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camera.frames import Frame
from camera.pool import FramePool
from sessions.writer import CameraWriteOptions, SessionWriter, create_session_dir

MIB = 2**20
ARENA = MIB
TIMEOUT = 20.0 * float(os.environ.get("RIGCAPTURE_TIME_FACTOR", "1"))
POSE = {"pan_deg": 1.0, "tilt_deg": 2.0, "zoom": None, "distance_m": None}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def pools() -> Iterator[list[FramePool]]:
    made: list[FramePool] = []
    yield made
    for pool in made:
        pool.close()


def new_pool(pools: list[FramePool], **kw: object) -> FramePool:
    kw.setdefault("arena_bytes", ARENA)
    kw.setdefault("min_warm_bytes", 0)
    pool = FramePool(**kw)  # type: ignore[arg-type]
    pools.append(pool)
    return pool


def test_an_empty_pool_hands_out_nothing_and_counts_the_miss(pools: list[FramePool]) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=0)
    assert pool.acquire(1000) is None
    assert pool.copy_in(b"abc") is None
    stats = pool.stats()
    assert (stats.misses, stats.hits, stats.mapped_bytes) == (2, 0, 0)


def test_buffers_hold_their_bytes_and_never_overlap(pools: list[FramePool]) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=1)
    pool.fill(2 * ARENA)
    rng = np.random.default_rng(1)
    blobs = [
        rng.integers(0, 256, size, dtype=np.uint8).tobytes() for size in (1, 100_003, 300_000, 65, 500_000)
    ]
    buffers = [pool.copy_in(blob) for blob in blobs]
    assert all(b is not None for b in buffers)
    for blob, buf in zip(blobs, buffers, strict=True):
        assert buf is not None
        assert buf.nbytes == len(blob) and bytes(buf.view) == blob  # nothing overwrote it
    assert pool.stats().in_use_bytes == sum(map(len, blobs))


def test_a_frame_larger_than_an_arena_is_refused(pools: list[FramePool]) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=1)
    pool.fill(ARENA)
    assert pool.acquire(ARENA + 1) is None
    assert pool.acquire(ARENA) is not None


def test_released_arenas_are_reused_not_remapped(pools: list[FramePool]) -> None:
    pool = new_pool(pools, max_bytes=2 * ARENA, warm_s=1)
    pool.fill(10 * ARENA)
    assert pool.stats().mapped_bytes == 2 * ARENA  # fill stops at the limit
    size = 300_000
    taken = []
    while (buf := pool.acquire(size)) is not None:
        taken.append(buf)
    assert len(taken) == 2 * (ARENA // size)  # three per arena, then full
    for buf in taken:
        pool.release(buf)
    stats = pool.stats()
    assert stats.in_use_bytes == 0 and stats.mapped_bytes == 2 * ARENA
    again = [pool.acquire(size) for _ in range(len(taken))]
    assert all(b is not None for b in again)
    assert pool.stats().mapped_bytes == 2 * ARENA


def test_the_grower_keeps_the_warm_target_free_within_the_limit(pools: list[FramePool]) -> None:
    ingest = [0]
    pool = new_pool(
        pools, max_bytes=6 * ARENA, warm_s=1.0, min_warm_bytes=2 * ARENA, ingest_bytes=lambda: ingest[0]
    )
    pool.start()
    wait_for(lambda: pool.stats().free_bytes >= 2 * ARENA, "the minimum warm bytes")
    # Frames taken from the pool are replaced by new warm arenas.
    held = [pool.acquire(ARENA) for _ in range(2)]
    assert all(b is not None for b in held)
    wait_for(lambda: pool.stats().free_bytes >= 2 * ARENA, "the pool to grow back")
    # A high ingest rate raises the target, but never past max_bytes.
    for _ in range(20):
        ingest[0] += 50 * ARENA
        time.sleep(0.05)
    wait_for(lambda: pool.stats().mapped_bytes == 6 * ARENA, "the pool to reach its limit")
    time.sleep(0.6)
    assert pool.stats().mapped_bytes == 6 * ARENA
    assert pool.stats().peak_mapped_bytes == 6 * ARENA


def test_idle_arenas_beyond_the_target_are_unmapped(pools: list[FramePool]) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=1.0, min_warm_bytes=ARENA, trim_after_s=0.2)
    pool.fill(5 * ARENA)
    held = [pool.acquire(ARENA // 2) for _ in range(8)]
    for buf in held:
        assert buf is not None
        pool.release(buf)
    pool.start()
    wait_for(lambda: pool.stats().mapped_bytes == ARENA, "the trim to the warm target")


def test_a_lowered_limit_unmaps_free_arenas_at_once(pools: list[FramePool]) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=1.0, trim_after_s=3600)
    pool.fill(4 * ARENA)
    pool.start()
    pool.configure(ARENA, 1.0)
    wait_for(lambda: pool.stats().mapped_bytes == ARENA, "the lowered limit")


def frame(camera_id: str, pixels: bytes, width: int, height: int, fmt: str, index: int) -> Frame:
    return Frame(camera_id, pixels, width, height, fmt, index * 1000, index, 1_790_000_000.0 + index, 1.0)


def test_the_writer_saves_pool_held_frames_bit_exact_and_gives_the_memory_back(
    pools: list[FramePool], tmp_path: Path
) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=1)
    pool.fill(4 * ARENA)
    rng = np.random.default_rng(7)
    arrays = [rng.integers(0, 65535, (120, 160), dtype=np.uint16) for _ in range(12)]
    session_id, path = create_session_dir(tmp_path / "save_images")
    with ThreadPoolExecutor(2) as executor:
        writer = SessionWriter(
            path, session_id, {"lwir": CameraWriteOptions(previews=True)}, executor, pool=pool
        )
        for i, arr in enumerate(arrays, 1):
            writer.add(frame("lwir", arr.astype("<u2").tobytes(), 160, 120, "mono16", i), POSE)
        manifest = writer.finish({})
    assert writer.warm_frames == 12 and writer.cold_frames == 0
    assert pool.stats().in_use_bytes == 0
    files = manifest.to_json()["cameras"]["lwir"]["frames"]
    assert len(files) == 12
    for arr, entry in zip(arrays, files, strict=True):
        with Image.open(path / entry["file"]) as img:
            assert img.mode.startswith("I;16")
            np.testing.assert_array_equal(np.asarray(img).astype(np.uint16), arr)
        assert (path / entry["preview"]).is_file()


def test_with_a_cap_frames_the_pool_cannot_take_are_spilled_and_still_saved(
    pools: list[FramePool], tmp_path: Path
) -> None:
    pool = new_pool(pools, max_bytes=ARENA, warm_s=1)
    pool.fill(ARENA)
    size = 200 * 1000  # 200x1000 mono8: five fit in the one arena
    blobs = [bytes([i]) * size for i in range(1, 13)]
    session_id, path = create_session_dir(tmp_path / "save_images")
    with ThreadPoolExecutor(1) as executor:
        gate = executor.submit(time.sleep, 0.5)  # hold the writes back so the pool fills up
        writer = SessionWriter(
            path,
            session_id,
            {"swir": CameraWriteOptions(image_format="tiff")},
            executor,
            memory_cap_bytes=ARENA,
            spill_dir=tmp_path / "images_data" / "spill",
            pool=pool,
        )
        for i, blob in enumerate(blobs, 1):
            writer.add(frame("swir", blob, 1000, 200, "mono8", i), POSE)
        assert writer.warm_frames == 5
        manifest = writer.finish({})
        gate.result()
    assert writer.spilled_frames == 7 and writer.cold_frames == 0
    assert pool.stats().in_use_bytes == 0
    entries = manifest.cameras["swir"].frames
    assert [e.frame_index for e in entries] == list(range(1, 13))
    for blob, entry in zip(blobs, entries, strict=True):
        with Image.open(path / entry.file) as img:
            assert img.tobytes() == blob
    assert not list((tmp_path / "images_data" / "spill").iterdir())  # the spill file is gone


def test_without_a_cap_frames_the_pool_cannot_take_stay_in_their_own_bytes(
    pools: list[FramePool], tmp_path: Path
) -> None:
    pool = new_pool(pools, max_bytes=None, warm_s=1)  # never filled: every frame misses
    session_id, path = create_session_dir(tmp_path / "save_images")
    with ThreadPoolExecutor(1) as executor:
        writer = SessionWriter(path, session_id, {"swir": CameraWriteOptions()}, executor, pool=pool)
        writer.add(frame("swir", b"\x05" * 64, 8, 8, "mono8", 1), POSE)
        manifest = writer.finish({})
    assert (writer.warm_frames, writer.cold_frames, writer.spilled_frames) == (0, 1, 0)
    with Image.open(path / manifest.cameras["swir"].frames[0].file) as img:
        assert img.tobytes() == b"\x05" * 64
