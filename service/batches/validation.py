"""Checking a whole batch before anything runs, and compiling it into a plan (pure; no I/O).

A batch is ``{"requests": [command, ...]}``; every problem found is reported at once, each naming
the item index and the field, so an operator can fix a batch in one go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from rigcore.checks import MAX_ECHO as MAX_ECHO
from rigcore.checks import clip as clip
from rigcore.checks import detail, fmt_bound, near_misses, target_problem
from rigcore.checks import echo as echo
from rigcore.checks import json_type as json_type
from rigcore.config import Config, PositioningCommand
from rigcore.rig import RigLayout
from rigcore.state import is_number
from service.batches.plan import Plan, compile_plan
from service.presets.store import GOTO_PRESET, PRESET_ARG, Preset, PresetValues, expand_presets

MAX_COMMANDS = 100
COMMAND_KEYS = ("target_id", "device_id", "command_id")
# Bounds on what a request may hold and on what an answer repeats (docs/api.md, "Bounds on a
# request"), so that neither the work done for a request nor its answer nor its history entry grows
# with what a client sends.
MAX_JSON_DEPTH = 32  # objects and arrays nested in a body; checked on the raw bytes, before parsing
MAX_ITEMS = 1000  # items in any list, keys in any object of a body
# MAX_ECHO, clip, echo, json_type and the limit check live in rigcore/checks.py (service/ uses them too).

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN_CLOSE = bytes.maketrans(b"{}", b"[]")
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")], _DEPTH_STEP[ord("]")] = 1, -1


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
        return detail(None, path, message)
    return detail(int(match[1]), match[2] or f"requests[{match[1]}]", message)


def build_plan(
    body: Any, config: Config, presets: Mapping[str, Preset] | None = None
) -> tuple[Plan | None, list[dict[str, Any]]]:
    """Validate a batch and compile it: ``(plan, [])``, or ``(None, problems)`` when it may not run.

    Each goto_preset command is expanded here into the positioning commands of its preset
    (service.presets.store), so the plan — and what the rig receives — holds those, while the job keeps the
    batch as sent. The preset's values are taken now: a preset changed later does not change the job."""
    problems = validate_batch(body, config, presets)
    if problems:
        return None, problems
    layout = RigLayout.from_config(config)
    commands = expand_presets(body["requests"], presets or {}, layout)
    return compile_plan(commands, layout, config.recording.command_id), []


def validate_batch(
    body: Any, config: Config, presets: Mapping[str, Preset] | None = None
) -> list[dict[str, Any]]:
    """Return every problem with ``body``; an empty list means the batch may run."""
    too_big = oversized(body)  # first: the checks below then do work bounded by MAX_ITEMS per list
    if too_big:
        return too_big
    problems = _validate_body(body, config) + _goto_preset_problems(body, config, presets or {})
    problems.sort(key=lambda p: -1 if p["index"] is None else p["index"])  # stable: item by item
    return _name_known_once(problems, config)


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
    return {**detail(i, field, f"unknown {what} {echo(value)}"), "_known": what}


def _validate_body(body: Any, config: Config) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [detail(None, "(body)", 'must be a JSON object like {"requests": [...]}')]
    if "requests" not in body:
        return [detail(None, "requests", 'missing: the body must have a "requests" list')]
    extra = sorted(k for k in body if k != "requests")
    problems = [detail(None, k, "unknown key") for k in extra]
    requests = body["requests"]
    if not isinstance(requests, list):
        return [*problems, detail(None, "requests", f"must be a list, got {type(requests).__name__}")]
    if not requests:
        return [*problems, detail(None, "requests", "must not be empty")]
    if len(requests) > MAX_COMMANDS:
        return [*problems, detail(None, "requests", f"at most {MAX_COMMANDS} commands per batch")]
    known, layout = config.known_devices(), RigLayout.from_config(config)
    for i, item in enumerate(requests):
        problems.extend(_validate_command(i, item, config, known, layout))
    return problems


