"""MCAP export (sessions/mcap_export.py, GET /sessions/<id>.mcap, rigcli export).

The integration tests record a real 3-camera session against the simulated rig, export it and read it
back with the mcap library's own readers, CRCs checked, decoding every message through the schema
stored in the file (as Foxglove does), not through the classes that wrote it. Unit tests below
cover the decoding of each lossless format and the parts built from session.json.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
from flask.testing import FlaskClient
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from mcap.reader import make_reader
from mcap.records import Schema
from mcap.stream_reader import StreamReader
from PIL import Image

from rigcli.cli import main as cli_main
from rigcore.config import Config
from service.capture import CaptureService
from sessions.frame_sets import FRAME_SETS_NAME, frame_sets_of, read_frame_sets
from sessions.manifest import CameraRecord, FrameRecord, SessionManifest, SessionStatus, read_manifest
from sessions.mcap_export import (
    decode_raw,
    image_topic,
    mcap_chunks,
    rig_states,
    session_metadata,
    transforms,
)
from sessions.state_log import read_state_log
from tests import session_v3
from tests.conftest import batch, scaled, serve

CAMERAS = ("cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1")


def message_class(schema: Schema) -> Any:
    """The protobuf class described by the schema record alone (a FileDescriptorSet)."""
    pool = descriptor_pool.DescriptorPool()
    for file in FileDescriptorSet.FromString(schema.data).file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))


def file_pixels(path: Path) -> tuple[str, bytes]:
    """A frame file's pixels read by another decoder than the export's Pillow: tifffile for TIFF (the
    writer's zstd "fast" format included), OpenCV for PNG."""
    if path.suffix == ".tif":
        arr = tifffile.imread(path)
    else:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert arr is not None
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if arr.ndim == 3:
        return "rgb8", arr.tobytes()
    if arr.dtype == np.uint16:
        return "mono16", arr.astype("<u2").tobytes()
    return "mono8", arr.tobytes()


@pytest.fixture
def recorded(client: FlaskClient, service: CaptureService) -> Iterator[tuple[str, Path, SessionManifest]]:
    resp = client.post("/process-request", json=batch(4500, -1000, seconds=2.0, cameras=CAMERAS))
    body = resp.get_json()
    assert resp.status_code == 200 and body["status"] == "succeeded", body
    folder = Path(body["session"]["path"])
    assert service.aftercare.wait_idle(scaled(30)), "aftercare did not finish"
    yield body["session"]["session_id"], folder, read_manifest(folder)


Messages = dict[str, list[tuple[int, int, bytes]]]  # topic -> (log time, publish time, data)


def read_back(data: bytes) -> tuple[Any, dict[str, Schema], Messages]:
    """The file read with CRCs checked: its reader, the schema of each topic, the messages by topic
    (asserting they are written in log-time order)."""
    # The data section's CRC and every chunk's CRC, read from start to end.
    assert sum(1 for _ in StreamReader(io.BytesIO(data), validate_crcs=True).records) > 0
    reader = make_reader(io.BytesIO(data), validate_crcs=True)
    summary = reader.get_summary()
    assert summary is not None and summary.chunk_indexes
    assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
    topics = {ch.topic: ch for ch in summary.channels.values()}
    assert topics["/rig/state"].message_encoding == "json"
    by_topic: Messages = {t: [] for t in topics}
    last_log = 0
    for _, channel, message in reader.iter_messages(log_time_order=False):
        assert message.log_time >= last_log, "messages are written in log-time order"
        last_log = message.log_time
        by_topic[channel.topic].append((message.log_time, message.publish_time, message.data))
    return reader, {t: summary.schemas[ch.schema_id] for t, ch in topics.items()}, by_topic


def check_images(
    folder: Path, manifest: SessionManifest, schema_of: dict[str, Schema], by_topic: Messages
) -> None:
    """Per camera exactly the session's frames, in order, times as recorded, pixels bit-exact."""
    for cam in CAMERAS:
        record = manifest.cameras[cam]
        messages = by_topic[f"/{cam}/image"]
        assert record.frames and len(messages) == len(record.frames) == record.frame_count
        cls = message_class(schema_of[f"/{cam}/image"])
        # Logged in capture-time order (the session lists its frames in arrival order).
        in_log_order = sorted(record.frames, key=lambda f: expected_times(f)[0])
        for frame, (log_time, publish_time, raw) in zip(in_log_order, messages, strict=True):
            assert frame.received_at is not None and frame.timestamp_ns is not None
            log_ns, publish_ns, stamp_ns = expected_times(frame)
            assert (log_time, publish_time) == (log_ns, publish_ns)
            msg = cls.FromString(raw)
            assert msg.frame_id == cam
            assert msg.timestamp.ToNanoseconds() == stamp_ns
            if cam == "cameradevice_rgb_1":
                assert msg.format == "jpeg" and msg.data == (folder / frame.file).read_bytes()
                continue
            encoding, pixels = file_pixels(folder / frame.file)
            width = Image.open(folder / frame.file).size[0]
            assert encoding == {"cameradevice_lwir_1": "mono16", "cameradevice_swir_1": "mono8"}[cam]
            assert (msg.encoding, msg.data) == (encoding, pixels)
            assert msg.step == width * (2 if encoding == "mono16" else 1)
            assert msg.width == width and msg.height * msg.step == len(msg.data)


def expected_times(frame: FrameRecord) -> tuple[int, int | None, int | None]:
    """An image's (log, publish, header stamp) times: capture, arrival, and the camera stamp when the
    frame was timed by it (else capture); a session without capture times: arrival and the stamp."""
    assert frame.received_at is not None
    arrival = round(frame.received_at * 1e9)
    if frame.captured_at is None:
        return arrival, frame.timestamp_ns, frame.timestamp_ns
    capture = round(frame.captured_at * 1e9)
    return capture, arrival, frame.timestamp_ns if frame.time_source == "stamp" else capture


def check_pose(schema_of: dict[str, Schema], by_topic: Messages) -> None:
    """Telemetry samples seen in the window, and the transforms for the 3D panel."""
    states = [json.loads(raw) for _, _, raw in by_topic["/rig/state"]]
    assert len(states) >= 2 and {"telemetry"} <= {s["source"] for s in states}
    assert states[-1]["pan_deg_x100"] == pytest.approx(4500, abs=10)
    assert states[-1]["pan_deg"] == pytest.approx(45, abs=0.1)
    assert any(s["distance_m"] for s in states)
    tf = message_class(schema_of["/tf"]).FromString(by_topic["/tf"][-1][2])
    chain = {(t.parent_frame_id, t.child_frame_id): t for t in tf.transforms}
    assert {("base", "pan"), ("pan", "tilt")} | {("tilt", c) for c in CAMERAS} == set(chain)
    pan_q = chain[("base", "pan")].rotation
    assert math.degrees(2 * math.atan2(pan_q.z, pan_q.w)) == pytest.approx(45, abs=0.2)


@pytest.mark.integration
def test_mcap_of_a_three_camera_session_reads_back_bit_exact(
    client: FlaskClient, service: CaptureService, recorded: tuple[str, Path, SessionManifest], tmp_path: Path
) -> None:
    session_id, folder, manifest = recorded
    resp = client.get(f"/sessions/{session_id}.mcap")
    assert resp.status_code == 200, resp.get_data()[:300]
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{session_id}.mcap"'
    reader, schema_of, by_topic = read_back(resp.get_data())

    assert set(schema_of) == {f"/{c}/image" for c in CAMERAS} | {"/rig/state", "/tf", "/frame_sets"}
    assert schema_of["/cameradevice_swir_1/image"].name == "foxglove.RawImage"
    assert schema_of["/cameradevice_lwir_1/image"].name == "foxglove.RawImage"
    assert schema_of["/cameradevice_rgb_1/image"].name == "foxglove.CompressedImage"
    assert schema_of["/tf"].name == "foxglove.FrameTransforms"
    assert schema_of["/rig/state"].encoding == "jsonschema"
    check_images(folder, manifest, schema_of, by_topic)
    check_pose(schema_of, by_topic)

    # Frame sets: written by aftercare, in the file as a topic.
    sets = read_frame_sets(folder)
    assert sets is not None and (folder / FRAME_SETS_NAME).is_file()
    in_file = [json.loads(raw)["frames"] for _, _, raw in by_topic["/frame_sets"]]
    assert in_file == [s.frames for s in sets.sets]

    (meta,) = list(reader.iter_metadata())
    assert meta.name == "session"
    assert meta.metadata["session_id"] == session_id and meta.metadata["status"] == str(manifest.status)
    assert meta.metadata["job_id"] == manifest.job_id
    assert float(meta.metadata["settled_at"]) == pytest.approx(manifest.settled_at)
    assert json.loads(meta.metadata["cameras"]) == {c: manifest.cameras[c].frame_count for c in CAMERAS}
    (attachment,) = list(reader.iter_attachments())
    assert attachment.name == "session.json" and attachment.media_type == "application/json"
    assert attachment.data == (folder / "session.json").read_bytes()
    # The same session recorded once serves the CLI check too (a recording costs seconds).
    check_cli_export(client, service, session_id, tmp_path)


@pytest.mark.integration
def test_frame_sets_of_a_simulated_session_pair_cameras_of_one_rate(
    client: FlaskClient, recorded: tuple[str, Path, SessionManifest]
) -> None:
    session_id, folder, manifest = recorded
    body = client.get(f"/sessions/{session_id}/frame_sets").get_json()
    assert body == json.loads((folder / FRAME_SETS_NAME).read_text())
    # Paired by capture time (the service keeps it for every frame), else by the cameras' stamps.
    timed = all(f.captured_at is not None for c in manifest.cameras.values() for f in c.frames)
    assert body["clock"] == ("capture" if timed else "camera") and body["cameras"] == list(CAMERAS)
    # The simulated cameras run at one rate from one clock: nearly every frame is in a set.
    for cam in CAMERAS:
        paired = sum(cam in s["frames"] for s in body["sets"])
        assert paired >= 0.95 * len(manifest.cameras[cam].frames), (cam, paired, body["unmatched"])
    assert all(s["spread_ms"] <= body["tolerance_ms"] for s in body["sets"])
    # Another tolerance on request; a bad one is refused.
    tight = client.get(f"/sessions/{session_id}/frame_sets?tolerance_ms=0.5").get_json()
    assert tight["tolerance_ms"] == 0.5
    bad = client.get(f"/sessions/{session_id}/frame_sets?tolerance_ms=-3")
    assert bad.status_code == 400 and "tolerance_ms" in bad.get_json()["error"]
    # A session saved before frame_sets.json existed gets them computed on demand.
    (folder / FRAME_SETS_NAME).unlink()
    assert client.get(f"/sessions/{session_id}/frame_sets").get_json() == body
    assert not (folder / FRAME_SETS_NAME).exists()


def check_cli_export(client: FlaskClient, service: CaptureService, session_id: str, tmp_path: Path) -> None:
    """``rigcli export`` writes the bytes GET /sessions/<id>.mcap answers; an unknown session exits 2."""
    expected = client.get(f"/sessions/{session_id}.mcap").get_data()
    out = tmp_path / "out" / "take.mcap"
    out.parent.mkdir()
    stdout, stderr = io.StringIO(), io.StringIO()
    with serve(service) as url:
        code = cli_main(
            ["export", session_id, "--format", "mcap", "-o", str(out), "--url", url], stdout, stderr
        )
        assert code == 0, stderr.getvalue()
        assert out.read_bytes() == expected
        assert f"wrote {out}" in stdout.getvalue()
        # An unknown session: exit 2, the service's message, nothing written.
        missing = tmp_path / "out" / "none.mcap"
        code = cli_main(["export", "20990101-000000-000", "-o", str(missing), "--url", url], stdout, stderr)
        assert code == 2 and "no session" in stderr.getvalue()
        assert sorted(p.name for p in out.parent.iterdir()) == ["take.mcap"]
    reader = make_reader(io.BytesIO(out.read_bytes()), validate_crcs=True)
    assert sum(1 for _ in reader.iter_messages()) > 0


@pytest.mark.integration
def test_mcap_errors_are_json(
    client: FlaskClient, service: CaptureService, recorded: tuple[str, Path, SessionManifest], tmp_path: Path
) -> None:
    session_id, folder, manifest = recorded
    check_export_failing_part_way(service, recorded, tmp_path)
    for path in ("/sessions/nope.mcap", "/sessions/..%2F.mcap", "/sessions/nope/frame_sets"):
        resp = client.get(path)
        assert resp.status_code == 404 and "error" in resp.get_json()
    # A frame listed but gone: refused before the first byte, naming the file.
    gone = manifest.cameras["cameradevice_swir_1"].frames[0].file
    (folder / gone).unlink()
    resp = client.get(f"/sessions/{session_id}.mcap")
    assert resp.status_code == 409 and gone in resp.get_json()["error"]


# -- units (no broker) ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "fmt", "dtype", "encoding"),
    [
        ("L", "PNG", np.uint8, "mono8"),
        ("I;16", "PNG", np.uint16, "mono16"),
        ("I;16", "TIFF", np.uint16, "mono16"),
        ("RGB", "PNG", np.uint8, "rgb8"),
        ("RGB", "TIFF", np.uint8, "rgb8"),
    ],
)
def test_decode_raw_is_bit_exact_for_every_lossless_format(
    tmp_path: Path, mode: str, fmt: str, dtype: Any, encoding: str
) -> None:
    rng = np.random.default_rng(3)
    shape = (17, 23, 3) if mode == "RGB" else (17, 23)
    arr = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    path = tmp_path / f"f.{fmt.lower()}"
    if mode == "I;16":
        image = Image.frombuffer("I;16", (23, 17), arr.astype("<u2").tobytes(), "raw", "I;16", 0, 1)
    else:
        image = Image.fromarray(arr)
    image.save(path, fmt)
    raw = decode_raw(path)
    assert (raw.encoding, raw.width, raw.height) == (encoding, 23, 17)
    expected = arr.astype("<u2").tobytes() if encoding == "mono16" else arr.tobytes()
    assert raw.data == expected
    assert raw.step * raw.height == len(raw.data)


