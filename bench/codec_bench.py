"""Codec benchmark (issue 15): which lossless format saves raw frames fastest and smallest?

Encodes one frame of each raw pixel format and size the rig sends, in three kinds of content, with
every ``cameras.<id>.image_format`` of the writer (through ``sessions.writer._encode``, exactly as
the service encodes) and with a few candidates that are not formats of the writer, for comparison.
No service, no broker, no rig: frames are made in this process.

    python bench/codec_bench.py [--repeat N] [--noise SIGMA] [--codecs NAME,...] [--contents C,...]
                                [--gil-frames N] [--ladder-only] [--json-only]

Content (``raw bytes ÷ file bytes`` depends on it more than on anything else; the capture benchmark's
``--content`` records the first three from the simulated rig, made here by the same code):

- ``sim``: the simulated rig's own rendering (``simulator.frames.FrameRenderer``), smooth: content
  ``smooth``;
- ``noise``: the same with fixed per-pixel sensor noise of 3 counts (``simulator/content.py``);
- ``pattern``: the same with a structured high-frequency texture (a checker of varying period and a
  texture of repeated small "words", ``simulator/content.py``): compressible, and costly to compress;
- ``sim+noise``: the rendering with Gaussian noise of ``--noise`` counts (as ``--sim-noise``);
- ``natural``: a 1/f ("pink") random field, the power spectrum of natural scenes, spanning most of
  the range (mono16: a 12-bit sensor's 0–4095, as most mono16 cameras deliver) plus shot and read
  noise. The most realistic for a real sensor.

Codecs: every ``image_format`` of the writer; ``rung:<name>``, each setting of the adaptive ladder
(``sessions/encode_ladder.py``; ``rung:zstd1+pred`` is ``tiff-zstd``); and ``cand:`` candidates that
are not settings of the writer, for comparison (Zstandard's negative levels through the ``zstandard``
package, which imagecodecs cannot reach: it takes any level <= 0 as level 3). ``--ladder-only``
measures the rungs and a few candidates only, and prints the ladder table: CPU-ms per MB and ratio per
rung, per content and pixel format (docs/performance.md "Adaptive encoding").

Figures per codec and frame: CPU-ms per frame and per MB of raw pixels (thread CPU time, the median
of ``--repeat`` encodes after one warm-up), ``ratio`` = raw bytes ÷ file bytes, and whether the file
reads back bit-exact in Pillow and in tifffile (where the format is a TIFF). Then, per codec, how it
uses the cores: ``--gil-frames`` encodes of the largest frame on one thread and then on two threads
(wall time, ``speedup`` near 2 means the encoder releases the GIL on a 2-core machine that is
otherwise idle), and ``gil_held``: how much a pure-Python probe thread was slowed beside the encoder
(near 0: the encoder runs without the GIL; near 1: it holds it). Both need idle cores: on a busy
machine only large differences mean something (Pillow's zstd TIFF: 96 %). The robust figure is the
last: for ``tiff-zstd``, the share of its encode CPU spent in the imagecodecs calls that release the
GIL (thread CPU time, hardly moved by other programs' load).

Prints a table and one JSON line. Timings on a shared machine are noisy: compare ratios within a run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import numpy.typing as npt
import psutil
import tifffile
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from camera.frames import Frame
from sessions.encode_ladder import FULL, HALF, NONE, QUARTER
from sessions.image_codecs import IMAGE_FORMATS as _IMAGE_FORMATS
from sessions.image_codecs import CameraWriteOptions, TiffSetting, frame_to_array, horizontal_delta
from sessions.image_codecs import encode_frame as _encode
from simulator.config import CameraSim
from simulator.content import Content
from simulator.frames import FrameRenderer
from simulator.scene import Scene

MB = 10**6

# (pixel format, width, height): the rig's raw cameras (capture_bench W1 and W2).
SHAPES = [("mono8", 640, 512), ("mono16", 640, 512), ("mono16", 1280, 1024), ("rgb8", 1920, 1080)]
# bgr8 costs the same as rgb8 plus one channel swap; measured at one size.
EXTRA_SHAPES = [("bgr8", 1920, 1080)]
CONTENTS = ("sim", "noise", "pattern", "sim+noise", "natural")
DEFAULT_CONTENTS = ("sim", "noise", "pattern", "natural")
RUNGS = (FULL, HALF, QUARTER, NONE)


# -- frames ------------------------------------------------------------------------------------------


def sim_frame(
    fmt: str, width: int, height: int, noise: float, scene: Scene, content: Content = "smooth"
) -> bytes:
    cam = CameraSim(fmt, width, height, 30.0, noise_sigma=noise, content=content)
    renderer = FrameRenderer("bench", cam, scene)
    return renderer.render(renderer.key_for(12.0, 3.0, 1.0))


def pink_field(height: int, width: int, rng: np.random.Generator, beta: float = 2.0) -> npt.NDArray[Any]:
    """A random field with power spectrum 1/f^beta (natural images: beta about 2), scaled to 0..1."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(height, width))
    lo, hi = np.percentile(field, [0.5, 99.5])
    return np.clip((field - lo) / (hi - lo), 0.0, 1.0)


