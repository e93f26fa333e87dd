"""Property-based fuzzing of the three places untrusted input enters: the batch validator, the frame
decoder and the HTTP layer. Bad input must always come back as a clear, structured refusal (a list of
problems, a counted rejection, a 4xx) and never as an exception or a 5xx.

The validator and decoder properties are pure (no broker); the HTTP property drives a started service
through Flask's test client and is marked integration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app
from api.contract import contract_problems
from api.schemas_in import Batch, ScanRequest
from camera.frames import Frame, Rejection, decode_message
from camera.router import FrameRouter
from rigcore.config import Config
from rigcore.rig import EMPTY_POSE, RigLayout
from rigcore.state import SettleTracker, StateSample, is_number
from service.batches.plan import Plan, RecordStep
from service.batches.validation import build_plan, validate_batch
from service.capture import CaptureService
from service.scans.spec import parse_scan
from tests.conftest import command, pan_command, record_command, tilt_command

pytestmark = pytest.mark.solo  # a tool that takes the machine: alone (tests/solo.py)

CFG = Config()
CAMERAS = sorted(CFG.cameras)
FAST = settings(max_examples=200, deadline=None)

# -- JSON-like values -------------------------------------------------------------------------------
# Huge ints (beyond a float's range) and the non-finite floats Python's json module reads are the
# values most likely to break arithmetic in a checker; they are drawn on purpose.
HUGE_INTS = st.integers(min_value=10**300, max_value=10**400) | st.integers(
    min_value=-(10**400), max_value=-(10**300)
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "acikgoz_pantilt", "start_recording_command", *CAMERAS])
)
# Values at the edges of what a checker must handle, drawn often in place of a valid field.
EDGE_VALUES: st.SearchStrategy[Any] = HUGE_INTS | st.sampled_from(
    [
        0,
        -1,
        2**63,
        -(2**63) - 1,
        2**64,
        1e308,
        -1e308,
        5e-324,
        -0.0,
        0.5,
        True,
        False,
        None,
        "",
        " ",
        "4500",
        [],
        {},
    ]
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)


# Each a new dict (command, tests/conftest.py): near_valid_batches() mutates them.
def zoom(value: Any) -> dict[str, Any]:
    return command("camera_device", "cameradevice_rgb_1", "set_zoom_value", zoom_value=value)


def record(seconds: Any, cameras: Any) -> dict[str, Any]:
    """Sent to SWIR whatever ``cameras`` holds."""
    return command(
        "camera_device",
        "cameradevice_swir_1",
        "start_recording_command",
        duration_second=seconds,
        camera_ids=list(cameras),
    )


def passthrough() -> dict[str, Any]:
    return command("entity", "acikgoz_lrf", "measure_once")


VALID_COMMANDS = st.one_of(
    st.integers(-18000, 18000).map(pan_command),
    st.integers(-9000, 9000).map(tilt_command),
    st.floats(1.0, 30.0).map(zoom),
    st.builds(
        record,
        st.floats(0.01, CFG.recording.max_duration_s),
        st.lists(st.sampled_from(CAMERAS), min_size=1, max_size=4, unique=True),
    ),
    st.builds(passthrough),  # a fresh dict each time: near_valid_batches() mutates it
)
VALID_BATCHES = st.lists(VALID_COMMANDS, min_size=1, max_size=8).map(lambda cmds: {"requests": cmds})


@st.composite
def near_valid_batches(draw: st.DrawFn, values: st.SearchStrategy[Any] = JSON_VALUES) -> Any:
    """A valid batch with one thing changed: a command key or an argument replaced (by one of
    ``values``), removed or added, a command replaced by any value, or the body itself replaced."""
    body: dict[str, Any] = draw(VALID_BATCHES)
    cmds: list[Any] = body["requests"]
    i = draw(st.integers(0, len(cmds) - 1))
    where = draw(st.sampled_from(["command", "args", "item", "body"]))
    target: dict[str, Any] = cmds[i] if where == "command" else cmds[i]["args"]
    if where == "item":
        cmds[i] = draw(values)
    elif where == "body":
        body[draw(st.sampled_from(["requests", "extra"]))] = draw(values)
    elif draw(st.booleans()) and target:
        del target[draw(st.sampled_from(sorted(target)))]
    else:
        key = draw(st.sampled_from([*sorted(target), "unexpected"]))
        target[key] = draw(EDGE_VALUES | values)
    return body


def check_problems(body: Any, problems: list[dict[str, Any]]) -> None:
    assert problems, "an invalid body must name at least one problem"
    count = len(body["requests"]) if isinstance(body, dict) and isinstance(body.get("requests"), list) else 0
    for problem in problems:
        assert set(problem) == {"index", "field", "message"}, problem
        assert problem["index"] is None or 0 <= problem["index"] < count, problem
        # Not required non-empty: an unknown key "" is reported under its own (empty) name.
        assert isinstance(problem["field"], str), problem
        assert isinstance(problem["message"], str) and problem["message"], problem
    json.dumps(problems, allow_nan=False)  # every problem can be sent as strict JSON


def check_outcome(body: Any) -> tuple[Plan | None, list[dict[str, Any]]]:
    plan, problems = build_plan(body, CFG)
    assert problems == validate_batch(body, CFG)
    if plan is None:
        check_problems(body, problems)
    else:
        assert problems == []
        assert list(plan.commands) == body["requests"]
    return plan, problems


# -- (a) the batch validator --------------------------------------------------------------------------
@FAST
@given(JSON_VALUES)
def test_any_json_value_gives_a_plan_or_named_problems(body: Any) -> None:
    check_outcome(body)


@FAST
@given(near_valid_batches())
def test_a_batch_with_one_field_changed_gives_a_plan_or_named_problems(body: Any) -> None:
    check_outcome(body)


@FAST
@given(VALID_BATCHES)
def test_every_valid_batch_compiles_into_a_plan(body: dict[str, Any]) -> None:
    plan, problems = check_outcome(body)
    assert problems == [] and plan is not None
    records = [c for c in body["requests"] if c["command_id"] == CFG.recording.command_id]
    assert plan.recordings == len(records)
    assert [s.index for s in plan.steps if isinstance(s, RecordStep)] == [
        i for i, c in enumerate(body["requests"]) if c in records
    ]
    assert len(plan.describe()) == len(plan.steps)


def test_numbers_beyond_float_range_are_refused_by_name() -> None:
    # Found by this fuzz pass: math.isfinite() raised OverflowError on such ints (a 500 over HTTP).
    for body in (
        {"requests": [pan_command(10**400)]},
        {"requests": [record_command(-(10**309), "cameradevice_swir_1")]},
    ):
        plan, problems = build_plan(body, CFG)
        assert plan is None and [p["field"] for p in problems] in (
            ["args.pan_position_deg_x100"],
            ["args.duration_second"],
        ), problems
        assert "out of range" in problems[0]["message"]


def test_state_with_a_number_beyond_float_range_is_not_a_number() -> None:
    # The same overflow on the MQTT side: a state message is JSON too, and its values meet is_number.
    assert is_number(10**300) and not is_number(10**400) and not is_number(-(10**400))
    tracker = SettleTracker("pt", ("p",), {"p": 1}, {"p": 0}, 0.0, 0.5, 5)
    assert not tracker.feed(StateSample("pt", {"p": 10**400}, 1.0, 0.0, False))
    sample = StateSample(
        CFG.rangefinder.device_id, {CFG.rangefinder.distance_field: 10**400}, 1.0, 0.0, False
    )
    assert RigLayout.from_config(CFG).pose_after(EMPTY_POSE, sample) == EMPTY_POSE


# -- (b) the frame decoder ---------------------------------------------------------------------------
FORMATS = {cam: c.pixel_format for cam, c in CFG.cameras.items()}
JPEG = b"\xff\xd8\xff\xe0" + bytes(12) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(8) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
BYTES_PER_PIXEL = {"mono8": 1, "mono16": 2, "rgb8": 3, "bgr8": 3}

PIXEL_NAMES = ["encoded", "mono8", "mono16", "rgb8", "bgr8", "yuv422", ""]
MSGPACK_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=24)
    | st.sampled_from([*PIXEL_NAMES, *CAMERAS])
)
MSGPACK_VALUES = st.recursive(
    MSGPACK_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)


@st.composite
def good_frames(draw: st.DrawFn) -> dict[str, Any]:
    camera = draw(st.sampled_from(CAMERAS))
    own_format = draw(st.none() | st.sampled_from(sorted(BYTES_PER_PIXEL)))
    fmt = own_format or FORMATS[camera]
    width, height = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pixels = (
        draw(st.sampled_from([JPEG, PNG]))
        if fmt == "encoded"
        else bytes(width * height * BYTES_PER_PIXEL[fmt])
    )
    image: dict[str, Any] = {"pixels": pixels, "width": width, "height": height}
    if own_format is not None:
        image["pixel_format"] = own_format
    raw: dict[str, Any] = {"device_id": camera, "image_data": image}
    for key in ("timestamp_ns", "frame_index"):
        if draw(st.booleans()):
            raw[key] = draw(st.integers(0, 2**63))
    return raw


FRAME_MUTANTS = MSGPACK_VALUES | st.integers(-(2**63), -1) | st.just(2**64 - 1) | st.binary(max_size=40)


@st.composite
def mutated_frames(draw: st.DrawFn) -> Any:
    """A good frame with one field (of the frame or of its image_data) replaced, removed or added."""
    raw = draw(good_frames())
    where = draw(st.sampled_from(["frame", "image", "whole"]))
    if where == "whole":
        return draw(MSGPACK_VALUES)
    target: dict[str, Any] = raw if where == "frame" else raw["image_data"]
    key = draw(st.sampled_from([*sorted(target), "pixel_format", "unexpected"]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(FRAME_MUTANTS)
    return raw


def decode(data: bytes) -> tuple[list[Frame], list[Rejection]]:
    frames, rejections = decode_message(data, FORMATS, 1_790_000_000.0, 100.0)
    assert all(isinstance(f, Frame) for f in frames)
    assert all(isinstance(r, Rejection) and r.reason for r in rejections)
    assert all(r.camera_id is None or isinstance(r.camera_id, str) for r in rejections)
    # The router counts every rejection somewhere /status shows.
    router = FrameRouter(CAMERAS, preroll_s=0)
    router.dispatch(frames, rejections, 100.0)
    counted = router.unreadable_messages + router.unknown_camera_frames
    counted += sum(s.rejected for s in router.cameras.values())
    assert counted == len(rejections)
    assert sum(s.frames for s in router.cameras.values()) == len(frames)
    return frames, rejections


@FAST
@given(st.binary(max_size=512))
def test_any_bytes_decode_without_raising(data: bytes) -> None:
    frames, rejections = decode(data)
    if not (frames or rejections):  # then it was an array of packets with no frames at all
        message = msgpack.unpackb(data)
        assert isinstance(message, list) and all(p["camera_frames"] == [] for p in message)


@FAST
@given(MSGPACK_VALUES)
def test_any_msgpack_value_decodes_without_raising(value: Any) -> None:
    decode(msgpack.packb(value, use_bin_type=True))


@FAST
@given(st.lists(st.lists(good_frames() | mutated_frames(), max_size=4), min_size=1, max_size=3))
def test_every_frame_is_either_accepted_or_a_counted_rejection(packets: list[list[Any]]) -> None:
    message = msgpack.packb([{"camera_frames": p} for p in packets], use_bin_type=True)
    frames, rejections = decode(message)
    assert len(frames) + len(rejections) == sum(len(p) for p in packets)


@FAST
@given(st.lists(good_frames(), min_size=1, max_size=5))
def test_good_frames_are_all_accepted_in_order(raws: list[dict[str, Any]]) -> None:
    frames, rejections = decode(msgpack.packb([{"camera_frames": raws}], use_bin_type=True))
    assert rejections == []
    assert [f.camera_id for f in frames] == [r["device_id"] for r in raws]


# -- (c) the HTTP layer --------------------------------------------------------------------------------
# Near-valid batches sent over HTTP leave NaN and Infinity out so that they reach the validator: a body
# with either is refused before (Python's json reads them, but they are not JSON). JSON_VALUES has them.
HTTP_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
HTTP_VALUES = st.recursive(
    HTTP_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def fuzz_client(start_service: Callable[..., CaptureService]) -> Any:
    # A big queue: a body that happens to be valid is queued (and cancelled at once), never refused
    # with 503 because earlier examples filled the queue.
    service = start_service(api={"queue_size": 1000})
    return create_app(service).test_client()


@pytest.mark.integration
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=JSON_VALUES | near_valid_batches(HTTP_VALUES))
def test_http_answers_any_json_body_with_4xx_or_accepted(fuzz_client: Any, body: Any) -> None:
    resp = fuzz_client.post("/process-request?wait=false", json=body)
    assert resp.status_code == 202 or 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    answer = strict_json(resp.get_data(as_text=True))
    if resp.status_code == 202:
        cancel = fuzz_client.delete(f"/jobs/{answer['job_id']}")
        assert cancel.status_code in (202, 409), cancel.text
        return
    assert isinstance(answer["error"], str) and answer["error"]
    assert isinstance(answer["details"], list) and answer["history_id"].startswith("rej-")
    if resp.status_code == 400 and answer["details"]:
        check_problems(body, answer["details"])


@pytest.mark.integration
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", None]))
def test_http_answers_any_bytes_with_4xx(fuzz_client: Any, data: bytes, content_type: str | None) -> None:
    # Random bytes never make a valid batch, so every answer is a refusal.
    headers = {"Content-Type": content_type} if content_type else {}
    resp = fuzz_client.post("/process-request", data=data, headers=headers)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    strict_json(resp.get_data(as_text=True))


@pytest.mark.integration
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_body_with_nan_is_refused_and_history_stays_strict_json(fuzz_client: Any, constant: str) -> None:
    # Found by this fuzz pass: such a body was once taken, kept in history.json, and GET /history then
    # answered NaN, which JSON.parse (the dashboard) refuses.
    resp = fuzz_client.post(
        "/process-request",
        data=f'{{"requests": [{{"args": {{"duration_second": {constant}}}}}]}}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and constant.lstrip("-") in resp.get_json()["error"]
    strict_json(fuzz_client.get("/history").get_data(as_text=True))


# -- (d) the request models (api/schemas_in.py) agree with the validators ---------------------------------
# The models document the bodies and check those the validators accepted (api/contract.py): a body the
# validator accepts must pass the model too (else a refusal would be new), and a body the model
# refuses must be refused by the validator (else the document would promise more than is checked).
SCAN_POSES = st.lists(
    st.fixed_dictionaries(
        {"pan_deg_x100": st.integers(-18000, 18000), "tilt_deg_x100": st.integers(-9000, 9000)}
    ),
    min_size=1,
    max_size=3,
)
VALID_SCANS = st.fixed_dictionaries(
    {
        "cameras": st.lists(st.sampled_from(CAMERAS), min_size=1, max_size=2, unique=True),
        "duration_second": st.floats(0.01, CFG.recording.max_duration_s),
        "poses": SCAN_POSES,
    },
    optional={
        "on_pose_failure": st.sampled_from(["abort", "skip"]),
        "retries": st.integers(0, 5),
        "label": st.none() | st.text(max_size=5),
    },
)


@st.composite
def near_valid_scans(draw: st.DrawFn) -> Any:
    """A valid scan with one key replaced, removed or added, or with a pose's key replaced."""
    body: dict[str, Any] = draw(VALID_SCANS)
    target: dict[str, Any] = draw(st.sampled_from([body, body["poses"][0]]))
    key = draw(st.sampled_from([*sorted(target), "grid", "unexpected"]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(EDGE_VALUES | HTTP_VALUES)
    return body


@FAST
@given(JSON_VALUES | VALID_BATCHES | near_valid_batches())
def test_the_batch_model_refuses_nothing_the_validator_accepts(body: Any) -> None:
    accepted = not validate_batch(body, CFG)
    assert accepted <= (contract_problems(Batch, body) == []), body


@FAST
@given(JSON_VALUES | VALID_SCANS | near_valid_scans())
def test_the_scan_model_refuses_nothing_the_validator_accepts(body: Any) -> None:
    spec, _ = parse_scan(body, CFG, {})
    assert (spec is not None) <= (contract_problems(ScanRequest, body) == []), body