def _validate_command(
    i: int, item: Any, config: Config, known: set[str], layout: RigLayout
) -> list[dict[str, Any]]:
    if not isinstance(item, dict):
        return [detail(i, f"requests[{i}]", f"must be an object, got {type(item).__name__}")]
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
        return _near_miss(i, device_id, command_id, config, layout)  # else passed through (§3)
    if spec.field not in layout.reported_fields(device_id):
        return [
            detail(i, "device_id", f"{command_id} moves {spec.field!r}, which {device_id} does not report")
        ]
    return _check_target(i, args, spec)


def commands_for(device_id: str, config: Config, layout: RigLayout) -> list[str]:
    """The command ids configured for ``device_id``: the positioning commands that drive a field it
    reports, the recording (sent to any device: the service records, docs/protocol.md §3), and
    goto_preset for the pan-tilt."""
    fields = layout.reported_fields(device_id)
    out = [cmd for cmd, spec in config.positioning_commands.items() if spec.field in fields]
    out.append(config.recording.command_id)
    if device_id == layout.pantilt_id:
        out.append(GOTO_PRESET)
    return out


def _near_miss(
    i: int, device_id: str, command_id: str, config: Config, layout: RigLayout
) -> list[dict[str, Any]]:
    """A command id a typo away (edit distance 2 at most) from one configured for that device is
    refused naming it; any other unknown id is passed through to the device (docs/protocol.md §3)."""
    if command_id in (config.recording.command_id, GOTO_PRESET):
        return []
    close = near_misses(command_id, commands_for(device_id, config, layout))
    if not close:
        return []
    meant = " or ".join(repr(c) for c in close[:3])
    message = (
        f"unknown command {echo(command_id)} for {device_id}; did you mean {meant}? "
        "(an id this close to a configured command is taken for a typo and not passed through)"
    )
    return [detail(i, "command_id", message)]


