"""camera.frames: MessagePack frame messages (docs/protocol.md §4) decoded with no I/O."""

from __future__ import annotations

import io
from typing import Any

import msgpack
import pytest
from PIL import Image

from camera.frames import PIXEL_FORMATS, Frame, Rejection, decode_message, encoded_kind, expected_size

FORMATS = {
    "cameradevice_rgb_1": "encoded",
    "cameradevice_swir_1": "mono8",
    "cameradevice_lwir_1": "mono16",
    "cameradevice_vnir_playerone": "encoded",
    "colour_cam": "rgb8",
}
AT, MONO = 1_790_000_000.25, 1234.5


def jpeg_bytes(size: tuple[int, int] = (16, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(buf, "JPEG")
    return buf.getvalue()


def png_bytes(size: tuple[int, int] = (16, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 77).save(buf, "PNG")
    return buf.getvalue()


def frame(
    device_id: Any, pixels: Any, width: Any, height: Any, pixel_format: Any = None, **extra: Any
) -> dict[str, Any]:
    image: dict[str, Any] = {"pixels": pixels, "width": width, "height": height}
    if pixel_format is not None:
        image["pixel_format"] = pixel_format
    return {"device_id": device_id, "image_data": image, **extra}


def pack(*packets: Any) -> bytes:
    data: bytes = msgpack.packb(list(packets), use_bin_type=True)
    return data


def decode(data: bytes) -> tuple[list[Frame], list[Rejection]]:
    return decode_message(data, FORMATS, AT, MONO)


def test_expected_size_and_encoded_kind() -> None:
    assert sorted(PIXEL_FORMATS) == ["bgr8", "encoded", "mono16", "mono8", "rgb8"]
    assert expected_size("mono8", 640, 512) == 327_680
    assert expected_size("mono16", 640, 512) == 655_360
    assert expected_size("rgb8", 1920, 1080) == expected_size("bgr8", 1920, 1080) == 6_220_800
    assert expected_size("encoded", 1920, 1080) is None
    with pytest.raises(ValueError, match="yuv422"):
        expected_size("yuv422", 2, 2)
    assert encoded_kind(jpeg_bytes()) == "jpg"
    assert encoded_kind(png_bytes()) == "png"
    assert encoded_kind(b"GIF89a") is None
    assert encoded_kind(b"") is None


def test_good_message_keeps_every_frame_of_every_packet_in_order() -> None:
    jpg, png = jpeg_bytes(), png_bytes()
    mono16 = bytes(range(256)) * 4  # 16x32 mono16 = 1024 bytes
    message = pack(
        {
            "camera_frames": [
                frame(
                    " cameradevice_rgb_1\t", jpg, 16, 8, timestamp_ns=1_790_000_000_000_000_001, frame_index=7
                ),
                frame("cameradevice_lwir_1", mono16, 32, 16),
            ],
            "other_key": "ignored",
        },
        {"camera_frames": []},
        {
            "camera_frames": [
                frame("cameradevice_vnir_playerone", png, 16, 8, frame_index=0),
                # configured mono8, but the frame says mono16: the frame's own format wins
                frame("cameradevice_swir_1\n", mono16, 16, 32, "mono16", timestamp_ns=5),
                frame("colour_cam", b"\x01\x02\x03" * 6, 3, 2),
            ]
        },
    )
    frames, rejections = decode(message)
    assert rejections == []
    assert [(f.camera_id, f.pixel_format, f.width, f.height) for f in frames] == [
        ("cameradevice_rgb_1", "encoded", 16, 8),
        ("cameradevice_lwir_1", "mono16", 32, 16),
        ("cameradevice_vnir_playerone", "encoded", 16, 8),
        ("cameradevice_swir_1", "mono16", 16, 32),
        ("colour_cam", "rgb8", 3, 2),
    ]
    assert frames[0].pixels == jpg and frames[2].pixels == png and frames[1].pixels == mono16
    assert (frames[0].timestamp_ns, frames[0].frame_index) == (1_790_000_000_000_000_001, 7)
    assert (frames[1].timestamp_ns, frames[1].frame_index) == (None, None)
    assert (frames[2].timestamp_ns, frames[2].frame_index) == (None, 0)
    assert all(f.received_at == AT and f.received_mono == MONO for f in frames)
    assert all(type(f.pixels) is bytes for f in frames)


def test_nil_optional_fields_mean_absent() -> None:
    message = pack(
        {
            "camera_frames": [
                frame("cameradevice_swir_1", b"\0" * 4, 2, 2, timestamp_ns=None, frame_index=None)
            ]
        }
    )
    message_with_nil_format = pack(
        {
            "camera_frames": [
                {
                    "device_id": "cameradevice_swir_1",
                    "image_data": {"pixels": b"\0" * 4, "width": 2, "height": 2, "pixel_format": None},
                }
            ]
        }
    )
    for data in (message, message_with_nil_format):
        frames, rejections = decode(data)
        assert rejections == []
        assert (frames[0].pixel_format, frames[0].timestamp_ns, frames[0].frame_index) == (
            "mono8",
            None,
            None,
        )


def test_large_raw_frames_are_accepted() -> None:
    # Four 1920x1080 rgb8 frames: a 25 MB message, above the 20 MiB floor of docs/protocol.md §4.
    pixels = bytes(1920 * 1080 * 3)
    message = pack({"camera_frames": [frame("colour_cam", pixels, 1920, 1080) for _ in range(4)]})
    assert len(message) > 20 * 1024 * 1024
    frames, rejections = decode(message)
    assert rejections == [] and len(frames) == 4
    assert all(len(f.pixels) == len(pixels) for f in frames)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1", "not MessagePack"),  # 0xc1 is never used
        (b"", "not MessagePack"),
        (b"\x92\x01", "not MessagePack"),  # array of 2 with one element: truncated
        (pack() + b"\x00", "not MessagePack"),  # extra bytes after the message
        (msgpack.packb({"camera_frames": []}), "message is a map, expected an array of packets"),
        (msgpack.packb("hello"), "message is a string, expected an array of packets"),
        (msgpack.packb({1: 2}), "not MessagePack"),  # non-string map key
    ],
)
def test_a_message_that_cannot_be_read_is_one_rejection(data: bytes, reason: str) -> None:
    frames, rejections = decode(data)
    assert frames == []
    assert len(rejections) == 1
    assert rejections[0].camera_id is None
    assert reason in rejections[0].reason


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        ([1, 2], "packet 0 is an array, expected a map"),
        ({"frames": []}, "packet 0: camera_frames is missing, expected an array"),
        ({"camera_frames": {"a": 1}}, "packet 0: camera_frames is a map, expected an array"),
    ],
)
def test_a_bad_packet_is_rejected_and_the_others_kept(packet: Any, reason: str) -> None:
    good = {"camera_frames": [frame("cameradevice_swir_1", b"\0" * 4, 2, 2)]}
    frames, rejections = decode(pack(packet, good))
    assert [f.camera_id for f in frames] == ["cameradevice_swir_1"]
    assert rejections == [Rejection(None, reason)]