def test_decode_raw_turns_big_endian_16_bit_into_little_endian(tmp_path: Path) -> None:
    values = np.array([[1, 256, 65535, 4660]], dtype=">u2")
    path = tmp_path / "be.tif"
    Image.frombuffer("I;16B", (4, 1), values.tobytes(), "raw", "I;16B", 0, 1).save(path, "TIFF")
    raw = decode_raw(path)
    assert raw.encoding == "mono16"
    assert raw.data == np.array([[1, 256, 65535, 4660]], dtype="<u2").tobytes()


def _manifest(**extra: Any) -> SessionManifest:
    pose = {"pan_deg_x100": 100, "tilt_deg_x100": -50, "zoom": 3, "distance_m": 12.5}
    frames = [
        FrameRecord(file="cam/000001.png", received_at=10.0, timestamp_ns=None, frame_index=1, pose=pose),
        FrameRecord(
            file="cam/000002.png",
            received_at=10.1,
            timestamp_ns=None,
            frame_index=2,
            pose={**pose, "zoom": 4},
        ),
    ]
    return SessionManifest(
        session_id="s",
        status=SessionStatus.COMPLETE,
        record_started_at=9.9,
        pose_at_start={"pan_deg_x100": 100, "tilt_deg_x100": -50, "distance_m": 0, "zooms": {"cam": 3}},
        cameras={"cam": CameraRecord(frame_count=2, frames=frames)},
        **extra,
    )


