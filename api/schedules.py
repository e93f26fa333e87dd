"""Schedules over HTTP: ``POST /schedules``, ``GET /schedules``, ``GET/DELETE /schedules/<id>``.

A schedule is checked whole before it is stored (service/schedules.py ``parse_schedule``: exactly one
of ``scan``/``batch``, exactly one of ``every_s``/``cron``, and the scan or batch validated as
``POST /scans`` or ``POST /process-request`` would); a refused schedule stores nothing and runs
nothing. Stored schedules are in ``schedules.json`` and are fired by service/scheduler.py.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from api.context import capture_service
from api.errors import error_body
from api.routes import json_body, reject
from service.schedules import MAX_SCHEDULES, parse_schedule
from service.validation import clip

bp = Blueprint("schedules", __name__)


@bp.post("/schedules")
def add_schedule() -> ResponseReturnValue:
    service = capture_service()
    body, problem = json_body()
    if problem is not None:
        return reject(problem[0], f"{problem[1]}; nothing was stored")
    schedule, problems = parse_schedule(body, service.config, service.presets.all())
    if schedule is None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"invalid schedule: {first['field']}: {first['message']}{more}; nothing was stored"
        return reject(400, message, problems)
    try:
        added = service.schedules.add(schedule)
    except OSError as exc:
        message = f"schedules.json could not be written ({clip(str(exc))}); nothing was stored"
        return jsonify(error_body(message)), 500
    if not added:
        message = f"there are already {MAX_SCHEDULES} schedules; delete one first; nothing was stored"
        return jsonify(error_body(message)), 409
    service.scheduler.poke()
    return jsonify({"schedule_id": schedule.schedule_id, "next_run_at": schedule.next_run_at}), 201


@bp.get("/schedules")
def list_schedules() -> ResponseReturnValue:
    store = capture_service().schedules
    body: dict[str, object] = {"schedules": [s.view() for s in store.all()]}
    if store.warning:
        body["warning"] = store.warning
    return jsonify(body)


@bp.get("/schedules/<schedule_id>")
def get_schedule(schedule_id: str) -> ResponseReturnValue:
    found = capture_service().schedules.get(schedule_id)
    if found is None:
        return jsonify(error_body(f"no schedule {clip(schedule_id)}")), 404
    return jsonify(found.view())


@bp.delete("/schedules/<schedule_id>")
def delete_schedule(schedule_id: str) -> ResponseReturnValue:
    """Stop future runs; a run already queued or running goes on (cancel it through its job or scan)."""
    service = capture_service()
    try:
        found = service.schedules.delete(schedule_id)
    except OSError as exc:
        message = f"schedules.json could not be written ({clip(str(exc))}); nothing was deleted"
        return jsonify(error_body(message)), 500
    if found is None:
        return jsonify(error_body(f"no schedule {clip(schedule_id)}")), 404
    service.scheduler.poke()
    return jsonify({"message": "deleted", **found.view()})
