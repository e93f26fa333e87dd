"""Adaptive lossless encoding (issue 24): the ladder's controller (pure, a fake clock), every rung of
every raw pixel format bit-exact in Pillow and tifffile with tags that say how it was written, the
writer counting each camera's settings in session.json, and the writer threads whose priority follows
their queue (real threads)."""

from __future__ import annotations

import io
import itertools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import numpy.typing as npt
import pytest
import tifffile
import zstandard
from PIL import Image

import sessions.writer as writer_module
from camera.frames import Frame
from sessions.encode_ladder import (
    DEPTH,
    FULL,
    HALF,
    LADDERS,
    NONE,
    QUARTER,
    EncodeLadder,
    LadderController,
    LadderTuning,
)
from sessions.image_codecs import CameraWriteOptions, encode_frame, frame_to_array, stored_zstd
from sessions.writer import SessionWriter, create_session_dir
from sessions.writer_threads import CATCHUP_NICE, WRITER_NICE, WriterThreads

ZSTD, HORIZONTAL, NO_COMPRESSION, NO_PREDICTOR = 50000, 2, 1, 1  # TIFF tag values
TIMEOUT = 20.0
RUNGS = [FULL, HALF, QUARTER, NONE]


# -- the controller (pure) ---------------------------------------------------------------------------


def test_a_long_wait_moves_one_rung_cheaper_at_most_once_per_dwell() -> None:
    c = LadderController(4, LadderTuning(cheaper_after_s=0.5, dwell_s=0.5), now=0.0)
    assert c.update(0.2, 0.1) == 0  # waited less than the threshold: stays
    assert c.update(0.9, 0.3) == 0  # too soon after the start (dwell)
    assert c.update(0.9, 0.6) == 1
    assert c.update(5.0, 0.8) == 1  # too soon after the last move, however long the wait
    assert c.update(5.0, 1.1) == 2
    assert c.update(5.0, 1.7) == 3
    assert c.update(5.0, 9.0) == 3  # the cheapest rung is the floor
    assert (c.moves, c.lowest) == (3, 3)


def test_it_moves_back_only_after_the_waits_stayed_short_for_the_back_dwell() -> None:
    tuning = LadderTuning(cheaper_after_s=0.5, dwell_s=0.0, richer_below_s=0.1, back_dwell_s=2.0)
    c = LadderController(4, tuning, now=0.0)
    for t in (1.0, 1.1, 1.2):
        c.update(3.0, t)
    assert c.rung == 3
    assert c.update(0.05, 2.0) == 3  # calm since 2.0
    assert c.update(0.05, 3.9) == 3
    assert c.update(0.3, 3.95) == 3  # between the thresholds: holds the rung, and is not calm
    assert c.update(0.05, 4.0) == 3  # calm again since 4.0
    assert c.update(0.05, 5.9) == 3
    assert c.update(0.05, 6.0) == 2  # two seconds of short waits: one rung back
    assert c.update(0.05, 7.0) == 2  # the back dwell counts from the last move too
    assert c.update(0.05, 8.0) == 1
    assert c.update(0.05, 10.0) == 0
    assert c.update(0.05, 99.0) == 0  # the best rung is the ceiling
    assert (c.moves, c.lowest) == (6, 3)


def test_the_hysteresis_settles_between_two_neighbouring_rungs() -> None:
    """A writer that keeps up at rung 1 but not at rung 0: it alternates between them and never
    goes further down."""
    c = LadderController(4, LadderTuning(), now=0.0)
    t, wait, seen = 0.0, 0.0, set()
    for _ in range(2000):
        t += 0.02
        # Rung 0 costs more than the frames allow (the wait grows), rung 1 less (it shrinks).
        wait = max(0.0, wait + (0.01 if c.rung == 0 else -0.02))
        seen.add(c.update(wait, t))
    assert seen == {0, 1}
    assert c.lowest == 1 and c.moves > 4