def test_rig_state_without_telemetry_comes_from_the_frames_poses() -> None:
    states = rig_states(_manifest())
    assert [s["source"] for s in states] == ["pose_at_start", "frame_pose", "frame_pose"]
    assert states[0]["distance_m"] is None  # 0 means no valid reading
    assert states[1]["distance_m"] == 12.5 and states[1]["pan_deg"] == 1.0
    assert [s["zoom"]["cam"] for s in states] == [3, 3, 4]


def test_rig_state_of_an_older_session_with_telemetry_has_one_message_per_sample(tmp_path: Path) -> None:
    telemetry = [
        {"received_at": 10.05, "device_id": "acikgoz_pantilt", "pan_deg_x100": 120, "tilt_deg_x100": -40},
        {"received_at": 10.06, "device_id": "acikgoz_lrf", "distance_m": 7.0},
    ]
    m = _manifest(telemetry=telemetry)
    states = rig_states(m, read_state_log(tmp_path, m.model_extra))  # no state.jsonl: the telemetry
    sources = [s["source"] for s in states]
    assert sources.count("telemetry") == 2
    assert sources[0] == "pose_at_start" and "frame_pose" in sources  # zooms still from the frames
    last = states[-1]
    assert (last["pan_deg_x100"], last["tilt_deg_x100"], last["distance_m"]) == (120, -40, 7.0)
    assert last["zoom"] == {"cam": 4}


