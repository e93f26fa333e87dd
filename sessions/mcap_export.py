"""A saved session folder as one MCAP file that Foxglove opens (``GET /sessions/<id>.mcap``).

Built from the lossless session folder, read through ``sessions.manifest``; nothing is written into
the folder. The file is produced as a stream of byte chunks (:func:`mcap_chunks`): the ``mcap``
writer only ever appends and asks ``tell()``, so the HTTP answer starts at once and memory holds
about one MCAP chunk (``CHUNK_SIZE``), whatever the session's size.

What is in the file (Foxglove's well-known schemas, protobuf from ``foxglove-schemas-protobuf``)::

    /<camera_id>/image   foxglove.RawImage (mono8, mono16 little-endian, rgb8, rgba8) with the
                         pixels of the lossless file, or foxglove.CompressedImage (jpeg, png) with
                         the bytes of the camera's own file; frame_id = the camera id
    /rig/state           JSON: pan, tilt (x100 and degrees), moving, range-finder distance and each
                         camera's zoom; one message per state sample kept with the session, every
                         device, from the batch's first command to the recording's end (older
                         sessions: what they kept; see sessions.mcap_rig)
    /tf                  foxglove.FrameTransforms: base -> pan -> tilt -> <camera_id>
    /frame_sets          JSON: one message per frame set (sessions.frame_sets)
    metadata "session"   session id, job, status, times, settle point and proof, pose, capture
                         window and time sources, state samples, scan and pose index
    attachment           session.json as written

Times: every log time is on the service's clock (epoch ns). An image is logged when it was
*captured* (``captured_at``), with its arrival (``received_at``) as the MCAP publish time; its
``timestamp`` is the camera's ``timestamp_ns`` when the frame's time source is ``stamp`` (a camera
clock judged plausible), else its capture time too. A session saved before capture times were
kept (format version < 3) logs an image at its arrival, with the camera's ``timestamp_ns`` as its
timestamp and publish time where it had one; a frame with no ``received_at`` either (rebuilt
after a crash) at its camera time, else at its file's modification time. ``/rig/state`` and
``/tf`` are logged when each state sample arrived (``state.jsonl``, read through
``sessions.state_log``), so the move before the settle plays too, and at an image's log time the
state topic shows the rig as it was when the image was captured (frames travel behind the state
topics by a second or more; their capture times do not). A ``/frame_sets`` message is logged
at the capture time of its latest frame (older sessions: its arrival), so it plays after its
images; its publish time is the set's own time. Messages are written in log-time order across all
channels.

Which image schema: a camera's frames go out as ``CompressedImage`` when every file is the camera's
own encoding — a ``.jpg`` (the writer never makes JPEG), or a ``.png`` of a camera configured as
``encoded`` (``compressed_cameras``; a PNG the writer made from raw pixels looks the same on disk).
Otherwise each file is decoded with Pillow, whatever lossless format wrote it, and sent as
``RawImage``; ``bgr8`` frames are stored in RGB order (sessions.writer) and so come out as ``rgb8``.

Axes (``/tf``): frames are right-handed, x forward, y left, z up (Foxglove's convention). ``pan`` is
a rotation of ``base`` about +z by the pan angle (positive: counter-clockwise seen from above);
``tilt`` a rotation of ``pan`` about +y by minus the tilt angle, so a positive tilt raises the
cameras. Each camera's frame hangs off ``tilt`` in the optical convention Foxglove's image panels use
(z forward, x right, y down). The rig's protocol does not say which way its angles turn; PAN_SIGN and
TILT_SIGN (sessions.mcap_rig) flip them for a rig that turns the other way.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from mcap.writer import CompressionType, Writer
from PIL import Image

from sessions.frame_sets import FrameSets
from sessions.manifest import MANIFEST_NAME, FrameRecord, SessionManifest
from sessions.mcap_rig import RIG_STATE_SCHEMA, rig_states, transforms
from sessions.state_log import StateRecord, read_state_log

# Target uncompressed size of an MCAP chunk: several frames each, and the memory a stream holds.
CHUNK_SIZE = 4 * 1024 * 1024
# zstd: bench/mcap_bench.py's noisy 10 s session gives 41.2 MB with zstd, 43.4 MB with lz4 or none
# (lz4 finds nothing to take in sensor noise), for about 0.1 s more CPU than lz4.
COMPRESSION = CompressionType.ZSTD
LIBRARY = "rigcapture sessions.mcap_export"
METADATA_NAME = "session"
_COMPRESSED_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}
_U32 = 2**32

FRAME_SET_SCHEMA: dict[str, Any] = {
    "title": "rigcapture.FrameSet",
    "description": "One frame per camera taken at the same instant (frame_sets.json)",
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "timestamp_ns": {"type": "integer"},
        "spread_ms": {"type": "number"},
        "frames": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


class ExportError(Exception):
    """The session cannot be exported (a listed frame file is missing, unreadable or outside the
    session); names the file."""


# -- images -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RawPixels:
    """A decoded frame as ``foxglove.RawImage`` wants it."""

    encoding: str
    width: int
    height: int
    step: int
    data: bytes

    def message(self, stamp: Timestamp, frame_id: str) -> bytes:
        """This frame as a serialized ``foxglove.RawImage`` (its fields are the message's)."""
        return RawImage(timestamp=stamp, frame_id=frame_id, **asdict(self)).SerializeToString()


def compressed_message(stamp: Timestamp, frame_id: str, data: bytes, fmt: str) -> bytes:
    """A JPEG or PNG as a serialized ``foxglove.CompressedImage``."""
    return CompressedImage(timestamp=stamp, frame_id=frame_id, data=data, format=fmt).SerializeToString()


def decode_raw(path: Path) -> RawPixels:
    """The pixels of an image file (PNG, TIFF, any lossless format Pillow reads) at their own depth:
    ``mono8``, ``mono16`` (little-endian), ``rgb8`` or ``rgba8``. ExportError if it cannot be read."""
    try:
        with Image.open(path) as image:
            image.load()
            return _raw_of(image)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path.name}: not a readable image ({exc})") from exc


