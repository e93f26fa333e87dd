"""Schedules over HTTP: ``POST /schedules``, ``GET /schedules``, ``GET/DELETE /schedules/<id>``.

A schedule is checked whole before it is stored (service/schedules/rules.py ``parse_schedule``: exactly one
of ``scan``/``batch``, exactly one of ``every_s``/``cron``, and the scan or batch validated as
``POST /scans`` or ``POST /process-request`` would); a refused schedule stores nothing and runs
nothing. Stored schedules are in ``schedules.json`` and are fired by service/schedules/scheduler.py.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from api.context import presets, schedule_book, settings
from api.contract import checked, refusal
from api.errors import error_body
from api.routes import json_body, reject
from api.schemas_in import ScheduleRequest
from service.batches.validation import clip
from service.schedules.rules import MAX_SCHEDULES, parse_schedule

bp = Blueprint("schedules", __name__)


@bp.post("/schedules")
def add_schedule() -> ResponseReturnValue:
    book = schedule_book()
    body, problem = json_body()
    if problem is not None:
        return reject(problem[0], f"{problem[1]}; nothing was stored")
    parsed = parse_schedule(body, settings().config, presets().all())
    schedule, problems = checked(parsed, ScheduleRequest, body)
    if schedule is None:
        return reject(400, refusal("schedule", problems, "stored"), problems)
    try:
        added = book.store.add(schedule)
    except OSError as exc:
        message = f"schedules.json could not be written ({clip(str(exc))}); nothing was stored"
        return jsonify(error_body(message)), 500
    if not added:
        message = f"there are already {MAX_SCHEDULES} schedules; delete one first; nothing was stored"
        return jsonify(error_body(message)), 409
    book.poke()
    return jsonify({"schedule_id": schedule.schedule_id, "next_run_at": schedule.next_run_at}), 201


@bp.get("/schedules")
def list_schedules() -> ResponseReturnValue:
    store = schedule_book().store
    body: dict[str, object] = {"schedules": [s.view() for s in store.all()]}
    if store.warning:
        body["warning"] = store.warning
    return jsonify(body)


@bp.get("/schedules/<schedule_id>")
def get_schedule(schedule_id: str) -> ResponseReturnValue:
    found = schedule_book().store.get(schedule_id)
    if found is None:
        return jsonify(error_body(f"no schedule {clip(schedule_id)}")), 404
    return jsonify(found.view())


@bp.delete("/schedules/<schedule_id>")
def delete_schedule(schedule_id: str) -> ResponseReturnValue:
    """Stop future runs; a run already queued or running goes on (cancel it through its job or scan)."""
    book = schedule_book()
    try:
        found = book.store.delete(schedule_id)
    except OSError as exc:
        message = f"schedules.json could not be written ({clip(str(exc))}); nothing was deleted"
        return jsonify(error_body(message)), 500
    if found is None:
        return jsonify(error_body(f"no schedule {clip(schedule_id)}")), 404
    book.poke()
    return jsonify({"message": "deleted", **found.view()})
