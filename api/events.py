"""Events over HTTP: ``POST /events`` (a trigger), ``GET /events``, ``GET /events/<id>``.

A trigger is checked whole before anything is recorded: against the configuration and the ring by
service/events/trigger.py (which words each problem), then against the documented body
(api/schemas_in.py ``EventRequest``). An accepted trigger opens an event, or extends the one still
recording its after part (``extended``); the event saves itself as a session (service.events).
``?wait=true`` answers once it is saved.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from api.context import event_desk
from api.contract import checked, refusal
from api.errors import error_body, found
from api.openapi_events import EVENT_PATHS
from api.routes import json_body
from api.schemas_in import EventRequest
from service.events.desk import EventRefused

bp = Blueprint("events", __name__)


@bp.record_once
def _document(state: BlueprintSetupState) -> None:
    state.app.extensions.setdefault("openapi_paths", {}).update(EVENT_PATHS)


def _wants_wait() -> bool:
    return request.args.get("wait", "false").lower() in ("true", "1", "yes")


@bp.post("/events")
def trigger_event() -> ResponseReturnValue:
    desk = event_desk()
    body, problem = json_body()
    if problem is not None:
        return jsonify(error_body(f"{problem[1]}; nothing was recorded")), problem[0]
    try:
        found_problems = desk.problems(body)
        _, problems = checked((None, found_problems) if found_problems else (body, []), EventRequest, body)
        if problems:
            return jsonify(error_body(refusal("event", problems, "recorded"), problems)), 400
        view, extended = desk.trigger(body, "http")
    except EventRefused as exc:
        return jsonify(error_body(str(exc), exc.details)), exc.http_status
    event_id = view["event_id"]
    status_url = url_for("events.get_event", event_id=event_id)
    queued = {"event_id": event_id, "status": view["status"], "status_url": status_url, "extended": extended}
    if not _wants_wait():
        return jsonify(queued), 202
    if not desk.wait(event_id, desk.wait_timeout()):
        return jsonify({**queued, "message": "still recording; follow status_url"}), 202
    return jsonify(desk.view(event_id) or view), 200


@bp.get("/events")
def list_events() -> ResponseReturnValue:
    return jsonify(event_desk().listing())


@bp.get("/events/<event_id>")
def get_event(event_id: str) -> ResponseReturnValue:
    return found(event_desk().view(event_id), "event", event_id)
