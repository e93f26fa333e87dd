"""Copies saved sessions (and final scan manifests) to an S3-compatible object store.

Where: ``s3://<bucket>/<prefix><session_id>/<relative path>``, ``session.json`` last, so a session
whose ``session.json`` is in the store is whole there. A final scan manifest goes to
``<prefix>scans/<scan_id>.json``.

How an object counts as uploaded ("verified"): every PUT and every part carries ``Content-MD5``, so
the store refuses a body damaged on the way (``BadDigest``); then a HEAD of the object must answer
the local file's size as ``Content-Length`` and the ETag computed from the local bytes: the MD5 of the
file for a single PUT, or ``md5(part MD5s)-<parts>`` for a multipart upload. AWS S3 (SSE-S3), MinIO,
Ceph RGW and moto all compute ETags so; a bucket encrypted with SSE-KMS/SSE-C has opaque ETags and
fails the check (named in the error). Only then is the object written to the item's journal
(sessions.upload_queue) and never uploaded again. The flexible checksums (``x-amz-checksum-*``) are
turned off (``when_required``): older MinIO and Ceph refuse the aws-chunked bodies they need.

Resuming: the queue is on disk (sessions.upload_queue). An item that was cut off (outage, restart,
kill) starts again with the objects not in its journal; for each of those the store is asked first
(HEAD): an object that arrived whole before the cut-off is taken as verified instead of sent again.
Multipart uploads left open are aborted. Failures back off per item, doubling from ``retry_min_s`` to
``retry_max_s``, each delay drawn between half and all of it (jitter).

Recording has priority: the worker threads run at nice 19 and, before each object or part, wait while
``is_busy()`` (CaptureService.is_recording) says a job records or saves.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camera.pool import lower_thread_priority
from rigcore.config import RemoteStorageConfig
from service.status import FINISHED
from service.uploads.s3_store import S3Store, StoreError, etag_of, target_of
from sessions.manifest import MANIFEST_NAME, MARKER_NAME, SessionManifest, has_manifest
from sessions.scan_manifest import ScanManifest, list_scan_manifests
from sessions.upload_queue import (
    OPEN_STATES,
    ItemKind,
    Journal,
    UploadRecord,
    UploadState,
    VerifiedObject,
    list_records,
    read_journal,
    read_record,
    reset_journal,
    write_record,
)

log = logging.getLogger(__name__)

MIB = 1024 * 1024
UPLOAD_NICE = 19
BUSY_POLL_S = 0.2
RATE_WINDOW_S = 10.0
FINAL_SCAN_STATES = FINISHED

# Called with (session_id, state, detail) on each change of a session's upload state; the catalog's
# Catalog.set_upload_state has this shape.
StateListener = Callable[[str, str, dict[str, Any]], None]


class _Stopped(Exception):
    """The service is stopping: the item stays ``uploading`` and resumes at the next start."""


@dataclass(frozen=True)
class LocalObject:
    rel: str
    path: Path
    key: str
    size: int


class Uploader:
    """The upload queue and its worker: one thread picks the next due item, a few threads send its
    objects. Without ``remote`` it only answers what earlier runs recorded."""

    def __init__(
        self,
        remote: RemoteStorageConfig | None,
        save_dir: Path,
        images_data_dir: Path,
        is_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.remote = remote
        self.save_dir = save_dir
        self.images_data_dir = images_data_dir
        self._is_busy = is_busy
        self._listeners: list[StateListener] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        # The items with work left (OPEN_STATES); a finished one is read from its record on disk.
        self._records: dict[tuple[ItemKind, str], UploadRecord] = {}
        self._done_bytes: dict[tuple[ItemKind, str], int] = {}
        self._recent: deque[tuple[float, int]] = deque()
        self._last_error: dict[str, Any] | None = None
        self._hold_until = 0.0  # a store-level failure: every item waits until then
        self._activity = "idle"
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._parts: ThreadPoolExecutor | None = None  # the parts of multipart uploads
        self._part_slots = threading.BoundedSemaphore(remote.concurrency if remote else 1)
        self._store: S3Store | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self.remote is None or self._thread is not None:
            return
        self._store = S3Store(self.remote)
        self._pool = ThreadPoolExecutor(
            max_workers=self.remote.concurrency,
            thread_name_prefix="upload",
            initializer=lower_thread_priority,
            initargs=(UPLOAD_NICE,),
        )
        self._parts = ThreadPoolExecutor(
            max_workers=self.remote.concurrency,
            thread_name_prefix="upload-part",
            initializer=lower_thread_priority,
            initargs=(UPLOAD_NICE,),
        )
        self._thread = threading.Thread(target=self._run, name="upload queue", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        for pool in (self._pool, self._parts):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(session_id, state, detail)`` on every change of a session's upload state
        (the catalog's hook point: ``uploads.add_listener(catalog.set_upload_state)``)."""
        self._listeners.append(listener)

    # -- aftercare hooks ----------------------------------------------------------------------------
    def session_saved(self, manifest: SessionManifest, folder: Path) -> None:
        if self.remote is not None:
            self._enqueue("session", manifest.session_id, folder)

    def scan_written(self, manifest: ScanManifest, path: Path) -> None:
        if self.remote is not None and manifest.status in FINAL_SCAN_STATES:
            self._enqueue("scan", manifest.scan_id, path)

    # -- views -------------------------------------------------------------------------------------
    def session_state(self, session_id: str) -> dict[str, Any] | None:
        """A session's upload state (GET /sessions/<id> "upload"), or None: never queued."""
        with self._lock:
            record = self._records.get(("session", session_id))
        if record is None:
            record = read_record(self.images_data_dir, "session", session_id)
        if record is None:
            return None
        view = record.view()
        if self.remote is not None and record.target == target_of(self.remote):
            view["location"] = f"s3://{self.remote.bucket}/{self.remote.prefix}{session_id}/"
        return view

    def status(self) -> dict[str, Any]:
        """The queue for GET /status."""
        if self.remote is None:
            return {"enabled": False}
        now = time.monotonic()
        with self._lock:
            open_items = [r for r in self._records.values() if r.state in OPEN_STATES]
            pending_bytes = sum(
                max(0, (r.bytes_total or 0) - self._done_bytes.get((r.kind, r.item_id), 0))
                for r in open_items
            )
            while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
                self._recent.popleft()
            recent = sum(n for _, n in self._recent)
            span = max(1.0, now - self._recent[0][0]) if self._recent else RATE_WINDOW_S
            activity, last_error = self._activity, self._last_error
        return {
            "enabled": True,
            "target": f"s3://{self.remote.bucket}/{self.remote.prefix}",
            "endpoint": self.remote.endpoint,
            "activity": activity,  # idle | uploading | paused (a job records) | waiting (back-off) | starting
            "sessions_pending": sum(1 for r in open_items if r.kind == "session"),
            "scans_pending": sum(1 for r in open_items if r.kind == "scan"),
            "bytes_pending": pending_bytes,
            "rate_mb_s": round(recent / span / 1e6, 2),
            "rate_window_s": RATE_WINDOW_S,
            "last_error": last_error,
        }

    def wait_idle(self, timeout: float) -> bool:
        """Block until the queue is loaded and nothing is left to upload; False on timeout."""
        deadline = time.monotonic() + timeout
        if not self._loaded.wait(timeout):
            return False
        with self._wake:
            return self._wake.wait_for(
                lambda: not any(r.state in OPEN_STATES for r in self._records.values()),
                max(0.0, deadline - time.monotonic()),
            )

    # -- queue ---------------------------------------------------------------------------------------
    def _enqueue(self, kind: ItemKind, item_id: str, source: Path) -> None:
        assert self.remote is not None
        target = target_of(self.remote)
        with self._lock:
            known = self._records.get((kind, item_id))
        if known is None:
            known = read_record(self.images_data_dir, kind, item_id)
        if known is not None and known.target == target:
            return  # queued already (by the start's sweep of save_dir, or by an earlier save)
        if not source.exists():
            log.warning("%s %s: %s is gone, not queued for upload", kind, item_id, source)
            return
        objects = list(self._walk(kind, item_id, source))
        record = UploadRecord(
            kind=kind,
            item_id=item_id,
            source=str(source),
            target=target,
            queued_at=time.time(),
            objects=len(objects),
            bytes_total=sum(o.size for o in objects),
        )
        reset_journal(self.images_data_dir, kind, item_id)
        self._save(record)

    def _save(self, record: UploadRecord) -> None:
        write_record(self.images_data_dir, record)
        with self._wake:
            if record.state in OPEN_STATES:
                self._records[(record.kind, record.item_id)] = record
            else:
                self._records.pop((record.kind, record.item_id), None)
                self._done_bytes.pop((record.kind, record.item_id), None)
            self._wake.notify_all()
        if record.kind == "session":
            for listener in self._listeners:
                try:
                    listener(record.item_id, str(record.state), record.view())
                except Exception:
                    log.exception("upload state listener failed for %s", record.item_id)

    def _update(self, record: UploadRecord, **changes: Any) -> UploadRecord:
        fresh = record.model_copy(update=changes)
        self._save(fresh)
        return fresh

    def _load(self) -> None:
        """The queue as the last run left it, and every saved session or final scan not in it yet."""
        assert self.remote is not None
        target = target_of(self.remote)
        known: set[tuple[ItemKind, str]] = set()
        for record in list_records(self.images_data_dir):
            known.add((record.kind, record.item_id))
            if record.state not in OPEN_STATES:
                continue  # done (in the store it went to, even if another is configured now)
            if record.target != target:
                # Configured for another store now: what was not finished starts over there.
                self._enqueue(record.kind, record.item_id, Path(record.source))
                continue
            with self._lock:
                self._records[(record.kind, record.item_id)] = record
                self._done_bytes[(record.kind, record.item_id)] = sum(
                    v.size for v in read_journal(self.images_data_dir, record.kind, record.item_id).values()
                )
        for kind, item_id, source in self._unqueued(known):
            if self._stop.is_set():
                return
            self._enqueue(kind, item_id, source)

    def _unqueued(self, known: set[tuple[ItemKind, str]]) -> Iterator[tuple[ItemKind, str, Path]]:
        try:
            folders = sorted(p for p in self.save_dir.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            folders = []
        for folder in folders:
            if (
                ("session", folder.name) not in known
                and has_manifest(folder)
                and not (folder / MARKER_NAME).exists()
            ):
                yield "session", folder.name, folder
        for scan in list_scan_manifests(self.images_data_dir):
            if ("scan", scan.scan_id) not in known and scan.status in FINAL_SCAN_STATES:
                yield "scan", scan.scan_id, self.images_data_dir / "scans" / f"{scan.scan_id}.json"

    def _walk(self, kind: ItemKind, item_id: str, source: Path) -> Iterator[LocalObject]:
        """The item's objects, ``session.json`` last; hidden files (temp files, the marker) left out."""
        assert self.remote is not None
        prefix = self.remote.prefix
        if kind == "scan":
            yield LocalObject(source.name, source, f"{prefix}scans/{source.name}", source.stat().st_size)
            return
        files = sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink())
        last: list[LocalObject] = []
        for path in files:
            rel = path.relative_to(source).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            obj = LocalObject(rel, path, f"{prefix}{item_id}/{rel}", path.stat().st_size)
            if rel == MANIFEST_NAME:
                last.append(obj)
            else:
                yield obj
        yield from last

    # -- worker --------------------------------------------------------------------------------------
    def _run(self) -> None:
        lower_thread_priority(UPLOAD_NICE)
        try:
            with self._lock:
                self._activity = "starting"
            self._load()
        except Exception:
            log.exception("could not load the upload queue")
        finally:
            self._loaded.set()
        while not self._stop.is_set():
            due = self._next_due()
            if due is None:
                continue
            try:
                self._attempt(due)
            except Exception:  # a bug must not end the queue: the item backs off like any failure
                log.exception("upload of %s failed", due.item_id)
                self._failed(due, "internal error (see the log)", store_level=False)

    def _next_due(self) -> UploadRecord | None:
        """The oldest item due now, or None after waiting a little (or for a wake-up)."""
        with self._wake:
            now = time.time()
            open_items = [r for r in self._records.values() if r.state in OPEN_STATES]
            due = [r for r in open_items if r.next_attempt_at <= now and self._hold_until <= now]
            if due:
                self._activity = "uploading"
                return min(due, key=lambda r: (r.kind != "session", r.queued_at))
            self._activity = "waiting" if open_items else "idle"
            soonest = min((max(r.next_attempt_at, self._hold_until) for r in open_items), default=now + 5)
            self._wake.wait(min(5.0, max(0.05, soonest - now)))
        return None

    def _quiet(self) -> None:
        """Wait while a job records or saves; raise _Stopped when the service stops."""
        paused = False
        while self._is_busy() and not self._stop.is_set():
            if not paused:
                paused = True
                with self._lock:
                    self._activity = "paused"
            self._stop.wait(BUSY_POLL_S)
        if self._stop.is_set():
            raise _Stopped
        if paused:
            with self._lock:
                self._activity = "uploading"

    def _attempt(self, record: UploadRecord) -> None:
        resumed = record.attempts > 0 or record.state == UploadState.UPLOADING
        record = self._update(record, state=UploadState.UPLOADING, started_at=time.time())
        try:
            source = Path(record.source)
            if not source.exists():
                raise StoreError(f"the local copy {source} is gone; nothing to upload", store_level=False)
            objects = list(self._walk(record.kind, record.item_id, source))
            record = self._abort_open(record)
            verified = read_journal(self.images_data_dir, record.kind, record.item_id)
            todo = [o for o in objects if o.key not in verified or verified[o.key].size != o.size]
            with self._lock:
                self._done_bytes[(record.kind, record.item_id)] = sum(
                    o.size for o in objects if o not in todo
                )
            with Journal(self.images_data_dir, record.kind, record.item_id) as journal:
                self._send_all(record, todo, journal, resumed)
            self._finish(record)
        except _Stopped:
            return
        except StoreError as exc:
            self._failed(record, str(exc), exc.store_level)
        except OSError as exc:
            self._failed(record, f"cannot read the local copy: {exc}", store_level=False)

    def _abort_open(self, record: UploadRecord) -> UploadRecord:
        assert self._store is not None
        for key, upload_id in record.multipart.items():
            self._store.abort(key, upload_id)
        return self._update(record, multipart={}) if record.multipart else record

    def _send_all(
        self, record: UploadRecord, todo: list[LocalObject], journal: Journal, resumed: bool
    ) -> None:
        """Every object but the last in parallel, then the last (session.json) alone."""
        assert self._pool is not None
        box = _RecordBox(record, self._update)
        body, last = todo[:-1], todo[-1:]
        if todo and todo[-1].rel != MANIFEST_NAME and record.kind == "session":
            body, last = todo, []
        futures: list[Future[None]] = [self._pool.submit(self._send, box, o, journal, resumed) for o in body]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            box.cancelled.set()
            wait(pending)
            raise failed[0].exception()  # type: ignore[misc]
        for obj in last:
            self._send(box, obj, journal, resumed)

    def _send(self, box: _RecordBox, obj: LocalObject, journal: Journal, resumed: bool) -> None:
        assert self._store is not None and self.remote is not None
        if box.cancelled.is_set():
            raise _Stopped
        self._quiet()
        found = self._store.head(obj.key, probe=True) if resumed else None
        if found is not None and found == (obj.size, etag_of(obj.path, obj.size, self.remote)):
            log.info("%s is already in the store (an earlier attempt sent it): not sent again", obj.key)
            expected = found[1]
        else:
            expected = self._upload(box, obj)
            stored = self._store.head(obj.key)
            if stored != (obj.size, expected):
                raise StoreError(
                    f"verification failed for s3://{self.remote.bucket}/{obj.key}: the store has "
                    f"{'nothing' if stored is None else f'size {stored[0]}, ETag {stored[1]}'}; sent size "
                    f"{obj.size}, ETag {expected} (an SSE-KMS/SSE-C bucket has ETags that are not MD5s)",
                    store_level=False,
                )
        with self._lock:
            journal.add(VerifiedObject(key=obj.key, size=obj.size, etag=expected, at=time.time()))
            key = (box.record.kind, box.record.item_id)
            self._done_bytes[key] = self._done_bytes.get(key, 0) + obj.size
            self._recent.append((time.monotonic(), obj.size))

    def _upload(self, box: _RecordBox, obj: LocalObject) -> str:
        assert self._store is not None and self.remote is not None
        if obj.size <= self.remote.multipart_threshold_mb * MIB:
            data = obj.path.read_bytes()
            if len(data) != obj.size:
                raise StoreError(f"{obj.path} changed while it was uploaded", store_level=False)
            return self._store.put(obj.key, data)
        upload_id = self._store.begin(obj.key)
        box.opened(obj.key, upload_id)
        results = self._send_parts(box, obj, upload_id)
        parts = [{"PartNumber": n, "ETag": f'"{etag}"'} for n, (etag, _) in enumerate(results, 1)]
        self._store.complete(obj.key, upload_id, parts)
        box.closed(obj.key)
        return f"{hashlib.md5(b''.join(d for _, d in results)).hexdigest()}-{len(results)}"

    def _send_parts(self, box: _RecordBox, obj: LocalObject, upload_id: str) -> list[tuple[str, bytes]]:
        """The file's parts, several at once on the parts pool; at most ``concurrency`` parts are read
        into memory at any time, across all files (the semaphore)."""
        assert self._store is not None and self._parts is not None and self.remote is not None
        store, part_size = self._store, self.remote.part_size_mb * MIB
        futures: list[Future[tuple[str, bytes]]] = []

        def send(number: int, chunk: bytes) -> tuple[str, bytes]:
            try:
                return store.part(obj.key, upload_id, number, chunk)
            finally:
                self._part_slots.release()

        try:
            with obj.path.open("rb") as fh:
                for number in itertools.count(1):
                    if box.cancelled.is_set() or any(f.done() and f.exception() for f in futures):
                        break
                    self._quiet()
                    self._part_slots.acquire()
                    try:
                        chunk = fh.read(part_size)
                    except OSError:
                        self._part_slots.release()
                        raise
                    if not chunk:
                        self._part_slots.release()
                        break
                    futures.append(self._parts.submit(send, number, chunk))
        finally:
            wait(futures)
        if box.cancelled.is_set():
            raise _Stopped
        return [f.result() for f in futures]  # the first part that failed raises here

    def _finish(self, record: UploadRecord) -> None:
        """Every object verified: ``uploaded``, or with delete_local_after_upload the folder is
        deleted first and the state is ``local-deleted`` (never ``uploaded`` in between, so nobody
        waiting for the queue sees it done while the folder is still going)."""
        with self._lock:
            if self._last_error is not None and self._last_error.get("item") == record.item_id:
                self._last_error = None
        done: dict[str, Any] = {"finished_at": time.time(), "last_error": None, "multipart": {}}
        if record.kind == "session" and self.remote is not None and self.remote.delete_local_after_upload:
            verified = read_journal(self.images_data_dir, record.kind, record.item_id)
            current = list(self._walk(record.kind, record.item_id, Path(record.source)))
            if any(o.key not in verified or verified[o.key].size != o.size for o in current):
                log.warning("%s gained files during its upload; uploading those too", record.item_id)
                self._update(record, state=UploadState.PENDING)
                return
            try:
                shutil.rmtree(record.source)
            except OSError as exc:
                log.error("%s is uploaded, but its local copy could not be deleted: %s", record.item_id, exc)
                self._update(
                    record, state=UploadState.UPLOADED, **{**done, "last_error": f"not deleted: {exc}"}
                )
                return
            _log_uploaded(self._update(record, state=UploadState.LOCAL_DELETED, **done))
            return
        _log_uploaded(self._update(record, state=UploadState.UPLOADED, **done))

    def _failed(self, record: UploadRecord, message: str, store_level: bool) -> None:
        assert self.remote is not None
        attempts = record.attempts + 1
        delay = min(self.remote.retry_max_s, self.remote.retry_min_s * 2 ** min(attempts - 1, 30))
        delay *= random.uniform(0.5, 1.0)
        now = time.time()
        log.warning(
            "upload of %s failed (attempt %d, again in %.1f s): %s", record.item_id, attempts, delay, message
        )
        with self._lock:
            self._last_error = {"message": message, "at": now, "item": record.item_id, "kind": record.kind}
            if store_level:
                self._hold_until = now + delay
        # The record on disk is current for the multipart uploads (_RecordBox wrote them).
        with self._lock:
            latest = self._records.get((record.kind, record.item_id), record)
        self._update(
            latest,
            state=UploadState.FAILED,
            attempts=attempts,
            next_attempt_at=now + delay,
            last_error=message,
        )