# -- capture times (format version 3) ---------------------------------------------------------------
def export(folder: Path) -> tuple[dict[str, Schema], Messages]:
    manifest = read_manifest(folder)
    data = b"".join(mcap_chunks(folder, manifest, frame_sets_of(manifest)))
    _, schema_of, by_topic = read_back(data)
    return schema_of, by_topic


def image_times(schema_of: dict[str, Schema], by_topic: Messages, cam: str) -> list[tuple[int, int, int]]:
    """(log, publish, header stamp) of each image message of ``cam``, in the file's order."""
    cls = message_class(schema_of[image_topic(cam)])
    return [
        (log, pub, cls.FromString(raw).timestamp.ToNanoseconds())
        for log, pub, raw in by_topic[image_topic(cam)]
    ]


def test_images_are_logged_at_capture_time_with_arrival_as_publish_time(tmp_path: Path) -> None:
    manifest = session_v3.write_session(tmp_path / "s")
    schema_of, by_topic = export(tmp_path / "s")
    for cam in (session_v3.SWIR, session_v3.LWIR):
        got = image_times(schema_of, by_topic, cam)
        assert got == [expected_times(f) for f in manifest.cameras[cam].frames]
        assert got[0][0] == round(session_v3.captured(0) * 1e9)
        assert got[0][1] - got[0][0] == pytest.approx(session_v3.DELAY[cam] * 1e9, abs=1000)
    # SWIR was timed by its own (plausible) clock: its stamp, 3 ms ahead; LWIR sends none: capture.
    swir = image_times(schema_of, by_topic, session_v3.SWIR)
    assert all(stamp - log == pytest.approx(session_v3.STAMP_OFFSET_NS, abs=1000) for log, _, stamp in swir)
    assert all(stamp == log for log, _, stamp in image_times(schema_of, by_topic, session_v3.LWIR))
    # Frame sets pair by capture time (LWIR arrives 0.9 s after SWIR) and play after their images.
    sets = [(log, json.loads(raw)) for log, _, raw in by_topic["/frame_sets"]]
    assert len(sets) == session_v3.FRAMES
    for k, (log, frame_set) in enumerate(sets):
        assert frame_set["frames"] == {
            session_v3.SWIR: f"{session_v3.SWIR}/{k + 1:06d}.png",
            session_v3.LWIR: f"{session_v3.LWIR}/{k + 1:06d}.png",
        }
        assert log == round(session_v3.captured(k) * 1e9)