def test_tuning_is_checked() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        LadderTuning(cheaper_after_s=0.1, richer_below_s=0.2)
    with pytest.raises(ValueError, match="dwell"):
        LadderTuning(dwell_s=-1)
    with pytest.raises(ValueError, match="rung"):
        LadderController(0)


def test_every_pixel_format_has_a_ladder_from_the_best_to_an_uncompressed_tiff() -> None:
    assert set(LADDERS) == {"mono8", "mono16", "rgb8", "bgr8"}
    for rungs in LADDERS.values():
        assert rungs[0] == FULL and rungs[-1] == NONE and len(rungs) <= DEPTH
        shares = [r.share for r in rungs]
        assert shares == sorted(shares, reverse=True)  # each rung cheaper than the one before
    assert len({r.name for r in RUNGS}) == len(RUNGS)


def test_choose_adapts_fast_only_and_names_what_it_counts() -> None:
    clock = itertools.count(start=100.0, step=1.0)  # each call one second later
    ladder = EncodeLadder(LadderTuning(cheaper_after_s=0.5, dwell_s=0.5), clock=lambda: float(next(clock)))
    fast = CameraWriteOptions(image_format="fast")
    # Every frame waited about 100 s: one rung cheaper per frame, down to the floor.
    got = [ladder.choose(fast, "mono16", 0.0) for _ in range(5)]
    assert got == [(HALF, HALF.name), (QUARTER, QUARTER.name), (NONE, "none"), (NONE, "none"), (NONE, "none")]
    assert ladder.report() == {"moves": 3, "lowest_rung": 3}
    # Formats that do not adapt keep their own encoding whatever the queue; encoded frames count not.
    assert ladder.choose(CameraWriteOptions(image_format="tiff-zstd"), "mono16", 0.0) == (None, "zstd1+pred")
    assert ladder.choose(CameraWriteOptions(image_format="png"), "rgb8", 0.0) == (None, "png")
    assert ladder.choose(fast, "encoded", 0.0) == (None, None)


# -- every rung, every raw pixel format: bit-exact, and the tags say how -----------------------------


def frame_of(pixel_format: str, width: int, height: int, seed: int) -> tuple[Frame, npt.NDArray[Any]]:
    """Noisy full-range content (mono16 above 255 and 32767) and what a reader must give back (RGB)."""
    rng = np.random.default_rng(seed)
    if pixel_format == "mono16":
        ramp = np.linspace(0, 60000, width)[None, :] + np.zeros((height, 1))
        want = np.clip(ramp + rng.normal(0, 300, (height, width)), 0, 65535).astype(np.uint16)
        want[0, :3] = (0, 65535, 256)
        return Frame("cam", want.astype("<u2").tobytes(), width, height, "mono16", None, 1, 0.0, 0.0), want
    shape = (height, width, 3) if pixel_format in ("rgb8", "bgr8") else (height, width)
    want = rng.integers(0, 256, shape, dtype=np.uint8)
    wire = want[..., ::-1] if pixel_format == "bgr8" else want
    return Frame(
        "cam", np.ascontiguousarray(wire).tobytes(), width, height, pixel_format, None, 1, 0.0, 0.0
    ), want


# Odd widths, one strip, and several strips (so a share of them is compressed and the rest stored).
SHAPES = [("mono8", 37, 23), ("mono8", 640, 512), ("mono16", 37, 23), ("mono16", 641, 512)]
SHAPES += [("rgb8", 37, 23), ("rgb8", 333, 301), ("bgr8", 37, 23), ("bgr8", 333, 301)]


