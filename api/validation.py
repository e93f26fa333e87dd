"""Checking a whole batch before anything runs, and compiling it into a plan (pure; no I/O).

A batch is ``{"requests": [command, ...]}``; every problem found is reported at once, each naming
the item index and the field, so an operator can fix a batch in one go.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from rigcore.config import Config, PositioningCommand
from rigcore.rig import RigLayout
from rigcore.state import is_number
from service.plan import Plan, compile_plan

MAX_COMMANDS = 100
COMMAND_KEYS = ("target_id", "device_id", "command_id")
# Bounds on what a request may hold and on what an answer repeats (README "### History"), so that neither
# the work done for a request nor its answer nor its history entry grows with what a client sends.
MAX_JSON_DEPTH = 32  # objects and arrays nested in a body; checked on the raw bytes, before parsing
MAX_ITEMS = 1000  # items in any list, keys in any object of a body
MAX_DETAILS = 20  # problems listed in one error answer; the rest are counted in "details_omitted"
MAX_ECHO = 80  # characters of a client's value repeated in a message (then "…")

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN_CLOSE = bytes.maketrans(b"{}", b"[]")
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")], _DEPTH_STEP[ord("]")] = 1, -1


def _problem(index: int | None, field: str, message: str) -> dict[str, Any]:
    return {"index": index, "field": clip(field), "message": message}


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, "…" marking the cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def echo(value: Any) -> str:
    """A client's value as a message repeats it: quoted if a string, and at most MAX_ECHO characters."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an integer with more digits than Python will print
        text = f"<an integer of about {value.bit_length() * 0.30103:.0f} digits>"
    return clip(text)


def json_depth(raw: bytes, enough: int = MAX_JSON_DEPTH) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw``, found without parsing it or
    recursing, in C-speed passes: escapes and strings are dropped, leaving the brackets, then each
    pass removes the innermost pairs. Past ``enough`` passes (or for brackets that do not pair) the
    brackets are counted one by one. For an invalid text the number is only indicative."""
    outside = raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2]  # escapes, then strings
    brackets = b"".join(outside).translate(_OPEN_CLOSE, _NOT_BRACKETS)
    rest = brackets
    for depth in range(enough + 1):
        if not rest:
            return depth
        rest = rest.replace(b"[]", b"")
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def depth_problem(raw: bytes) -> str | None:
    """The message refusing a body nested deeper than MAX_JSON_DEPTH, or None."""
    depth = json_depth(raw)
    if depth <= MAX_JSON_DEPTH:
        return None
    return f"request body nests arrays and objects {depth} deep; the limit is {MAX_JSON_DEPTH} levels"


def cap_details(details: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first MAX_DETAILS problems, and how many were left out."""
    return details[:MAX_DETAILS], max(len(details) - MAX_DETAILS, 0)


def oversized(body: Any) -> list[dict[str, Any]]:
    """Every list or object in ``body`` with more than MAX_ITEMS items (walked without recursion)."""
    out: list[dict[str, Any]] = []
    stack = [(body, "")] if isinstance(body, dict | list) else []
    while stack:
        value, path = stack.pop()
        if len(value) > MAX_ITEMS:
            kind = "keys" if isinstance(value, dict) else "items"
            out.append(_located(path or "(body)", f"{len(value)} {kind}; at most {MAX_ITEMS} allowed"))
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend((v, _child_path(path, k)) for k, v in items if isinstance(v, dict | list))
    return out


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{clip(key, 40)}" if path else clip(key, 40)


def _located(path: str, message: str) -> dict[str, Any]:
    """A problem at ``path`` in the body, named like the others: item index and field within it."""
    match = re.fullmatch(r"requests\[(\d+)\]\.?(.*)", path)
    if match is None:
        return _problem(None, path, message)
    return _problem(int(match[1]), match[2] or f"requests[{match[1]}]", message)


def build_plan(body: Any, config: Config) -> tuple[Plan | None, list[dict[str, Any]]]:
    """Validate a batch and compile it: ``(plan, [])``, or ``(None, problems)`` when it may not run."""
    problems = validate_batch(body, config)
    if problems:
        return None, problems
    return compile_plan(body["requests"], RigLayout.from_config(config), config.recording.command_id), []


def validate_batch(body: Any, config: Config) -> list[dict[str, Any]]:
    """Return every problem with ``body``; an empty list means the batch may run."""
    too_big = oversized(body)  # first: the checks below then do work bounded by MAX_ITEMS per list
    if too_big:
        return too_big
    return _name_known_once(_validate_body(body, config), config)