def _raw_of(image: Image.Image) -> RawPixels:
    w, h = image.size
    mode = image.mode
    if mode == "L":
        return RawPixels("mono8", w, h, w, image.tobytes())
    if mode.startswith("I;16") or mode == "I":
        # I;16 / I;16B / I (32-bit, as some readers give 16-bit files): values to little-endian uint16.
        arr = np.asarray(image)
        if arr.dtype.kind == "i" and (arr.min(initial=0) < 0 or arr.max(initial=0) > 0xFFFF):
            raise ValueError(f"mode {mode} holds values outside 0..65535")
        return RawPixels("mono16", w, h, 2 * w, arr.astype("<u2", copy=False).tobytes())
    if mode == "RGB":
        return RawPixels("rgb8", w, h, 3 * w, image.tobytes())
    if mode == "RGBA":
        return RawPixels("rgba8", w, h, 4 * w, image.tobytes())
    # Palette, 1-bit, grey with alpha ...: no writer here makes them; expanded without loss.
    return _raw_of(image.convert("RGBA" if "A" in image.getbands() else "RGB"))


def _timestamp(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


# -- the plan: every message, in log-time order --------------------------------------------------
@dataclass(frozen=True, slots=True)
class _FrameItem:
    camera_id: str
    path: Path
    record: FrameRecord
    stamp_ns: int  # the camera's time if known, else the log time


@dataclass(order=True, frozen=True, slots=True)
class _Item:
    log_ns: int
    seq: int  # ties keep the order they were planned in
    topic: str = field(compare=False)
    payload: Any = field(compare=False)
    publish_ns: int = field(compare=False)
    sequence: int = field(compare=False, default=0)


@dataclass
class _Plan:
    items: list[_Item] = field(default_factory=list)

    def add(
        self, log_ns: int, topic: str, payload: Any, publish_ns: int | None = None, sequence: int = 0
    ) -> None:
        publish = log_ns if publish_ns is None else publish_ns
        self.items.append(_Item(log_ns, len(self.items), topic, payload, publish, sequence))


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1e9)


