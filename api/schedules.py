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
from api.errors import error_body, found, not_found
from api.routes import parsed_body
from api.schemas_in import ScheduleRequest
from rigcore.checks import clip
from service.schedules.rules import MAX_SCHEDULES, parse_schedule

bp = Blueprint("schedules", __name__)


@bp.post("/schedules")
def add_schedule() -> ResponseReturnValue:
    book = schedule_book()
    schedule, _ = parsed_body(
        lambda b: parse_schedule(b, settings().config, presets().all()), ScheduleRequest, "schedule", "stored"
    )
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
    schedule = schedule_book().store.get(schedule_id)
    return found(None if schedule is None else schedule.view(), "schedule", schedule_id)


@bp.delete("/schedules/<schedule_id>")
def delete_schedule(schedule_id: str) -> ResponseReturnValue:
    """Stop future runs; a run already queued or running goes on (cancel it through its job or scan)."""
    book = schedule_book()
    try:
        deleted = book.store.delete(schedule_id)
    except OSError as exc:
        message = f"schedules.json could not be written ({clip(str(exc))}); nothing was deleted"
        return jsonify(error_body(message)), 500
    if deleted is None:
        return not_found("schedule", schedule_id)
    book.poke()
    return jsonify({"message": "deleted", **deleted.view()})