def _check_shape(i: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The command's keys: the three names as non-empty strings, ``args`` an object, nothing else."""
    out = []
    for key in COMMAND_KEYS:
        value = item.get(key)
        if key not in item:
            out.append(detail(i, key, "missing"))
        elif not isinstance(value, str) or not value.strip():
            out.append(detail(i, key, "must be a non-empty string"))
    args = item.get("args", {})
    if not isinstance(args, dict):
        out.append(detail(i, "args", f"must be an object, got {type(args).__name__}"))
    extra = sorted(set(item) - {*COMMAND_KEYS, "args"})
    out.extend(detail(i, k, "unknown key") for k in extra)
    return out


def _check_target(i: int, args: dict[str, Any], spec: PositioningCommand) -> list[dict[str, Any]]:
    field = f"args.{spec.arg}"
    if spec.arg not in args:
        return [detail(i, field, "missing")]
    message = target_problem(args[spec.arg], spec)
    return [] if message is None else [detail(i, field, message)]


def _check_duration(i: int, args: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    where, duration = "args.duration_second", args.get("duration_second")
    max_s = config.recording.max_duration_s
    if "duration_second" not in args:
        return [detail(i, where, "missing")]
    if not is_number(duration):
        return [detail(i, where, f"must be a number, got {json_type(duration)}")]
    if duration <= 0:
        return [detail(i, where, f"must be greater than 0, got {echo(duration)}")]
    if duration > max_s:
        return [detail(i, where, f"{echo(duration)} is above the maximum of {fmt_bound(max_s)} s")]
    return []


def _check_cameras(i: int, args: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    cams = args.get("camera_ids")
    if "camera_ids" not in args:
        return [detail(i, "args.camera_ids", "missing")]
    if not isinstance(cams, list):
        return [detail(i, "args.camera_ids", f"must be a list of camera ids, got {json_type(cams)}")]
    if not cams:
        return [detail(i, "args.camera_ids", "must not be empty")]
    if len(cams) > len(config.cameras):
        configured = ", ".join(sorted(config.cameras))
        message = f"lists {len(cams)} cameras; at most {len(config.cameras)}, those configured: {configured}"
        return [detail(i, "args.camera_ids", message)]
    out, seen = [], set()
    for j, cam in enumerate(cams):
        where = f"args.camera_ids[{j}]"
        if not isinstance(cam, str):
            out.append(detail(i, where, f"must be a string, got {json_type(cam)}"))
        elif cam in seen:
            out.append(detail(i, where, f"{echo(cam)} is listed twice"))
        elif cam not in config.cameras:
            out.append(_unknown(i, where, "camera", cam))
        else:
            seen.add(cam)
    return out


# -- presets (service/presets/store.py) -------------------------------------------------------------------
PRESET_KEYS = frozenset(PresetValues.model_fields)


def preset_problems(data: Any, config: Config) -> list[dict[str, Any]]:
    """Every problem with a preset's values ``data`` against the configured positioning commands'
    limits (index None; field names the key, e.g. ``zoom.cameradevice_rgb_1``)."""
    if not isinstance(data, dict):
        return [
            detail(None, "(body)", 'must be a JSON object like {"pan_deg_x100": 4500, "tilt_deg_x100": 0}')
        ]
    layout = RigLayout.from_config(config)
    allowed = ", ".join(sorted(PRESET_KEYS))
    out = [detail(None, k, f"unknown key; allowed: {allowed}") for k in sorted(set(data) - PRESET_KEYS)]
    for key, axis in (("pan_deg_x100", layout.pan_field), ("tilt_deg_x100", layout.tilt_field)):
        if key not in data:
            out.append(detail(None, key, "missing"))
        else:
            out.extend(_limit_problems(key, data[key], axis, layout))
    zoom = data.get("zoom", {})
    if not isinstance(zoom, dict):
        return [*out, detail(None, "zoom", f"must be an object of camera id: zoom, got {json_type(zoom)}")]
    with_zoom = ", ".join(sorted(layout.zoom_fields)) or "none"
    for cam, value in zoom.items():
        where = f"zoom.{clip(cam, 40)}"
        fld = layout.zoom_fields.get(cam)
        if fld is None:
            out.append(
                detail(None, where, f"{echo(cam)} is not a camera with a zoom; those with one: {with_zoom}")
            )
        else:
            out.extend(_limit_problems(where, value, fld, layout))
    return out


def _limit_problems(where: str, value: Any, fld: str, layout: RigLayout) -> list[dict[str, Any]]:
    """``value`` checked as the target of the positioning command that drives ``fld``."""
    command_id = layout.command_for(fld)
    if command_id is None:
        return [detail(None, where, f"no command in positioning_commands drives {fld!r}")]
    spec = layout.positioning[command_id]
    return [{**p, "index": None, "field": where} for p in _check_target(0, {spec.arg: value}, spec)]


def _goto_preset_problems(body: Any, config: Config, presets: Mapping[str, Preset]) -> list[dict[str, Any]]:
    """The goto_preset commands of a batch: sent to the pan-tilt, naming a preset that exists and
    still fits the configuration."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or len(requests) > MAX_COMMANDS:
        return []  # reported by _validate_body
    out = []
    for i, item in enumerate(requests):
        if isinstance(item, dict) and item.get("command_id") == GOTO_PRESET:
            out.extend(_check_goto_preset(i, item, config, presets))
    return out


def _check_goto_preset(
    i: int, item: dict[str, Any], config: Config, presets: Mapping[str, Preset]
) -> list[dict[str, Any]]:
    pantilt, device, args = config.pantilt.device_id, item.get("device_id"), item.get("args", {})
    if device in config.known_devices() and device != pantilt:
        return [detail(i, "device_id", f"{GOTO_PRESET} moves the pan-tilt: send it to {pantilt!r}")]
    if not isinstance(args, dict):
        return []  # reported by _check_shape
    out = [detail(i, f"args.{clip(k, 40)}", "unknown key") for k in sorted(set(args) - {PRESET_ARG})]
    where, name = f"args.{PRESET_ARG}", args.get(PRESET_ARG)
    if PRESET_ARG not in args:
        return [*out, detail(i, where, "missing: the name of a preset (GET /presets)")]
    if not isinstance(name, str):
        return [*out, detail(i, where, f"must be a string, got {json_type(name)}")]
    preset = presets.get(name)
    if preset is None:
        return [*out, detail(i, where, f"unknown preset {echo(name)}; GET /presets lists them")]
    stale = preset_problems(preset.model_dump(exclude={"saved_at"}), config)
    return out + [
        detail(i, where, f"preset {echo(name)} does not fit the configuration: {p['field']}: {p['message']}")
        for p in stale
    ]