def _name_known_once(problems: list[dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    """The first unknown device and the first unknown camera name what is known; the others do not
    repeat the list, so the answer does not grow with it for every bad item."""
    known = {
        "device": "known: " + ", ".join(sorted(config.known_devices())),
        "camera": "configured: " + ", ".join(sorted(config.cameras)),
    }
    for problem in problems:
        kind = problem.pop("_known", None)
        if kind in known:
            problem["message"] += f"; {known.pop(kind)}"
    return problems


def _unknown(i: int, field: str, what: str, value: Any) -> dict[str, Any]:
    return {**_problem(i, field, f"unknown {what} {echo(value)}"), "_known": what}


def _validate_body(body: Any, config: Config) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [_problem(None, "(body)", 'must be a JSON object like {"requests": [...]}')]
    if "requests" not in body:
        return [_problem(None, "requests", 'missing: the body must have a "requests" list')]
    extra = sorted(k for k in body if k != "requests")
    problems = [_problem(None, k, "unknown key") for k in extra]
    requests = body["requests"]
    if not isinstance(requests, list):
        return [*problems, _problem(None, "requests", f"must be a list, got {type(requests).__name__}")]
    if not requests:
        return [*problems, _problem(None, "requests", "must not be empty")]
    if len(requests) > MAX_COMMANDS:
        return [*problems, _problem(None, "requests", f"at most {MAX_COMMANDS} commands per batch")]
    known = config.known_devices()
    for i, item in enumerate(requests):
        problems.extend(_validate_command(i, item, config, known))
    return problems


def _validate_command(i: int, item: Any, config: Config, known: set[str]) -> list[dict[str, Any]]:
    if not isinstance(item, dict):
        return [_problem(i, f"requests[{i}]", f"must be an object, got {type(item).__name__}")]
    out = _check_shape(i, item)
    if out:
        return out
    args = item.get("args", {})
    device_id, command_id = item["device_id"], item["command_id"]
    if device_id not in known:
        return [_unknown(i, "device_id", "device", device_id)]
    if command_id == config.recording.command_id:
        return _check_duration(i, args, config) + _check_cameras(i, args, config)
    spec = config.positioning_commands.get(command_id)
    if spec is None:
        return []  # passed through to the device unchanged (docs/protocol.md §3)
    if spec.field not in RigLayout.from_config(config).reported_fields(device_id):
        return [
            _problem(i, "device_id", f"{command_id} moves {spec.field!r}, which {device_id} does not report")
        ]
    return _check_target(i, args, spec)


def _check_shape(i: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The command's keys: the three names as non-empty strings, ``args`` an object, nothing else."""
    out = []
    for key in COMMAND_KEYS:
        value = item.get(key)
        if key not in item:
            out.append(_problem(i, key, "missing"))
        elif not isinstance(value, str) or not value.strip():
            out.append(_problem(i, key, "must be a non-empty string"))
    args = item.get("args", {})
    if not isinstance(args, dict):
        out.append(_problem(i, "args", f"must be an object, got {type(args).__name__}"))
    extra = sorted(set(item) - {*COMMAND_KEYS, "args"})
    out.extend(_problem(i, k, "unknown key") for k in extra)
    return out


def _check_target(i: int, args: dict[str, Any], spec: PositioningCommand) -> list[dict[str, Any]]:
    field = f"args.{spec.arg}"
    if spec.arg not in args:
        return [_problem(i, field, "missing")]
    value = args[spec.arg]
    if spec.integer and not (isinstance(value, int) and not isinstance(value, bool)):
        return [_problem(i, field, f"must be an integer, got {json_type(value)}")]
    if not is_number(value):
        return [_problem(i, field, f"must be a number, got {json_type(value)}")]
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        return [_problem(i, field, f"{echo(value)} is out of range [{_fmt(spec.min)}, {_fmt(spec.max)}]")]
    return []


def _check_duration(i: int, args: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    where, duration = "args.duration_second", args.get("duration_second")
    max_s = config.recording.max_duration_s
    if "duration_second" not in args:
        return [_problem(i, where, "missing")]
    if not is_number(duration):
        return [_problem(i, where, f"must be a number, got {json_type(duration)}")]
    if duration <= 0:
        return [_problem(i, where, f"must be greater than 0, got {echo(duration)}")]
    if duration > max_s:
        return [_problem(i, where, f"{echo(duration)} is above the maximum of {_fmt(max_s)} s")]
    return []


def _check_cameras(i: int, args: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    cams = args.get("camera_ids")
    if "camera_ids" not in args:
        return [_problem(i, "args.camera_ids", "missing")]
    if not isinstance(cams, list):
        return [_problem(i, "args.camera_ids", f"must be a list of camera ids, got {json_type(cams)}")]
    if not cams:
        return [_problem(i, "args.camera_ids", "must not be empty")]
    if len(cams) > len(config.cameras):
        configured = ", ".join(sorted(config.cameras))
        message = f"lists {len(cams)} cameras; at most {len(config.cameras)}, those configured: {configured}"
        return [_problem(i, "args.camera_ids", message)]
    out, seen = [], set()
    for j, cam in enumerate(cams):
        where = f"args.camera_ids[{j}]"
        if not isinstance(cam, str):
            out.append(_problem(i, where, f"must be a string, got {json_type(cam)}"))
        elif cam in seen:
            out.append(_problem(i, where, f"{echo(cam)} is listed twice"))
        elif cam not in config.cameras:
            out.append(_unknown(i, where, "camera", cam))
        else:
            seen.add(cam)
    return out


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if is_number(value) else "a number out of range (NaN, Infinity or beyond ±1.8e308)"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fmt(value: float | None) -> str:
    if value is None:
        return "∞"
    return str(int(value)) if float(value).is_integer() else str(value)