def natural_frame(fmt: str, width: int, height: int, rng: np.random.Generator) -> bytes:
    """1/f content with shot noise (Poisson in electrons) and read noise, in the wire layout."""
    full = 4095 if fmt == "mono16" else 255  # mono16: a 12-bit sensor, as most deliver
    gain = 4.0 if fmt == "mono16" else 0.25  # counts per electron: ~1000 e- full well in 8-bit
    read = 3.0 if fmt == "mono16" else 0.8  # counts
    shape = (height, width, 3) if fmt in ("rgb8", "bgr8") else (height, width)
    if len(shape) == 3:
        base = pink_field(height, width, rng)
        tint = np.stack([pink_field(height, width, rng) for _ in range(3)], axis=-1)
        signal = np.clip(0.8 * base[..., None] + 0.2 * tint, 0, 1) * (0.9 * full)
    else:
        signal = pink_field(height, width, rng) * (0.9 * full)
    electrons = rng.poisson(signal / gain)
    counts = electrons * gain + rng.standard_normal(shape) * read
    dtype = np.dtype("<u2") if fmt == "mono16" else np.dtype(np.uint8)
    return np.clip(np.rint(counts), 0, full).astype(dtype).tobytes()


def make_frames(noise: float, contents: tuple[str, ...]) -> list[tuple[str, Frame]]:
    scene = Scene()
    rng = np.random.default_rng(15)
    frames: list[tuple[str, Frame]] = []
    for fmt, width, height in SHAPES + EXTRA_SHAPES:
        for content in contents:
            if content == "natural":
                pixels = natural_frame(fmt, width, height, rng)
            elif content in ("noise", "pattern"):
                pixels = sim_frame(
                    fmt, width, height, 0.0, scene, "noise" if content == "noise" else "pattern"
                )
            else:
                pixels = sim_frame(fmt, width, height, noise if content == "sim+noise" else 0.0, scene)
            frame = Frame("bench", pixels, width, height, fmt, None, None, 0.0, 0.0)
            frames.append((content, frame))
    return frames


# -- codecs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[Frame], bytes]
    tiff: bool  # a TIFF: tifffile must read it too
    writer_format: bool  # a cameras.<id>.image_format of the writer (else a candidate for comparison)


def writer_codec(name: str) -> Codec:
    options = CameraWriteOptions(image_format=name)

    def encode(frame: Frame) -> bytes:
        return bytes(_encode(frame, options)[0])

    return Codec(name, encode, _IMAGE_FORMATS[name][1] == "tif", True)


def tifffile_codec(
    name: str, compression: str, level: int | None, predictor: bool, rowsperstrip: int | None = None
) -> Codec:
    """tifffile.imwrite; ``rowsperstrip`` None is tifffile's default (strips of about 256 KB), a
    number larger than the height one strip a frame."""

    def encode(frame: Frame) -> bytes:
        arr = frame_to_array(frame)
        buffer = io.BytesIO()
        args = {} if level is None else {"level": level}
        tifffile.imwrite(
            buffer,
            arr,
            compression=compression,
            compressionargs=args,
            predictor=predictor,
            photometric="rgb" if arr.ndim == 3 else "minisblack",
            rowsperstrip=rowsperstrip,
            metadata=None,
            maxworkers=1,
        )
        return buffer.getvalue()

    return Codec(name, encode, True, False)


def rung_codec(setting: TiffSetting) -> Codec:
    """A setting of the adaptive ladder, through the writer's own encoder."""
    options = CameraWriteOptions(image_format="fast")

    def encode(frame: Frame) -> bytes:
        return bytes(_encode(frame, options, None, setting)[0])

    return Codec(f"rung:{setting.name}", encode, True, True)


