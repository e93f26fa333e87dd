"""Checking a whole batch before anything runs, and compiling it into a plan (pure; no I/O).

A batch is ``{"requests": [command, ...]}``; every problem found is reported at once, each naming
the item index and the field, so an operator can fix a batch in one go.
"""

from __future__ import annotations

from typing import Any

from rigcore.config import Config, PositioningCommand
from rigcore.rig import RigLayout
from rigcore.state import is_number
from service.plan import Plan, compile_plan

MAX_COMMANDS = 100
COMMAND_KEYS = ("target_id", "device_id", "command_id")


def _problem(index: int | None, field: str, message: str) -> dict[str, Any]:
    return {"index": index, "field": field, "message": message}


def build_plan(body: Any, config: Config) -> tuple[Plan | None, list[dict[str, Any]]]:
    """Validate a batch and compile it: ``(plan, [])``, or ``(None, problems)`` when it may not run."""
    problems = validate_batch(body, config)
    if problems:
        return None, problems
    return compile_plan(body["requests"], RigLayout.from_config(config), config.recording.command_id), []


def validate_batch(body: Any, config: Config) -> list[dict[str, Any]]:
    """Return every problem with ``body``; an empty list means the batch may run."""
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
        return [_problem(i, "device_id", f"unknown device {device_id!r}; known: {', '.join(sorted(known))}")]
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
        return [_problem(i, field, f"{value} is out of range [{_fmt(spec.min)}, {_fmt(spec.max)}]")]
    return []


def _check_duration(i: int, args: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    where, duration = "args.duration_second", args.get("duration_second")
    max_s = config.recording.max_duration_s
    if "duration_second" not in args:
        return [_problem(i, where, "missing")]
    if not is_number(duration):
        return [_problem(i, where, f"must be a number, got {json_type(duration)}")]
    if duration <= 0:
        return [_problem(i, where, f"must be greater than 0, got {duration}")]
    if duration > max_s:
        return [_problem(i, where, f"{duration} is above the maximum of {_fmt(max_s)} s")]
    return []


def _check_cameras(i: int, args: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    cams = args.get("camera_ids")
    if "camera_ids" not in args:
        return [_problem(i, "args.camera_ids", "missing")]
    if not isinstance(cams, list):
        return [_problem(i, "args.camera_ids", f"must be a list of camera ids, got {json_type(cams)}")]
    if not cams:
        return [_problem(i, "args.camera_ids", "must not be empty")]
    out, seen = [], set()
    for j, cam in enumerate(cams):
        where = f"args.camera_ids[{j}]"
        if not isinstance(cam, str):
            out.append(_problem(i, where, f"must be a string, got {json_type(cam)}"))
        elif cam in seen:
            out.append(_problem(i, where, f"{cam!r} is listed twice"))
        elif cam not in config.cameras:
            known = ", ".join(sorted(config.cameras))
            out.append(_problem(i, where, f"unknown camera {cam!r}; configured: {known}"))
        else:
            seen.add(cam)
    return out


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fmt(value: float | None) -> str:
    if value is None:
        return "∞"
    return str(int(value)) if float(value).is_integer() else str(value)