@pytest.mark.parametrize("rung", RUNGS, ids=[r.name for r in RUNGS])
@pytest.mark.parametrize(("pixel_format", "width", "height"), SHAPES)
def test_every_rung_of_every_raw_pixel_format_is_bit_exact_in_pillow_and_tifffile(
    rung: Any, pixel_format: str, width: int, height: int
) -> None:
    frame, want = frame_of(pixel_format, width, height, seed=width * height)
    data, _ = encode_frame(frame, CameraWriteOptions(image_format="fast"), None, rung)
    with Image.open(io.BytesIO(bytes(data))) as image:
        assert image.mode == {"mono8": "L", "mono16": "I;16"}.get(pixel_format, "RGB")
        got = np.asarray(image)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        page = tif.pages.first
        back = page.asarray()
        tags = (page.compression, page.predictor)
        assert "ImageDescription" not in page.tags  # a plain TIFF
    assert back.dtype == want.dtype and np.array_equal(back, want)
    assert tags == ((NO_COMPRESSION, NO_PREDICTOR) if rung.share == 0 else (ZSTD, HORIZONTAL))


def test_the_top_rung_is_byte_for_byte_tiff_zstd_and_the_shares_cost_size_in_proportion() -> None:
    frame, _ = frame_of("mono16", 641, 1024, seed=3)
    fixed, _ = encode_frame(frame, CameraWriteOptions(image_format="tiff-zstd"))
    sizes = {
        r.name: len(encode_frame(frame, CameraWriteOptions(image_format="fast"), None, r)[0]) for r in RUNGS
    }
    assert bytes(encode_frame(frame, CameraWriteOptions(image_format="fast"), None, FULL)[0]) == bytes(fixed)
    raw = len(frame.pixels)
    assert sizes["zstd1+pred"] < sizes["zstd1+pred/2"] < sizes["zstd1+pred/4"] < sizes["none"]
    assert raw <= sizes["none"] < raw + 4096  # uncompressed: the pixels and the tags
    # Half the strips stored: about halfway between the compressed and the raw size.
    assert abs(sizes["zstd1+pred/2"] - (sizes["zstd1+pred"] + raw) / 2) < raw * 0.06