def _frame_path(folder: Path, file: str) -> Path:
    """A listed frame file, inside the session folder (session.json is data: not trusted to point
    out of it)."""
    path = (folder / file).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise ExportError(f"frame file {file} is missing or outside session {folder.name}")
    return path


def _plan_frames(folder: Path, manifest: SessionManifest, plan: _Plan) -> None:
    for camera_id, camera in manifest.cameras.items():
        topic = image_topic(camera_id)
        for record in camera.frames:
            path = _frame_path(folder, record.file)
            log_ns, publish_ns, stamp = _frame_times(record, path)
            index = record.frame_index
            sequence = index if index is not None and 0 <= index < _U32 else 0
            plan.add(log_ns, topic, _FrameItem(camera_id, path, record, stamp), publish_ns, sequence)


def _frame_times(record: FrameRecord, path: Path) -> tuple[int, int, int]:
    """A frame's (log, publish, image stamp) times in ns, as the module docstring's "Times" says."""
    captured = _ns(record.captured_at)
    if captured is not None:
        publish = _ns(record.received_at)
        stamp = record.timestamp_ns if record.time_source == "stamp" else None
        return captured, captured if publish is None else publish, captured if stamp is None else stamp
    log_ns = _ns(record.received_at) or record.timestamp_ns or path.stat().st_mtime_ns
    stamp = record.timestamp_ns if record.timestamp_ns is not None else log_ns
    return log_ns, stamp, stamp


def image_topic(camera_id: str) -> str:
    return f"/{camera_id}/image"


def compressed_format(
    camera_id: str, manifest: SessionManifest, compressed_cameras: Collection[str]
) -> str | None:
    """``jpeg``/``png`` when every file of the camera is the camera's own encoding (see the module
    docstring), else None (the frames are decoded and sent raw)."""
    frames = manifest.cameras[camera_id].frames
    formats = {_COMPRESSED_FORMATS.get(Path(f.file).suffix.lower()) for f in frames}
    if len(formats) != 1:
        return None
    (fmt,) = formats
    if fmt == "jpeg" or (fmt == "png" and camera_id in compressed_cameras):
        return fmt
    return None


# -- rig state and transforms (sessions.mcap_rig) --------------------------------------------------
def _plan_rig(manifest: SessionManifest, samples: Sequence[StateRecord], plan: _Plan) -> None:
    last_axes: tuple[float, float] | None = None
    cameras = list(manifest.cameras)
    for state in rig_states(manifest, samples):
        log_ns = round(state["received_at"] * 1e9)
        plan.add(log_ns, "/rig/state", state)
        pan, tilt = state["pan_deg_x100"], state["tilt_deg_x100"]
        if pan is not None and tilt is not None and (pan, tilt) != last_axes:
            last_axes = (pan, tilt)
            plan.add(log_ns, "/tf", transforms(pan, tilt, cameras, log_ns))


def _plan_frame_sets(manifest: SessionManifest, frame_sets: FrameSets, plan: _Plan) -> None:
    """One message per set, logged at its latest frame's log time (so it plays after its images): its
    capture time, or in an older session its arrival; the publish time is the set's own time."""
    logged: dict[str, int | None] = {}
    for camera in manifest.cameras.values():
        for f in camera.frames:
            logged[f.file] = _ns(f.captured_at if f.captured_at is not None else f.received_at)
    for index, frame_set in enumerate(frame_sets.sets):
        times = [t for file in frame_set.frames.values() if (t := logged.get(file)) is not None]
        log_ns = max(times) if times else frame_set.timestamp_ns
        plan.add(log_ns, "/frame_sets", {"index": index, **frame_set.to_json()}, frame_set.timestamp_ns)