def test_rig_state_comes_from_the_kept_samples_of_every_device(tmp_path: Path) -> None:
    session_v3.write_session(tmp_path / "s")
    schema_of, by_topic = export(tmp_path / "s")
    kept = session_v3.samples()
    states = [(log, json.loads(raw)) for log, _, raw in by_topic["/rig/state"]]
    assert [log for log, _ in states] == [round(s.received_at * 1e9) for s in kept]
    assert {s["source"] for _, s in states} == {"telemetry"}  # nothing derived from the frames' poses
    assert {s["device_id"] for _, s in states} == {session_v3.PANTILT, session_v3.LRF, session_v3.SWIR}
    # The move before the settle is there: pan from 0 up to 45 degrees, moving, then still.
    pans = [s["pan_deg"] for _, s in states if s["device_id"] == session_v3.PANTILT]
    assert pans[0] == 0 and pans[-1] == 45.0 and 0 < pans[5] < 45
    assert states[1][1]["moving"] is True and states[-1][1]["moving"] is False
    last = states[-1][1]
    assert last["zoom"] == {session_v3.SWIR: 4} and last["distance_m"] == 70.5
    # A range-finder sample without a valid distance: null, as sent.
    lrf = [s["distance_m"] for _, s in states if s["device_id"] == session_v3.LRF]
    assert lrf[:4] == [70.0, 70.5, None, 71.0]
    # /tf follows the pan: one transform per change of pan or tilt, the first at 0 degrees.
    tfs = by_topic["/tf"]
    first = message_class(schema_of["/tf"]).FromString(tfs[0][2]).transforms[0].rotation
    # The retained sample says no tilt: the first transform waits for the first full pose.
    assert first.z == pytest.approx(0.0) and tfs[0][0] == round(kept[1].received_at * 1e9)
    assert len(tfs) == 21  # pan 0, then 20 steps up to 4500


def test_an_older_session_keeps_todays_times(tmp_path: Path) -> None:
    manifest = session_v3.old_session(tmp_path / "old")
    schema_of, by_topic = export(tmp_path / "old")
    swir = manifest.cameras[session_v3.SWIR].frames
    got = image_times(schema_of, by_topic, session_v3.SWIR)
    assert got == [expected_times(f) for f in swir]
    assert swir[0].received_at is not None and got[0][0] == round(swir[0].received_at * 1e9)
    assert got[0][1] == got[0][2] == swir[0].timestamp_ns
    # LWIR has no stamps: paired by arrival, which matches SWIR's last frame with LWIR's first (they
    # arrive together, taken 0.9 s apart); logged at that arrival.
    ((log, _, raw),) = by_topic["/frame_sets"]
    assert json.loads(raw)["frames"] == {
        session_v3.SWIR: f"{session_v3.SWIR}/000010.png",
        session_v3.LWIR: f"{session_v3.LWIR}/000001.png",
    }
    assert swir[-1].received_at is not None
    assert log == pytest.approx(swir[-1].received_at * 1e9, abs=1000)
    sources = {json.loads(raw)["source"] for _, _, raw in by_topic["/rig/state"]}
    assert sources == {"pose_at_start", "frame_pose"}  # no samples: the frames' poses