def zstandard_codec(level: int, predictor: bool) -> Codec:
    """Zstandard at ``level`` (negative levels too) through the ``zstandard`` package, each strip
    encoded here and handed to tifffile as it is: the TIFF the writer would make at that level."""
    import zstandard

    local = threading.local()  # a ZstdCompressor must not be used by two threads at once

    def encode(frame: Frame) -> bytes:
        compressor = getattr(local, "compressor", None)
        if compressor is None:
            compressor = local.compressor = zstandard.ZstdCompressor(level=level)
        arr = frame_to_array(frame)
        rows = max(1, 2**18 // arr.strides[0])
        src = horizontal_delta(arr).reshape(arr.shape) if predictor else arr
        strips = (compressor.compress(src[top : top + rows].data) for top in range(0, arr.shape[0], rows))
        buffer = io.BytesIO()
        tifffile.imwrite(
            buffer,
            strips,
            shape=arr.shape,
            dtype=arr.dtype,
            photometric="rgb" if arr.ndim == 3 else "minisblack",
            compression="zstd",
            predictor=predictor,
            rowsperstrip=rows,
            metadata=None,
        )
        return buffer.getvalue()

    return Codec(f"cand:zstd{level}{'+pred' if predictor else ''}-zstandard", encode, True, False)


def ladder_codecs() -> list[Codec]:
    """The rungs, and the cheaper settings that are not rungs (docs/performance.md says why)."""
    return [
        *(rung_codec(r) for r in RUNGS),
        tifffile_codec("cand:tiff-zstd1-nopred", "zstd", 1, False),
        tifffile_codec("cand:tiff-zstd-5-imagecodecs", "zstd", -5, True),  # taken as level 3
        zstandard_codec(-5, True),
        zstandard_codec(-20, True),
    ]


def pillow_tiff_zstd(frame: Frame) -> bytes:
    """Pillow's own libtiff writer: zstd at libtiff's default level, horizontal predictor."""
    image = Image.fromarray(frame_to_array(frame))
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", compression="zstd", tiffinfo={317: 2})
    return buffer.getvalue()


def jxl_lossless(frame: Frame) -> bytes:
    return bytes(imagecodecs.jpegxl_encode(frame_to_array(frame), lossless=True, effort=1))


def all_codecs() -> list[Codec]:
    codecs = [writer_codec(name) for name in _IMAGE_FORMATS if name != "fast"]
    codecs += [
        tifffile_codec("cand:tiff-zstd1-1strip", "zstd", 1, True, 2**31 - 1),
        tifffile_codec("cand:tiff-zstd3", "zstd", 3, True),
        tifffile_codec("cand:tiff-zstd1-nopred", "zstd", 1, False),
        tifffile_codec("cand:tiff-deflate1", "deflate", 1, True),
        tifffile_codec("cand:tiff-lzw", "lzw", None, True),
        Codec("cand:tiff-zstd-pillow", pillow_tiff_zstd, True, False),
        Codec("cand:jxl-lossless-e1", jxl_lossless, False, False),
    ]
    return codecs + [c for c in ladder_codecs() if c.name not in {x.name for x in codecs}]


# -- checks and timing -------------------------------------------------------------------------------


def expected_array(frame: Frame) -> npt.NDArray[Any]:
    """What a reader must give back: the frame's values, colour in RGB order (bgr8 is stored as RGB)."""
    return frame_to_array(frame)


def reads_back(data: bytes, frame: Frame, tiff: bool) -> dict[str, bool | None]:
    want = expected_array(frame)
    out: dict[str, bool | None] = {"pillow": False, "tifffile": None}
    try:
        with Image.open(io.BytesIO(data)) as image:
            got = np.asarray(image)
        out["pillow"] = got.dtype == want.dtype and np.array_equal(got, want)
    except Exception:
        out["pillow"] = False
    if tiff:
        try:
            got = tifffile.imread(io.BytesIO(data))
            out["tifffile"] = got.dtype == want.dtype and np.array_equal(got, want)
        except Exception:
            out["tifffile"] = False
    return out


def cpu_ms(codec: Codec, frame: Frame, repeat: int) -> tuple[float, bytes]:
    data = codec.encode(frame)  # warm-up
    costs = []
    for _ in range(repeat):
        t0 = time.thread_time()
        codec.encode(frame)
        costs.append(time.thread_time() - t0)
    return 1000 * statistics.median(costs), data


class GilProbe:
    """A pure-Python thread counting loop turns; between turns it lets the GIL go (``time.sleep(0)``),
    so another thread's Python code gets it at once. While that thread runs C code that releases the
    GIL, the probe keeps counting; while it holds the GIL, the probe stops."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.turns = 0
        self._thread = threading.Thread(target=self._run, name="gil-probe", daemon=True)

    def __enter__(self) -> GilProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in range(20):  # a little pure-Python work each turn
                pass
            self.turns += 1
            time.sleep(0)


def encode_many(codec: Codec, frame: Frame, count: int, pool: concurrent.futures.Executor) -> float:
    """Wall seconds for ``count`` encodes on ``pool``."""
    t0 = time.perf_counter()
    list(pool.map(lambda _: codec.encode(frame), range(count)))
    return time.perf_counter() - t0


def gil_figures(codec: Codec, frame: Frame, count: int, rounds: int = 5) -> dict[str, float]:
    """Rounds of (one thread, two threads) and of (probe alone, probe beside the encoder), each pair
    taken back to back so that the machine's other load drifts as little as possible between them;
    medians over the rounds."""
    codec.encode(frame)
    speedups, held, one_s, two_s = [], [], [], []
    per_round = max(2, count // rounds)
    with (
        concurrent.futures.ThreadPoolExecutor(1) as pool1,
        concurrent.futures.ThreadPoolExecutor(2) as pool2,
    ):
        for _ in range(rounds):
            one = encode_many(codec, frame, per_round, pool1)
            two = encode_many(codec, frame, per_round, pool2)
            one_s.append(one)
            two_s.append(two)
            speedups.append(one / two if two > 0 else 0.0)
    with GilProbe() as probe:
        for _ in range(rounds):
            turns0, t0 = probe.turns, time.perf_counter()
            time.sleep(0.2)
            alone = (probe.turns - turns0) / (time.perf_counter() - t0)
            turns0, t0 = probe.turns, time.perf_counter()
            for _ in range(per_round):
                codec.encode(frame)
            beside = (probe.turns - turns0) / (time.perf_counter() - t0)
            held.append(max(0.0, 1.0 - beside / alone) if alone > 0 else 0.0)
    return {
        "one_thread_s": statistics.median(one_s),
        "two_threads_s": statistics.median(two_s),
        "speedup": statistics.median(speedups),
        # 1 - the probe's pace beside the encoder / its pace alone: the share of the time the encoder
        # kept the GIL (plus whatever else slowed the probe: on a busy machine, compare codecs).
        "gil_held": statistics.median(held),
    }


def nogil_share(frame: Frame, repeat: int) -> dict[str, float]:
    """For ``tiff-zstd``: how much of its encode's CPU time is spent in the two imagecodecs calls that
    release the GIL (``delta_encode``, ``zstd_encode``: ``with nogil`` in their Cython source), timed
    on the same strips as tifffile makes; the rest (tifffile's Python, copies) holds the GIL. Thread
    CPU time, so other programs' load hardly moves it."""
    arr = frame_to_array(frame)
    writer = writer_codec("tiff-zstd")
    rows = max(1, 2**18 // (arr.strides[0]))  # tifffile's ~256 KB strips

    def c_part() -> None:
        delta = imagecodecs.delta_encode(arr, axis=-2 if arr.ndim == 3 else -1)
        for top in range(0, arr.shape[0], rows):
            imagecodecs.zstd_encode(np.ascontiguousarray(delta[top : top + rows]), level=1)

    def cpu(fn: Callable[[], object]) -> float:
        fn()
        costs = []
        for _ in range(repeat):
            t0 = time.thread_time()
            fn()
            costs.append(time.thread_time() - t0)
        return statistics.median(costs)

    total = cpu(lambda: writer.encode(frame))
    nogil = cpu(c_part)
    return {"encode_cpu_ms": 1000 * total, "nogil_cpu_ms": 1000 * nogil, "nogil_share": nogil / total}


# -- main --------------------------------------------------------------------------------------------


def frame_label(frame: Frame) -> str:
    return f"{frame.pixel_format} {frame.width}x{frame.height}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    contents = tuple(args.contents.split(","))
    unknown = set(contents) - set(CONTENTS)
    if unknown:
        raise SystemExit(f"unknown content(s) {sorted(unknown)}; known: {', '.join(CONTENTS)}")
    frames = make_frames(args.noise, contents)
    codecs = ladder_codecs() if args.ladder_only else all_codecs()
    if args.codecs:
        wanted = set(args.codecs.split(","))
        codecs = [c for c in codecs if c.name in wanted]
    rows: list[dict[str, Any]] = []
    for content, frame in frames:
        raw = len(frame.pixels)
        for codec in codecs:
            ms, data = cpu_ms(codec, frame, args.repeat)
            rows.append(
                {
                    "frame": frame_label(frame),
                    "content": content,
                    "codec": codec.name,
                    "writer_format": codec.writer_format,
                    "cpu_ms": ms,
                    "cpu_ms_per_mb": ms / (raw / MB),
                    "ratio": raw / len(data),
                    "bytes": len(data),
                    "reads_back": reads_back(data, frame, codec.tiff),
                }
            )
    gil: dict[str, dict[str, float]] = {}
    nogil: dict[str, dict[str, float]] = {}
    if args.gil_frames > 0:
        largest = max((f for c, f in frames if c == contents[-1]), key=lambda f: len(f.pixels))
        for codec in codecs:
            gil[codec.name] = gil_figures(codec, largest, args.gil_frames)
        for content, frame in frames:
            if content == contents[-1]:
                nogil[frame_label(frame)] = nogil_share(frame, max(5, args.repeat))
    return {
        "bench": "codec_bench",
        "started_at": time.time(),
        "machine": {
            "cores": psutil.cpu_count(),
            "python": platform.python_version(),
            "load_avg": list(psutil.getloadavg()),
            "pillow": Image.__version__,
            "tifffile": tifffile.__version__,
            "imagecodecs": imagecodecs.__version__,
        },
        "noise_sigma": args.noise,
        "repeat": args.repeat,
        "rows": rows,
        "gil": gil,
        "tiff_zstd_nogil": nogil,
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"machine: {report['machine']}")
    header = f"{'frame':<20} {'content':<10} {'codec':<24} {'CPU ms':>8} {'ms/MB':>7} {'ratio':>6}  read back"
    print(header)
    for r in report["rows"]:
        back = r["reads_back"]
        text = "Pillow " + ("ok" if back["pillow"] else "NO")
        if back["tifffile"] is not None:
            text += ", tifffile " + ("ok" if back["tifffile"] else "NO")
        print(
            f"{r['frame']:<20} {r['content']:<10} {r['codec']:<24} {r['cpu_ms']:>8.1f} "
            f"{r['cpu_ms_per_mb']:>7.2f} {r['ratio']:>6.2f}  {text}"
        )
    sections = (
        (
            "gil",
            "threads (largest frame): wall 1 thread, wall 2 threads, speedup, GIL held while encoding",
            "  {name:<24} {one_thread_s:.2f} s  {two_threads_s:.2f} s  x{speedup:.2f}  GIL held {held:.0f} %",
        ),
        (
            "tiff_zstd_nogil",
            "tiff-zstd: share of its encode CPU in imagecodecs calls that release the GIL",
            "  {name:<20} {encode_cpu_ms:6.1f} CPU-ms, of which without the GIL {nogil_cpu_ms:6.1f} ms "
            "({nogil:.0f} %)",
        ),
    )
    for key, title, line in sections:
        if report[key]:
            print(f"\n{title}")
        for name, figures in report[key].items():
            shares = {k.removesuffix("_share"): 100 * v for k, v in figures.items() if k.endswith("_share")}
            print(line.format(name=name, held=100 * figures.get("gil_held", 0), **figures, **shares))


def print_ladder(report: dict[str, Any]) -> None:
    """CPU-ms per MB and ratio (raw ÷ file) of each rung, per frame and content: the ladder's figures."""
    rows = [r for r in report["rows"] if r["codec"].startswith("rung:")]
    if not rows:
        return
    names = [f"rung:{r.name}" for r in RUNGS]
    print("\nadaptive ladder (sessions/encode_ladder.py): CPU-ms per MB, ratio raw/file, per rung")
    print(f"{'frame':<20} {'content':<10} " + " ".join(f"{n.removeprefix('rung:'):>18}" for n in names))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        cell = f"{r['cpu_ms_per_mb']:.2f} ms, {r['ratio']:.2f}"
        cells.setdefault((r["frame"], r["content"]), {})[r["codec"]] = cell
    for (frame, content), by_rung in cells.items():
        print(f"{frame:<20} {content:<10} " + " ".join(f"{by_rung.get(n, '-'):>18}" for n in names))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed encodes per codec and frame (median)")
    ap.add_argument("--noise", type=float, default=3.0, help="sigma of sim+noise, in counts")
    ap.add_argument("--codecs", help="comma-separated codec names (default: all)")
    ap.add_argument("--contents", default=",".join(DEFAULT_CONTENTS), help=f"comma-separated, of {CONTENTS}")
    ap.add_argument(
        "--ladder-only", action="store_true", help="only the adaptive ladder's rungs and its candidates"
    )
    ap.add_argument("--gil-frames", type=int, default=24, help="encodes per thread test (0: skip)")
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args(argv)
    if args.ladder_only and args.gil_frames == ap.get_default("gil_frames"):
        args.gil_frames = 0
    report = run(args)
    if not args.json_only:
        print_report(report)
        print_ladder(report)
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