# -- metadata ---------------------------------------------------------------------------------------
def _utc(epoch: float | None) -> str:
    if epoch is None:
        return ""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{whole}.{int((epoch % 1) * 1000):03d}Z"


def session_metadata(manifest: SessionManifest) -> dict[str, str]:
    """The ``session`` metadata record: every value a string (MCAP metadata is string to string)."""
    extra = manifest.model_extra or {}
    meta: dict[str, Any] = {
        "session_id": manifest.session_id,
        "job_id": manifest.job_id,
        "status": str(manifest.status),
        "settled_at": manifest.settled_at,
        "settled_at_utc": _utc(manifest.settled_at),
        "record_started_at": manifest.record_started_at,
        "record_started_at_utc": _utc(manifest.record_started_at),
        "record_ended_at": manifest.record_ended_at,
        "record_ended_at_utc": _utc(manifest.record_ended_at),
        "duration_second": manifest.duration_second,
        "settle_to_first_frame_s": manifest.settle_to_first_frame_s,
        "pose_at_start": manifest.pose_at_start,
        "settle": manifest.settle,
        "cameras": {cam: rec.frame_count for cam, rec in manifest.cameras.items()},
        "problems": [p.to_json() for p in manifest.problems],
        "format_version": manifest.format_version,
        # What /rig/state is made of: the state samples kept in state.jsonl ("state_log": how many,
        # how many beyond its bound were dropped, the span); an older session's pan-tilt and
        # range-finder samples kept in session.json ("telemetry_*"), zooms from the frames' poses.
        "state_log": None if manifest.state_log is None else manifest.state_log.model_dump(mode="json"),
        "telemetry_samples": len(extra.get("telemetry") or []),
        "telemetry_dropped": extra.get("telemetry_dropped"),
        # How the window was held in capture time, and how each camera's capture times were known.
        "capture": None if manifest.capture is None else manifest.capture.to_json(),
        "time_sources": {cam: rec.time_sources for cam, rec in manifest.cameras.items() if rec.time_sources}
        or None,
    }
    if manifest.scan_id is not None:
        meta["scan_id"] = manifest.scan_id
        meta["pose_index"] = manifest.pose_index
    return {key: _text(value) for key, value in meta.items() if value is not None}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# -- writing ----------------------------------------------------------------------------------------
def file_descriptor_set(message: type[Message]) -> bytes:
    """The protobuf schema of ``message`` as MCAP wants it: a FileDescriptorSet with its file and
    every file it imports (google/protobuf/timestamp.proto ...), dependencies first."""
    fds = FileDescriptorSet()
    seen: set[str] = set()

    def add(file: Any) -> None:  # FileDescriptor (pure Python or upb: two types to mypy)
        for dep in file.dependencies:
            if dep.name not in seen:
                seen.add(dep.name)
                add(dep)
        file.CopyToProto(fds.file.add())

    add(message.DESCRIPTOR.file)
    return fds.SerializeToString()


class _Sink:
    """The writer's output: collects what is written until taken; ``tell()`` counts every byte."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class _Channels:
    """Schemas and channels registered with the writer, by topic."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._schemas: dict[str, int] = {}
        self.ids: dict[str, int] = {}

    def protobuf(self, topic: str, message: type[Message], metadata: dict[str, str] | None = None) -> None:
        name = message.DESCRIPTOR.full_name
        if name not in self._schemas:
            self._schemas[name] = self._writer.register_schema(name, "protobuf", file_descriptor_set(message))
        self.ids[topic] = self._writer.register_channel(
            topic, "protobuf", self._schemas[name], metadata or {}
        )

    def json(self, topic: str, schema: dict[str, Any]) -> None:
        schema_id = self._writer.register_schema(schema["title"], "jsonschema", json.dumps(schema).encode())
        self.ids[topic] = self._writer.register_channel(topic, "json", schema_id)