def test_session_metadata_names_the_state_log_and_the_capture_window(tmp_path: Path) -> None:
    meta = session_metadata(session_v3.write_session(tmp_path / "s"))
    assert json.loads(meta["state_log"])["samples"] == len(session_v3.samples())
    assert json.loads(meta["capture"])["unconfirmed"] == [session_v3.LWIR]
    assert json.loads(meta["time_sources"]) == {
        session_v3.SWIR: {"stamp": 10},
        session_v3.LWIR: {"arrival": 10},
    }
    assert "state_log" not in session_metadata(_manifest())


def test_transforms_turn_pan_about_z_and_raise_on_positive_tilt() -> None:
    tf = transforms(9000, 3000, ["cam"], 5)
    pan, tilt, cam = tf.transforms
    assert (pan.parent_frame_id, pan.child_frame_id) == ("base", "pan")
    assert math.degrees(2 * math.atan2(pan.rotation.z, pan.rotation.w)) == pytest.approx(90)
    # About +y by -30 degrees: the forward axis (x) rises.
    assert math.degrees(2 * math.atan2(tilt.rotation.y, tilt.rotation.w)) == pytest.approx(-30)
    assert cam.child_frame_id == "cam" and cam.parent_frame_id == "tilt"


def test_session_metadata_is_strings_and_names_the_scan() -> None:
    meta = session_metadata(_manifest(scan_id="scan-1", pose_index=3, job_id="job-9", settled_at=9.5))
    assert all(isinstance(v, str) for v in meta.values())
    assert (meta["scan_id"], meta["pose_index"], meta["job_id"]) == ("scan-1", "3", "job-9")
    assert meta["settled_at"] == "9.5" and meta["settled_at_utc"].startswith("1970-01-01T00:00:09.5")
    assert "scan_id" not in session_metadata(_manifest())
    kept = session_metadata(_manifest(telemetry=[{"received_at": 1.0}], telemetry_dropped=4))
    assert (kept["telemetry_samples"], kept["telemetry_dropped"]) == ("1", "4")


def test_the_foxglove_layout_shows_every_default_camera_and_the_pose() -> None:
    layout = json.loads((Path(__file__).parent.parent / "docs" / "foxglove-layout.json").read_text())
    panels = layout["configById"]

    def leaves(node: Any) -> list[str]:
        return [node] if isinstance(node, str) else leaves(node["first"]) + leaves(node["second"])

    assert sorted(leaves(layout["layout"])) == sorted(panels)
    images = {
        p["imageMode"]["imageTopic"]: p["imageMode"] for k, p in panels.items() if k.startswith("Image!")
    }
    assert set(images) == {image_topic(cam) for cam in Config().cameras}
    lwir = images[image_topic("cameradevice_lwir_1")]
    assert lwir["colorMode"] == "colormap" and lwir["minValue"] < lwir["maxValue"]
    plotted = {p["value"] for k, v in panels.items() if k.startswith("Plot!") for p in v["paths"]}
    assert {"/rig/state.pan_deg", "/rig/state.tilt_deg"} <= plotted
    assert panels["3D!rig"]["topics"]["/tf"]["visible"] is True


def check_export_failing_part_way(
    service: CaptureService, recorded: tuple[str, Path, SessionManifest], tmp_path: Path
) -> None:
    """A frame damaged after the session was saved is found only when decoded: the CLI fails, and
    leaves no file and no .part behind."""
    session_id, folder, manifest = recorded
    # The last LWIR frame is damaged after the session was saved: found only when it is decoded.
    damaged = folder / manifest.cameras["cameradevice_lwir_1"].frames[-1].file
    damaged.write_bytes(damaged.read_bytes()[:100])
    out = tmp_path / "take.mcap"
    stdout, stderr = io.StringIO(), io.StringIO()
    with serve(service) as url:
        code = cli_main(["export", session_id, "-o", str(out), "--url", url], stdout, stderr)
    assert code == 3 and "failed" in stderr.getvalue(), stderr.getvalue()
    assert not out.exists() and not list(tmp_path.glob("*.part"))