SWIR = "cameradevice_swir_1"
LWIR = "cameradevice_lwir_1"
RGB = "cameradevice_rgb_1"


def _truncated_jpeg() -> bytes:
    return jpeg_bytes()[:-10]


def _truncated_png() -> bytes:
    return png_bytes()[:-5]


@pytest.mark.parametrize(
    ("raw", "camera_id", "reason"),
    [
        ("not a map", None, "frame is a string, expected a map"),
        ({"image_data": {}}, None, "device_id is missing, expected a non-empty string"),
        (frame(42, b"\0", 1, 1), None, "device_id is int, expected a non-empty string"),
        (frame("  ", b"\0", 1, 1), None, "device_id is a string, expected a non-empty string"),
        (frame(" nobody ", b"\0", 1, 1), "nobody", "unknown camera nobody"),
        ({"device_id": SWIR}, SWIR, "image_data is missing, expected a map"),
        ({"device_id": SWIR, "image_data": [1]}, SWIR, "image_data is an array, expected a map"),
        (frame(SWIR, None, 1, 1), SWIR, "image_data.pixels is missing, expected bin"),
        (frame(SWIR, "\0", 1, 1), SWIR, "image_data.pixels is a string, expected bin"),
        (frame(SWIR, b"\0", None, 1), SWIR, "width/height are missing/int, expected int"),
        (frame(SWIR, b"\0", 1, 1.0), SWIR, "width/height are int/float, expected int"),
        (frame(SWIR, b"\0", True, 1), SWIR, "width/height are bool/int, expected int"),
        (frame(SWIR, b"", 0, 1), SWIR, "frame size 0x1 is not positive"),
        (frame(SWIR, b"", 4, -2), SWIR, "frame size 4x-2 is not positive"),
        (frame(SWIR, b"\0", 1, 1, 16), SWIR, "image_data.pixel_format is int, expected a string"),
        (frame(SWIR, b"\0", 1, 1, "yuv422"), SWIR, "unknown pixel format 'yuv422'"),
        (frame(SWIR, b"\0", 1, 1, timestamp_ns="now"), SWIR, "timestamp_ns is a string, expected int"),
        (frame(SWIR, b"\0", 1, 1, frame_index=1.5), SWIR, "frame_index is float, expected int"),
        (frame(LWIR, b"\0" * 1000, 640, 512), LWIR, "mono16 frame 640x512 needs 655360 bytes, got 1000"),
        (frame(SWIR, b"\0" * 5, 2, 2), SWIR, "mono8 frame 2x2 needs 4 bytes, got 5"),
        (frame(SWIR, b"\0" * 11, 2, 2, "rgb8"), SWIR, "rgb8 frame 2x2 needs 12 bytes, got 11"),
        (frame(SWIR, b"\0" * 12, 2, 2, "bgr8"), None, ""),  # control: this one is fine
        (frame(RGB, b"GIF89a....", 1, 1), RGB, "encoded frame of 10 bytes is neither JPEG nor PNG"),
        (frame(RGB, b"", 1, 1), RGB, "encoded frame of 0 bytes is neither JPEG nor PNG"),
        (frame(RGB, _truncated_jpeg(), 16, 8), RGB, "lacks the end marker FF D9 (truncated)"),
        (frame(RGB, _truncated_png(), 16, 8), RGB, "lacks the IEND chunk (truncated)"),
    ],
)
def test_a_bad_frame_is_rejected_with_its_reason_and_the_others_kept(
    raw: Any, camera_id: str | None, reason: str
) -> None:
    before = frame(SWIR, b"\1" * 4, 2, 2, frame_index=1)
    after = frame(RGB, jpeg_bytes(), 16, 8, frame_index=2)
    frames, rejections = decode(pack({"camera_frames": [before, raw, after]}))
    if not reason:  # the control case
        assert rejections == [] and len(frames) == 3
        return
    assert [f.frame_index for f in frames] == [1, 2]
    assert len(rejections) == 1
    assert rejections[0].camera_id == camera_id
    assert reason in rejections[0].reason, rejections[0].reason


def test_configured_format_unknown_is_a_rejection_not_an_error() -> None:
    frames, rejections = decode_message(
        pack({"camera_frames": [frame("odd", b"\0", 1, 1)]}), {"odd": "yuv"}, AT, MONO
    )
    assert frames == []
    assert rejections == [Rejection("odd", "unknown pixel format 'yuv'")]


def test_an_encoded_override_on_a_raw_camera_checks_magic_bytes() -> None:
    frames, rejections = decode(pack({"camera_frames": [frame(LWIR, png_bytes(), 16, 8, "encoded")]}))
    assert rejections == []
    assert frames[0].pixel_format == "encoded"


def test_ext_types_and_odd_values_never_raise() -> None:
    odd = msgpack.packb(
        [{"camera_frames": [msgpack.ExtType(5, b"x"), {"device_id": msgpack.ExtType(1, b"")}]}]
    )
    frames, rejections = decode(odd)
    assert frames == []
    assert [r.reason for r in rejections] == [
        "frame is ExtType, expected a map",
        "device_id is ExtType, expected a non-empty string",
    ]