def mcap_chunks(
    folder: Path,
    manifest: SessionManifest,
    frame_sets: FrameSets,
    compressed_cameras: Collection[str] = (),
) -> Iterator[bytes]:
    """The MCAP file of the session in ``folder``, as byte chunks in order.

    Every listed frame file is checked before the first byte (ExportError); a file that cannot be
    decoded later raises ExportError from the iterator, leaving the stream without its footer.
    """
    folder = folder.resolve()
    plan = _Plan()
    _plan_frames(folder, manifest, plan)  # raises before anything is written
    _plan_rig(manifest, read_state_log(folder, manifest.model_extra), plan)
    _plan_frame_sets(manifest, frame_sets, plan)
    plan.items.sort()
    sink = _Sink()
    writer = Writer(
        cast(IO[bytes], sink), chunk_size=CHUNK_SIZE, compression=COMPRESSION, enable_data_crcs=True
    )
    writer.start(profile="", library=LIBRARY)
    channels = _Channels(writer)
    formats = {cam: compressed_format(cam, manifest, compressed_cameras) for cam in manifest.cameras}
    for cam, fmt in formats.items():
        kind = CompressedImage if fmt is not None else RawImage
        channels.protobuf(image_topic(cam), kind, {"camera_id": cam})
    channels.json("/rig/state", RIG_STATE_SCHEMA)
    channels.protobuf("/tf", FrameTransforms)
    channels.json("/frame_sets", FRAME_SET_SCHEMA)
    writer.add_metadata(METADATA_NAME, session_metadata(manifest))
    _attach_manifest(writer, folder, manifest)
    yield sink.take()
    for item in plan.items:
        if isinstance(item.payload, _FrameItem):
            data = _image_message(item.payload, formats[item.payload.camera_id])
        elif isinstance(item.payload, Message):
            data = item.payload.SerializeToString()
        else:
            data = json.dumps(item.payload, ensure_ascii=False).encode()
        writer.add_message(channels.ids[item.topic], item.log_ns, data, item.publish_ns, item.sequence)
        if chunk := sink.take():
            yield chunk
    writer.finish()  # type: ignore[no-untyped-call]  # mcap 1.6 leaves it unannotated
    yield sink.take()


def _image_message(item: _FrameItem, fmt: str | None) -> bytes:
    stamp = _timestamp(item.stamp_ns)
    if fmt is not None:
        return compressed_message(stamp, item.camera_id, item.path.read_bytes(), fmt)
    return decode_raw(item.path).message(stamp, item.camera_id)


def _attach_manifest(writer: Writer, folder: Path, manifest: SessionManifest) -> None:
    path = folder / MANIFEST_NAME
    data = path.read_bytes()
    log_ns = _ns(manifest.record_started_at) or 0
    writer.add_attachment(os.stat(path).st_mtime_ns, log_ns, MANIFEST_NAME, "application/json", data)


def write_mcap(
    folder: Path,
    manifest: SessionManifest,
    frame_sets: FrameSets,
    out: Path,
    compressed_cameras: Collection[str] = (),
) -> int:
    """Write the session's MCAP to ``out`` (for tools and benchmarks); returns its size in bytes."""
    size = 0
    with open(out, "wb") as fh:
        for chunk in mcap_chunks(folder, manifest, frame_sets, compressed_cameras):
            fh.write(chunk)
            size += len(chunk)
    return size


__all__ = [
    "CHUNK_SIZE",
    "FRAME_SET_SCHEMA",
    "METADATA_NAME",
    "RIG_STATE_SCHEMA",
    "ExportError",
    "RawPixels",
    "compressed_format",
    "decode_raw",
    "file_descriptor_set",
    "image_topic",
    "mcap_chunks",
    "rig_states",
    "session_metadata",
    "transforms",
    "write_mcap",
]
