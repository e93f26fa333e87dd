"""Named presets over HTTP: store, list, read, delete, and save the pose the rig holds now.

The presets themselves live in service/presets/store.py (``PresetStore``, ``presets.json``); their values
are checked here against the configured positioning commands' limits (service/batches/validation.py
``preset_problems``), after their size (service/presets/store.py ``size_problems``: at most
MAX_PRESET_BYTES, MAX_ZOOM_KEYS zoom keys, MAX_PRESETS presets). A refused request saves nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from api.context import presets, rig, settings
from api.errors import error_body, not_found
from api.routes import json_body
from rigcore.checks import clip, is_number
from service.batches.validation import preset_problems
from service.presets.store import Preset, PresetsFull, name_problem, size_problems

bp = Blueprint("presets", __name__)


def _view(name: str, preset: Preset) -> dict[str, Any]:
    return {"name": name, **preset.model_dump(mode="json")}


def _refused(status: int, what: str, problems: list[dict[str, Any]]) -> ResponseReturnValue:
    """An answer naming the first problem (and counting the others); nothing was saved."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    message = f"{what}: {clip(first['field'])}: {first['message']}{more}; nothing saved"
    return jsonify(error_body(message, problems)), status


def _bad_name(name: str) -> ResponseReturnValue | None:
    problem = name_problem(name)
    if problem is None:
        return None
    problems = [{"index": None, "field": "name", "message": problem}]
    return _refused(400, f"invalid preset name {clip(repr(name))}", problems)


@bp.get("/presets")
def list_presets() -> ResponseReturnValue:
    store = presets()
    body: dict[str, Any] = {"presets": [_view(n, p) for n, p in sorted(store.all().items())]}
    if store.warning:
        body["warning"] = store.warning
    return jsonify(body)


@bp.get("/presets/<name>")
def get_preset(name: str) -> ResponseReturnValue:
    preset = presets().get(name)
    if preset is None:
        return not_found("preset", repr(name))
    return jsonify(_view(name, preset))


@bp.put("/presets/<name>")
def put_preset(name: str) -> ResponseReturnValue:
    """Store the preset in the body under ``name``: 201 when new, 200 when it replaced one."""
    bad = _bad_name(name)
    if bad is not None:
        return bad
    body, problem = json_body()
    if problem is not None:
        return jsonify(error_body(f"{problem[1]}; nothing saved")), problem[0]
    problems = size_problems(body) or preset_problems(body, settings().config)
    if problems:
        return _refused(400, "invalid preset", problems)
    return _store(name, Preset.model_validate(body))


@bp.post("/presets/<name>")
def save_current(name: str) -> ResponseReturnValue:
    """``?from=current``: store the pose the rig holds now (pan, tilt, the zooms known) as ``name``."""
    bad = _bad_name(name)
    if bad is not None:
        return bad
    if request.args.get("from") != "current":
        message = (
            "POST /presets/<name> stores the rig's pose and needs ?from=current (PUT stores given values)"
        )
        return jsonify(error_body(f"{message}; nothing saved")), 400
    service = rig()
    pose = service.pose()
    if pose["pan_deg_x100"] is None or pose["tilt_deg_x100"] is None:
        message = "the rig's pose is not known yet (no pan and tilt from the pan-tilt's state); nothing saved"
        return jsonify(error_body(message)), 409
    zooms = service.in_force().layout.zoom_fields
    data = {
        "pan_deg_x100": _whole(pose["pan_deg_x100"]),
        "tilt_deg_x100": _whole(pose["tilt_deg_x100"]),
        "zoom": {cam: _whole(v) for cam, v in pose["zooms"].items() if cam in zooms},
    }
    problems = preset_problems(data, service.config)
    if problems:
        return _refused(409, "the rig's pose does not fit the configured limits", problems)
    return _store(name, Preset.model_validate(data))


def _whole(value: Any) -> Any:
    # A rig may report 4500.0 for an integer position; the command that goes back there wants 4500.
    return int(value) if is_number(value) and float(value).is_integer() else value


def _store(name: str, preset: Preset) -> ResponseReturnValue:
    store = presets()
    try:
        created = store.put(name, preset)
    except PresetsFull as exc:
        return jsonify(error_body(f"{exc}; nothing saved")), 409
    except OSError as exc:
        message = f"{store.path.name} could not be written ({clip(str(exc))}); nothing saved"
        return jsonify(error_body(message)), 500
    saved = store.get(name) or preset
    message = "created" if created else "replaced"
    return jsonify({"message": message, **_view(name, saved)}), 201 if created else 200


@bp.delete("/presets/<name>")
def delete_preset(name: str) -> ResponseReturnValue:
    store = presets()
    try:
        deleted = store.delete(name)
    except OSError as exc:
        message = f"{store.path.name} could not be written ({clip(str(exc))}); nothing deleted"
        return jsonify(error_body(message)), 500
    if not deleted:
        return not_found("preset", repr(name))
    return jsonify({"message": "deleted", "name": name})
