"""Routes: batches in, jobs, history and rig status out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from api.context import Submitter, config_editor, jobs, presets, rig, settings, submitter, uploads
from api.context import history as request_history
from api.contract import Problems, checked, query_int, refusal, with_query_errors
from api.errors import Refused, error_body, found, not_found
from api.openapi import spec
from api.schemas_in import HISTORY_MAX_PAGE, HISTORY_PAGE, Batch
from rigcore.checks import clip
from rigcore.config_policy import ConfigRefused
from rigcore.errors import RigError
from service.batches.validation import build_plan, depth_problem
from service.history.store import Refusal
from service.jobs.work import BatchWork, Work
from service.status import JobPhase

Parsed = TypeVar("Parsed")

bp = Blueprint("api", __name__)


def client_info() -> dict[str, Any]:
    """Who sent the request, for history.json (each string bounded there: service.history.bounds)."""
    return {"address": request.remote_addr, "user_agent": request.headers.get("User-Agent")}


def json_body() -> tuple[Any, tuple[int, str] | None]:
    """The request's JSON body, or (status, message): 415 when not JSON; 400 when nested deeper than
    MAX_JSON_DEPTH (found on the raw bytes, before anything parses them), or not valid JSON."""
    if not request.is_json:
        return None, (
            415,
            f"Content-Type must be application/json, got {clip(request.content_type or 'none')}",
        )
    raw = request.get_data(cache=True)  # at most api.max_body_bytes (413 above)
    too_deep = depth_problem(raw)
    if too_deep is not None:
        return None, (400, too_deep)
    try:
        return json.loads(raw, parse_constant=_not_json), None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None, (400, f"request body is not valid JSON: {clip(str(exc))}")


def _not_json(name: str) -> Any:
    # Python's json reads NaN and Infinity, but they are not JSON: no other reader would take them back.
    raise ValueError(f"{name} is not a JSON value")


def reject(
    status: int, message: str, details: list[dict[str, Any]] | None = None, *, body_read: bool = True
) -> ResponseReturnValue:
    """Answer a refused request and record it in history, both bounded (api.errors.error_body: at
    most MAX_DETAILS details, ``details_omitted`` counting the rest, every string clipped); history
    keeps the body's size, SHA-256 and first characters (nothing of a body not read, ``body_read``
    False: a 413)."""
    err = error_body(message, details)
    raw = request.get_data(cache=True) if body_read else None
    entry = jobs().record_rejected(Refusal(raw, client_info(), status, err, request.content_length))
    return jsonify({**err, "history_id": entry}), status


def parsed_body(
    parse: Callable[[Any], tuple[Parsed | None, Problems]],
    model: type[BaseModel],
    what: str,
    nothing: str,
    *,
    indexed: bool = False,
) -> tuple[Parsed, Any]:
    """The request's JSON body checked by the service's validator ``parse`` then by the documented
    ``model`` (api.contract.checked): (result, body). Refused carries the refusal, recorded in
    history: ``invalid <what>: …; nothing was <nothing>``."""
    body, problem = json_body()
    if problem is not None:
        raise Refused(reject(problem[0], f"{problem[1]}; nothing was {nothing}"))
    result, problems = checked(parse(body), model, body)
    if result is None:
        raise Refused(reject(400, refusal(what, problems, nothing, indexed=indexed), problems))
    return result, body


def submit_or_refuse(service: Submitter, body: Any, work: Work) -> dict[str, Any]:
    """Queue the work and return its job's view; Refused carries the refusal when it cannot be."""
    try:
        return service.submit(body, work, client_info())
    except RigError as exc:
        raise Refused(reject(exc.http_status, f"{exc}; nothing was executed")) from exc
    except OSError as exc:  # history could not be written: the job was not queued
        message = f"history could not be written ({clip(str(exc))}); nothing was executed"
        raise Refused(reject(500, message)) from exc


@bp.post("/process-request")
@bp.post("/process-requests")
def process_request() -> ResponseReturnValue:
    service = submitter()
    plan, body = parsed_body(
        lambda b: build_plan(b, service.config, presets().all()), Batch, "batch", "executed", indexed=True
    )
    work = BatchWork(plan)
    view = submit_or_refuse(service, body, work)
    job_id = view["job_id"]
    status_url = url_for("api.get_job", job_id=job_id)
    if request.args.get("wait", "true").lower() in ("false", "0", "no"):
        return jsonify({"job_id": job_id, "status": view["status"], "status_url": status_url}), 202
    if not jobs().wait_job(job_id, service.timeout(work)):
        view = jobs().job_view(job_id) or view
        return jsonify(
            {
                "job_id": job_id,
                "status": view["status"],
                "status_url": status_url,
                "message": "still running; follow status_url",
            }
        ), 202
    return jsonify({"message": "Requests processed", **(jobs().job_view(job_id) or view)}), 200


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    return found(jobs().job_view(job_id), "job", job_id)


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> ResponseReturnValue:
    view = jobs().cancel(job_id)
    if view is None:
        return not_found("job", job_id)
    if view["phase"] == JobPhase.DONE:
        return jsonify(error_body(f"job {job_id} already {view['status']}", job=view)), 409
    return jsonify({"message": "cancel requested", **view}), 202


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    return jsonify({"jobs": jobs().job_views()})


@bp.get("/history")
def history() -> ResponseReturnValue:
    """A page of history counted from the newest (``?limit=``, ``?offset=``; ``next_offset`` asks for
    the page before), its entries oldest first as in history.json; archived entries included."""
    limit = query_int("limit", HISTORY_PAGE, 0, HISTORY_MAX_PAGE) or HISTORY_PAGE
    page = request_history().page(limit, query_int("offset", 0))
    return jsonify(page)


@bp.get("/status")
def status() -> ResponseReturnValue:
    body = rig().status()
    body["uploads"] = uploads().status()  # the object-store queue (service.uploads)
    return jsonify(body)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    service = rig()
    broker = service.broker_connected()
    streams = service.streams_connected()
    body = {
        "status": "ok" if broker and streams else "degraded",
        "broker_connected": broker,
        "streams_connected": streams,
    }
    return jsonify(body), 200


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    extra = current_app.extensions.get("openapi_paths", {})
    return jsonify(with_query_errors(spec(extra, token=bool(settings().config.api.token))))


@bp.get("/config")
def get_config() -> ResponseReturnValue:
    """The configuration in force, secrets (the token, passwords, credentials in URLs) as ***."""
    return jsonify(settings().config.to_json(redact=True))


@bp.put("/config")
def put_config() -> ResponseReturnValue:
    """Merge the body into the configuration in force (rigcore.config_policy), save, apply."""
    editor = config_editor()
    body, problem = json_body()
    if problem is not None:
        return jsonify(error_body(problem[1])), problem[0]
    if editor.config_path is None:
        return jsonify(error_body("the service was started without a config file; nothing saved")), 409
    try:
        outcome = editor.update(body)
    except ConfigRefused as exc:
        details = [{"index": None, **d} for d in exc.details]
        return jsonify(error_body(str(exc), details)), exc.status
    return jsonify({"message": "saved; in force from the next job", **outcome})
