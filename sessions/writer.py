"""Writing a recording session to disk (docs/protocol.md §6).

``save_dir/<session_id>/<camera_id>/000001.<ext>`` — one file per frame, numbered per camera in
arrival order — and ``session.json`` beside, written last and atomically.

* ``encoded`` frames are written byte for byte (``.jpg`` / ``.png`` by their magic bytes).
* ``mono8`` / ``mono16`` / ``rgb8`` / ``bgr8`` are written lossless at their own bit depth:
  ``fast`` (the default: a TIFF, Zstandard level 1 after the horizontal predictor as ``tiff-zstd``, a
  cheaper lossless setting while frames wait: sessions.encode_ladder; encoded without the GIL),
  ``png`` (zlib level 1), ``png-small`` (zlib level 6, 2–4× slower for files 3–15 % smaller) or
  ``tiff`` (uncompressed, the cheapest and the largest). ``mono16`` becomes a 16-bit greyscale
  image (Pillow mode ``I;16``), ``bgr8`` is stored in RGB order.
* With ``previews`` a contrast-stretched 8-bit copy goes to ``<camera_id>/previews/`` beside — never
  instead of the lossless file.

Write-behind: :meth:`SessionWriter.add` runs on the event loop thread, only numbers the frame,
records its manifest entry and copies its pixels into warm memory from a :class:`camera.pool.FramePool`
(so the message's bytes are freed at once and the reader never faults in fresh pages), and hands
encoding and the file write to an executor (a thread pool). The writer holds each frame's pixels
until its write is done, then gives the pool buffer back. With ``memory_cap_bytes`` set, a frame
that would take the pixels held in memory over the cap is *spilled*: one spill thread appends its
raw bytes to a file in ``spill_dir`` and drops them from memory, and the frame is encoded later
from that file. Nothing is dropped: the overflow policy is "move to disk", never "discard".

Exceptions::

    Exception
     └── WriteError   a frame file could not be written (camera_id, file, path, cause)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camera.frames import Frame
from camera.pool import FramePool, PoolBuffer
from sessions.encode_ladder import EncodeLadder
from sessions.image_codecs import IMAGE_FORMATS, CameraWriteOptions, Pixels, encode_frame, encoded_ext
from sessions.manifest import MANIFEST_NAME, CameraRecord, FrameRecord, SessionManifest, write_manifest
from sessions.spill import SpillFile, drop_cached

PREVIEW_DIR = "previews"
MAX_REJECTION_REASONS = 5  # per camera, the first ones are kept
MAX_WRITE_ERRORS_LISTED = 20  # in session.json; the total is in write_error_count
_MAX_SESSION_SUFFIX = 10_000
# The spill thread may fall this far behind (or 2 % of the cap, if more) before frames are spilled on
# the caller's thread instead.
SPILL_QUEUE_MIN_BYTES = 64 * 2**20


class WriteError(Exception):
    """A frame file could not be written. ``others`` counts further failed writes not named here."""

    def __init__(self, camera_id: str, file: str, path: Path, cause: BaseException, others: int = 0) -> None:
        more = f" ({others} more writes failed)" if others else ""
        super().__init__(f"writing {path} for camera {camera_id} failed: {_describe(cause)}{more}")
        self.camera_id = camera_id
        self.file = file  # relative to the session folder, as in session.json
        self.path = path
        self.cause = cause
        self.others = others


def create_session_dir(save_dir: Path, now: float | None = None) -> tuple[str, Path]:
    """Create ``save_dir/<session_id>`` and return ``(session_id, path)``.

    The id is the local time to the millisecond (``20261123-203015-123``). The folder is made with an
    exclusive ``os.mkdir``, so two sessions in the same millisecond — in one process or two — never
    share it: the later one gets ``-2``, ``-3``, … appended.
    """
    if now is None:
        now = time.time()
    seconds, millis = divmod(int(now * 1000), 1000)
    base = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(seconds))}-{millis:03d}"
    save_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, _MAX_SESSION_SUFFIX + 1):
        session_id = base if n == 1 else f"{base}-{n}"
        path = save_dir / session_id
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return session_id, path
    raise FileExistsError(f"{save_dir / base} and {_MAX_SESSION_SUFFIX - 1} suffixed names all exist")


# (camera id, capture time on the monotonic scale) -> (pose, how it was found: a PoseMethod value)
PoseLookup = Callable[[str, float], tuple[Mapping[str, Any], str | None]]


_PENDING, _WRITTEN, _FAILED = "pending", "written", "failed"
# No room left: the disk is full, the user's quota is used up, or a file hit the size limit.
_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(eq=False, slots=True)
class _Entry:
    camera_id: str
    file: str  # relative to the session folder
    preview: str | None
    record: dict[str, Any]  # the manifest entry
    frame: Frame | None  # dropped once the write is done
    nbytes: int
    captured_mono: float  # the frame's capture time (monotonic): where finish() looks up its pose
    state: str = _PENDING
    spill: tuple[int, int] | None = None  # (offset, length) in the spill file once spilled
    buffer: PoolBuffer | None = None  # the pool memory holding the pixels, if they were copied there
    added: float = field(default_factory=time.monotonic)  # when add() took it: its wait is the queue's age
    encoding: str | None = None  # the setting it was written at (sessions.encode_ladder)


@dataclass(frozen=True, slots=True)
class _Failure:
    camera_id: str
    file: str
    cause: BaseException


@dataclass(eq=False, slots=True)
class _Camera:
    options: CameraWriteOptions
    entries: list[_Entry] = field(default_factory=list)
    accepted: int = 0
    written: int = 0
    failed: int = 0
    rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)
    dirs_made: set[str] = field(default_factory=set)


class SessionWriter:
    """Writes one session's frames behind the caller's back and its manifest at the end.

    Thread use: :meth:`add` and :meth:`reject` from the event loop thread; writes on the executor's
    threads; :meth:`wait` and :meth:`finish` (blocking) from any other thread. One lock guards the
    counters and entries; encoding and I/O happen outside it.
    """

    def __init__(
        self,
        session_dir: Path,
        session_id: str,
        cameras: Mapping[str, CameraWriteOptions],
        executor: concurrent.futures.Executor,
        *,
        fsync: bool = True,
        memory_cap_bytes: int | None = None,
        spill_dir: Path | None = None,
        pool: FramePool | None = None,
    ) -> None:
        for camera_id in cameras:
            _check_path_component(camera_id)
        self.session_dir = Path(session_dir)
        self.session_id = session_id
        self._executor = executor
        self._fsync = fsync  # so session.json never lists a frame the disk does not hold yet
        self._cameras = {camera_id: _Camera(options) for camera_id, options in cameras.items()}
        self._cond = threading.Condition(threading.Lock())
        self._submitted = 0
        self._completed = 0
        self._pending_bytes = 0
        self._failures: list[_Failure] = []
        self._closed = False
        self._cap = memory_cap_bytes if spill_dir is not None else None
        self._pool = pool
        self._spill_file = SpillFile(spill_dir / f"{session_id}.spill") if spill_dir is not None else None
        self._memory_bytes = 0
        self.peak_memory_bytes = 0
        self.spilled_frames = 0
        self.spilled_inline = 0  # of those, spilled on the caller's thread (the spill thread was behind)
        self.warm_frames = 0  # frames copied into the pool's warm memory
        self.cold_frames = 0  # frames the pool had no room for, held where they arrived (no cap)
        self.spilled_bytes = 0
        self._spill_queued_bytes = 0
        self._ladder = EncodeLadder()  # cheaper lossless settings while frames wait (sessions.encode_ladder)

    # -- loop thread -------------------------------------------------------------------------

    def add(
        self, frame: Frame, pose: Mapping[str, Any] | None = None, held: PoolBuffer | None = None
    ) -> None:
        """Number the frame, record its manifest entry and submit its write. Cheap, never blocks on I/O.

        ``pose`` is the frame's pose if known now; :meth:`finish` can set it from the state samples
        at the frame's capture time instead (its ``poses`` argument). ``held``: a pool buffer that
        holds the pixels already (the event ring, camera.ring; ``frame.pixels`` may then be only their
        first bytes): the writer shares it instead of copying.

        Raises KeyError for a camera not given to the writer, ValueError for a frame that
        :func:`camera.frames.decode_message` would not have accepted, RuntimeError after :meth:`finish`.
        """
        if held is not None and self._pool is None:
            frame, held = dataclasses.replace(frame, pixels=bytes(held.view)), None
        ext = encoded_ext(frame)
        # Into warm memory (see camera.pool), outside the lock: the message's bytes can then be freed.
        # The unlocked checks only spare a useless copy; the locked ones below decide.
        wanted = not self._closed and frame.camera_id in self._cameras
        buffer = None
        if self._pool is not None and wanted:
            buffer = self._pool.retain(held) if held is not None else self._pool.copy_in(frame.pixels)
        with self._cond:
            if buffer is not None and (self._closed or frame.camera_id not in self._cameras):
                assert self._pool is not None
                self._pool.release(buffer)
            if self._closed:
                raise RuntimeError(f"session {self.session_id} is finished; frame not added")
            camera = self._cameras.get(frame.camera_id)
            if camera is None:
                raise KeyError(f"camera {frame.camera_id!r} is not recorded in session {self.session_id}")
            nbytes = buffer.nbytes if buffer is not None else len(frame.pixels)
            entry = self._new_entry(camera, frame, pose, ext, nbytes)
            if buffer is not None:
                entry.buffer = buffer
                entry.frame = dataclasses.replace(frame, pixels=b"")  # the buffer holds them now
            route = self._route(entry, warm=buffer is not None)
        if route == "inline":
            self._spill(entry, queued=False)
        elif route == "spill":
            assert self._spill_file is not None
            self._spill_file.submit(self._spill, entry)
        else:
            self._submit(entry)

    def _new_entry(
        self, camera: _Camera, frame: Frame, pose: Mapping[str, Any] | None, ext: str | None, nbytes: int
    ) -> _Entry:
        """Number a frame and make its manifest entry (lock held). ``ext`` None: a raw frame."""
        raw = ext is None
        if ext is None:
            ext = IMAGE_FORMATS[camera.options.image_format][1]
        camera.accepted += 1
        name = f"{camera.accepted:06d}"
        preview = f"{frame.camera_id}/{PREVIEW_DIR}/{name}.png" if raw and camera.options.previews else None
        record: dict[str, Any] = {
            "file": f"{frame.camera_id}/{name}.{ext}",
            "received_at": frame.received_at,
            "timestamp_ns": frame.timestamp_ns,
            "frame_index": frame.frame_index,
            "pose": dict(pose) if pose is not None else None,
            "captured_at": frame.captured_at,
            "time_source": frame.time_source,
        }
        if preview is not None:
            record["preview"] = preview
        entry = _Entry(frame.camera_id, record["file"], preview, record, frame, nbytes, frame.captured_mono)
        camera.entries.append(entry)
        self._submitted += 1
        self._pending_bytes += entry.nbytes
        return entry

    def _route(self, entry: _Entry, warm: bool) -> str:
        """Where a new frame's pixels go (lock held): "write" now from memory, "spill" by the spill
        thread, or "inline" to the spill file on the caller's thread."""
        if self._pool is not None:
            # With a cap the pool is the memory the cap allows: no warm buffer means spill.
            spill = not warm and self._cap is not None
            self.warm_frames += warm
            self.cold_frames += not warm and not spill
        else:
            spill = self._cap is not None and self._memory_bytes + entry.nbytes > self._cap
        self._memory_bytes += entry.nbytes
        self.peak_memory_bytes = max(self.peak_memory_bytes, self._memory_bytes)
        if not spill:
            return "write"
        # Backstop: if the spill thread itself falls behind by more than the spill queue, spill
        # on the caller's thread, so memory stays bounded by the cap plus that queue.
        if self._spill_queued_bytes > max((self._cap or 0) // 50, SPILL_QUEUE_MIN_BYTES):
            self.spilled_inline += 1
            return "inline"
        self._spill_queued_bytes += entry.nbytes
        return "spill"

    def _submit(self, entry: _Entry) -> None:
        # Submitted outside the lock: an executor that runs the job inline must not deadlock.
        try:
            future = self._executor.submit(self._write, entry)
        except Exception as exc:  # e.g. RuntimeError from an executor that was shut down
            self._complete(entry, _Failure(entry.camera_id, entry.file, exc))
            return
        future.add_done_callback(lambda fut: self._on_done(entry, fut))

    def _spill(self, entry: _Entry, queued: bool = True) -> None:
        """Move a frame's pixels to the spill file, then queue its encode (spill thread, or inline)."""
        frame = entry.frame
        assert frame is not None and self._spill_file is not None
        if queued:
            with self._cond:
                self._spill_queued_bytes -= entry.nbytes
        try:
            spilled = self._spill_file.append(frame.pixels)
        except Exception as exc:
            self._complete(entry, _Failure(entry.camera_id, entry.file, exc))
            return
        with self._cond:
            entry.spill = spilled
            entry.frame = dataclasses.replace(frame, pixels=b"")
            self._memory_bytes -= entry.nbytes
            self.spilled_frames += 1
            self.spilled_bytes += entry.nbytes
        self._submit(entry)

    def _failures_in_order(self) -> list[_Failure]:
        """The failed writes in arrival order (writes finish in any order on the pool; lock held)."""
        return sorted(self._failures, key=lambda f: f.file)

    def memory_report(self) -> dict[str, int]:
        """How the session's frames were held: peak bytes in memory, spilled, warm or cold."""
        with self._cond:
            return {
                "peak_buffered_bytes": self.peak_memory_bytes,
                "spilled_frames": self.spilled_frames,
                "spilled_bytes": self.spilled_bytes,
                "spilled_inline": self.spilled_inline,
                "warm_frames": self.warm_frames,
                "cold_frames": self.cold_frames,
            }

    def memory_bytes(self) -> int:
        """Pixel bytes held in memory now (pending writes that were not spilled)."""
        with self._cond:
            return self._memory_bytes

    def reject(self, camera_id: str, reason: str) -> None:
        """Count a rejected frame of ``camera_id``; the first few reasons are kept for the manifest.

        A camera not given to the writer is counted too and appears in the manifest with no frames.
        """
        with self._cond:
            camera = self._cameras.get(camera_id)
            if camera is None:
                camera = self._cameras[camera_id] = _Camera(CameraWriteOptions())
            camera.rejected += 1
            if len(camera.rejection_reasons) < MAX_REJECTION_REASONS:
                camera.rejection_reasons.append(reason)

    # -- any thread ----------------------------------------------------------------------------

    def pending(self) -> int:
        """Writes submitted and not finished yet."""
        with self._cond:
            return self._submitted - self._completed

    def pending_bytes(self) -> int:
        """Pixel bytes held for writes not finished yet (the memory the write-behind costs)."""
        with self._cond:
            return self._pending_bytes

    def progress(self) -> tuple[int, int]:
        """``(finished, submitted)``: finished counts writes done, failed ones included."""
        with self._cond:
            return self._completed, self._submitted

    def out_of_space(self) -> bool:
        """True when writes failed and every failure was the disk (or the file-size limit) running out:
        the frames before it are saved, so the session is partial rather than failed."""
        with self._cond:
            failures = list(self._failures)
        return bool(failures) and all(
            isinstance(f.cause, OSError) and f.cause.errno in _OUT_OF_SPACE for f in failures
        )

    def camera_summary(self) -> dict[str, dict[str, int]]:
        """Per camera: ``frame_count`` (frames accepted), ``rejected_frames``, ``written_frames``,
        ``failed_writes``."""
        with self._cond:
            return {
                camera_id: {
                    "frame_count": camera.accepted,
                    "rejected_frames": camera.rejected,
                    "written_frames": camera.written,
                    "failed_writes": camera.failed,
                }
                for camera_id, camera in self._cameras.items()
            }

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted write is done.

        Raises TimeoutError if some are still running after ``timeout`` seconds, and WriteError
        (naming the first failed file, chained to its OSError) if any write failed.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._completed >= self._submitted, timeout):
                raise TimeoutError(
                    f"session {self.session_id}: {self._submitted - self._completed} writes "
                    f"still pending after {timeout} s"
                )
            failures = self._failures_in_order()
        if failures:
            first = failures[0]
            raise WriteError(
                first.camera_id, first.file, self.session_dir / first.file, first.cause, len(failures) - 1
            ) from first.cause

    def finish(
        self,
        manifest: Mapping[str, Any],
        *,
        raise_on_error: bool = True,
        timeout: float | None = None,
        poses: PoseLookup | None = None,
        camera_notes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SessionManifest:
        """Stop accepting frames, wait for every write, then write ``session.json`` last and atomically.

        The manifest is ``manifest`` plus ``cameras`` (every camera, with ``frame_count``,
        ``rejected_frames``, ``rejection_reasons`` and ``frames`` in arrival order) and
        ``write_errors``. A frame is listed only if its files were written. If a write failed:
        with ``raise_on_error`` WriteError is raised and nothing is written (call again with
        ``raise_on_error=False``, typically with status "failed"); without it, the manifest is written
        listing what exists, with the failures in ``write_errors`` and ``write_error_count``.
        TimeoutError (writes still running after ``timeout``) is raised either way. ``poses`` gives
        each frame's pose (and how it was found) from its camera and capture time; without it the
        pose given to :meth:`add` stays. ``camera_notes`` adds fields to a camera's record (its
        ``clock``). Returns the document written.
        """
        with self._cond:
            self._closed = True
        try:
            try:
                self.wait(timeout)
            finally:
                self._close_spill()
        except WriteError:
            if raise_on_error:
                raise
        with self._cond:
            fields: dict[str, Any] = {"session_id": self.session_id, "status": "complete", **manifest}
            fields["cameras"] = {
                camera_id: _camera_record(camera, poses, (camera_notes or {}).get(camera_id, {}))
                for camera_id, camera in self._cameras.items()
            }
            fields["write_errors"] = [
                {"camera_id": f.camera_id, "file": f.file, "error": _describe(f.cause)}
                for f in self._failures_in_order()[:MAX_WRITE_ERRORS_LISTED]
            ]
            fields["write_error_count"] = len(self._failures)
            folders = [self.session_dir / d for camera in self._cameras.values() for d in camera.dirs_made]
        document = SessionManifest.model_validate(fields)
        if self._fsync:
            # The frames' directory entries reach the disk before the manifest that lists them.
            for folder in folders:
                _fsync_dir(folder)
        write_manifest(self.session_dir, document)
        return document

    def _close_spill(self) -> None:
        if self._spill_file is not None:
            self._spill_file.close()

    # -- executor threads ----------------------------------------------------------------------

    def _write(self, entry: _Entry) -> _Failure | None:
        """Encode and write one frame (and its preview). Returns the failure instead of raising."""
        frame = entry.frame
        assert frame is not None, "each entry is written once"
        options = self._cameras[entry.camera_id].options
        created: list[Path] = []
        current = entry.file
        pixels: Pixels = frame.pixels if entry.buffer is None else entry.buffer.view
        try:
            if entry.spill is not None:
                assert self._spill_file is not None
                pixels = self._spill_file.read(*entry.spill)
            self._make_dir(entry.camera_id, entry.camera_id)
            setting, entry.encoding = self._ladder.choose(options, frame.pixel_format, entry.added)
            data, preview = encode_frame(frame, options, pixels, setting)
            self._write_file(self.session_dir / entry.file, data, created)
            if entry.preview is not None and preview is not None:
                current = entry.preview
                self._make_dir(entry.camera_id, f"{entry.camera_id}/{PREVIEW_DIR}")
                self._write_file(self.session_dir / entry.preview, preview, created)
        except Exception as exc:
            # Leave no partial file behind: session.json lists a frame only if all its files exist.
            for path in created:
                try:
                    path.unlink()
                except OSError:
                    pass
            return _Failure(entry.camera_id, current, exc)
        return None

    def _make_dir(self, camera_id: str, relative: str) -> None:
        camera = self._cameras[camera_id]
        with self._cond:
            if relative in camera.dirs_made:
                return
        # Two workers may race here for a camera's first frames; exist_ok makes that harmless.
        (self.session_dir / relative).mkdir(parents=True, exist_ok=True)
        with self._cond:
            camera.dirs_made.add(relative)

    def _write_file(self, path: Path, data: Pixels, created: list[Path]) -> None:
        # "x": a name is never reused; a collision is a bug to report, not a file to overwrite.
        with open(path, "xb") as fh:
            created.append(path)
            fh.write(data)
            if self._fsync:
                fh.flush()
                os.fsync(fh.fileno())
                # On disk now: let its pages serve the next files instead of taking fresh ones
                # (uncompressed formats write hundreds of MB a second; see SPILL_DROP_EVERY).
                drop_cached(fh.fileno(), 0, 0)

    def _on_done(self, entry: _Entry, future: concurrent.futures.Future[_Failure | None]) -> None:
        failure: _Failure | None
        if future.cancelled():  # e.g. executor.shutdown(cancel_futures=True)
            failure = _Failure(entry.camera_id, entry.file, concurrent.futures.CancelledError("cancelled"))
        elif (exc := future.exception()) is not None:
            failure = _Failure(entry.camera_id, entry.file, exc)
        else:
            failure = future.result()
        self._complete(entry, failure)

    def _complete(self, entry: _Entry, failure: _Failure | None) -> None:
        with self._cond:
            entry.frame = None  # the pixels can go now
            if entry.buffer is not None:
                assert self._pool is not None
                self._pool.release(entry.buffer)
                entry.buffer = None
            self._pending_bytes -= entry.nbytes
            if entry.spill is None:  # still counted in memory (a spilled frame left it then)
                self._memory_bytes -= entry.nbytes
            self._completed += 1
            camera = self._cameras[entry.camera_id]
            if failure is None:
                entry.state = _WRITTEN
                camera.written += 1
            else:
                entry.state = _FAILED
                camera.failed += 1
                self._failures.append(failure)
            self._cond.notify_all()


def _camera_record(camera: _Camera, poses: PoseLookup | None, notes: Mapping[str, Any]) -> CameraRecord:
    """A camera's part of the manifest: its written frames (poses at capture), counts and sources."""
    written = [e for e in camera.entries if e.state == _WRITTEN]
    sources: dict[str, int] = {}
    encodings: dict[str, int] = {}
    for entry in written:
        if poses is not None:
            pose, method = poses(entry.camera_id, entry.captured_mono)
            entry.record["pose"], entry.record["pose_method"] = dict(pose), method
        source = str(entry.record.get("time_source"))
        sources[source] = sources.get(source, 0) + 1
        if entry.encoding is not None:
            encodings[entry.encoding] = encodings.get(entry.encoding, 0) + 1
    return CameraRecord(
        frame_count=camera.written,
        rejected_frames=camera.rejected,
        rejection_reasons=list(camera.rejection_reasons),
        frames=[FrameRecord(**e.record) for e in written],
        time_sources=sources,
        encodings=encodings,
        **notes,
    )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # a folder that failed to be made has nothing to sync
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_path_component(camera_id: str) -> None:
    # Camera ids name folders; one that is not a single plain path component could escape the session.
    bad = not camera_id or camera_id in (".", "..", MANIFEST_NAME) or camera_id != camera_id.strip()
    if bad or any(sep and sep in camera_id for sep in (os.sep, os.altsep, "\0")):
        raise ValueError(f"camera id {camera_id!r} cannot be used as a folder name")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# CameraWriteOptions and Pixels are the types of SessionWriter's arguments (sessions.image_codecs).
__all__: list[str] = [
    "CameraWriteOptions",
    "Pixels",
    "SessionWriter",
    "WriteError",
    "create_session_dir",
]