@pytest.mark.parametrize("size", [0, 1, 131071, 131072, 131073, 262144, 400001])
def test_stored_strips_are_zstandard_frames_every_decoder_reads(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    frame = stored_zstd(data.data)
    assert zstandard.ZstdDecompressor().decompress(frame) == data.tobytes()
    assert imagecodecs.zstd_decode(frame) == data.tobytes()
    assert len(frame) == size + 9 + 3 * max(1, -(-size // 131072))  # header + 3 bytes a block


# -- the writer counts how each camera's frames were written ------------------------------------------


@pytest.fixture
def one_thread() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-ladder")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def test_a_writer_behind_moves_down_the_ladder_and_session_json_counts_the_settings(
    tmp_path: Path, one_thread: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock far ahead of the frames' arrival, a second further at each look: every frame seems to
    # have waited long, so the ladder moves one rung a frame (no real timing involved).
    ticks = itertools.count(start=1000.0, step=1.0)
    monkeypatch.setattr(
        writer_module, "EncodeLadder", lambda: EncodeLadder(clock=lambda: time.monotonic() + next(ticks))
    )
    session_id, folder = create_session_dir(tmp_path / "save")
    cameras = {
        "swir": CameraWriteOptions(image_format="fast"),
        "rgb": CameraWriteOptions(image_format="tiff-zstd"),
    }
    writer = SessionWriter(folder, session_id, cameras, one_thread)
    wants = []
    for i in range(4):
        frame, want = frame_of("mono16", 641, 512, seed=i)
        writer.add(Frame("swir", frame.pixels, 641, 512, "mono16", None, i, 0.0, 0.0))
        wants.append(want)
    rgb, rgb_want = frame_of("bgr8", 333, 301, seed=9)
    writer.add(Frame("rgb", rgb.pixels, 333, 301, "bgr8", None, 9, 0.0, 0.0))
    manifest = writer.finish({}, timeout=TIMEOUT)
    swir = manifest.cameras["swir"]
    assert swir.encodings == {"zstd1+pred/2": 1, "zstd1+pred/4": 1, "none": 2}
    assert manifest.cameras["rgb"].encodings == {"zstd1+pred": 1}  # tiff-zstd does not adapt
    compressions = []
    for record, want in zip(swir.frames, wants, strict=True):
        path = folder / record.file
        with Image.open(path) as image:
            assert np.array_equal(np.asarray(image), want)
        with tifffile.TiffFile(path) as tif:
            compressions.append(tif.pages.first.compression)
            assert np.array_equal(tif.pages.first.asarray(), want)
    assert compressions == [ZSTD, ZSTD, NO_COMPRESSION, NO_COMPRESSION]
    assert np.array_equal(tifffile.imread(folder / manifest.cameras["rgb"].frames[0].file), rgb_want)
    assert np.array_equal(frame_to_array(rgb), rgb_want)


# -- the writer threads: priority follows the queue ---------------------------------------------------


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_writer_threads_run_jobs_in_order_and_behave_as_an_executor() -> None:
    threads = WriterThreads(1, catchup=0, name="t-order")
    try:
        done: list[int] = []
        futures = [threads.submit(done.append, i) for i in range(50)]
        failing = threads.submit(lambda: 1 / 0)
        assert [f.result(TIMEOUT) for f in futures] == [None] * 50 and done == list(range(50))
        with pytest.raises(ZeroDivisionError):
            failing.result(TIMEOUT)
        assert threads.submit(_nice).result(TIMEOUT) == max(WRITER_NICE, os.getpriority(os.PRIO_PROCESS, 0))
        assert list(threads.map(lambda x: x * 2, [1, 2, 3])) == [2, 4, 6]
    finally:
        threads.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shutdown"):
        threads.submit(print)


def test_shutdown_waits_for_queued_jobs_or_cancels_them() -> None:
    gate, started = threading.Event(), threading.Event()
    threads = WriterThreads(1, catchup=0, name="t-shutdown")

    def first_job() -> bool:
        started.set()
        return gate.wait(TIMEOUT)

    first = threads.submit(first_job)
    assert started.wait(TIMEOUT)
    queued = [threads.submit(lambda: "ran") for _ in range(3)]
    closer = threading.Thread(target=threads.shutdown, kwargs={"wait": True, "cancel_futures": True})
    closer.start()
    gate.set()
    closer.join(TIMEOUT)
    assert first.result(TIMEOUT) is True
    assert all(f.cancelled() or f.result(TIMEOUT) == "ran" for f in queued)


def test_catch_up_threads_take_only_jobs_that_waited_and_run_below_the_reader() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    after = 0.05
    threads = WriterThreads(1, catchup=1, catchup_after_s=after, name="t-late")
    gate = threading.Event()
    try:
        blocked = threads.submit(gate.wait, TIMEOUT)  # the one worker is busy ...
        submitted = time.monotonic()
        late = threads.submit(lambda: (threading.current_thread().name, _nice(), time.monotonic()))
        name, nice, started = late.result(TIMEOUT)  # ... so the catch-up thread runs the next job
        assert "catchup" in name and started - submitted >= after
        # Below the reader (nice 0), above the writers; a process already nicer keeps its own nice.
        assert nice == (CATCHUP_NICE if os.geteuid() == 0 or base <= CATCHUP_NICE else base)
        assert threads.catchup_jobs == 1
        gate.set()
        assert blocked.result(TIMEOUT) is True
        assert threads.backlog_s() == 0.0
    finally:
        gate.set()
        threads.shutdown(wait=True)


def test_without_catch_up_threads_a_job_waits_for_the_busy_worker() -> None:
    threads = WriterThreads(1, catchup=0, catchup_after_s=0.0, name="t-none")
    gate = threading.Event()
    try:
        threads.submit(gate.wait, TIMEOUT)
        waiting = threads.submit(lambda: "ran")
        time.sleep(0.1)
        assert not waiting.done() and threads.backlog_s() > 0  # no other thread takes it
        gate.set()
        assert waiting.result(TIMEOUT) == "ran" and threads.backlog_s() == 0
    finally:
        gate.set()
        threads.shutdown(wait=True)