def _log_uploaded(record: UploadRecord) -> None:
    """One line per upload done (a failed attempt has its own, in _failed)."""
    took = (record.finished_at or 0) - (record.started_at or record.queued_at)
    size = f"{(record.bytes_total or 0) / 1e6:.1f} MB"
    deleted = ", local copy deleted" if record.state == UploadState.LOCAL_DELETED else ""
    fields = {"event": "uploaded", "item_id": record.item_id, "kind": record.kind, "size": record.bytes_total}
    log.info(
        "uploaded %s %s: %s objects, %s in %.1f s to %s%s",
        *(record.kind, record.item_id, record.objects, size, took, record.target, deleted),
        extra=fields,
    )


class _RecordBox:
    """One attempt's record, shared by the threads that send its objects: the multipart uploads they
    open are written to the record at once, so that the next attempt can abort them."""

    def __init__(self, record: UploadRecord, update: Callable[..., UploadRecord]) -> None:
        self.record = record
        self.cancelled = threading.Event()
        self._update = update
        self._lock = threading.Lock()

    def opened(self, key: str, upload_id: str) -> None:
        with self._lock:
            self.record = self._update(self.record, multipart={**self.record.multipart, key: upload_id})

    def closed(self, key: str) -> None:
        with self._lock:
            rest = {k: v for k, v in self.record.multipart.items() if k != key}
            self.record = self._update(self.record, multipart=rest)
