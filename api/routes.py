"""Routes: batches in, jobs, history and rig status out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import ValidationError

from api.errors import error_body
from api.openapi import spec
from api.validation import build_plan
from rigcore.config import Config, describe_validation_error, validation_details
from rigcore.errors import RigError
from service.capture import CaptureService

bp = Blueprint("api", __name__)


def _service() -> CaptureService:
    service: CaptureService = current_app.extensions["capture"]
    return service


def client_info() -> dict[str, Any]:
    """Who sent the request, for history.json."""
    return {"address": request.remote_addr, "user_agent": request.headers.get("User-Agent")}


def _json_body() -> tuple[Any, tuple[int, str] | None]:
    """The request's JSON body, or (status, message): 415 when not JSON, 400 when unparsable."""
    if not request.is_json:
        return None, (415, f"Content-Type must be application/json, got {request.content_type or 'none'}")
    body = request.get_json(silent=True)
    if body is None:
        return None, (400, "request body is not valid JSON")
    return body, None


def reject(
    body: Any, status: int, message: str, details: list[dict[str, Any]] | None = None
) -> ResponseReturnValue:
    err = error_body(message, details)
    entry = _service().record_rejected(body, client_info(), status, err)
    return jsonify({**err, "history_id": entry}), status


@bp.post("/process-request")
@bp.post("/process-requests")
def process_request() -> ResponseReturnValue:
    service = _service()
    body, problem = _json_body()
    if problem is not None:
        raw = request.get_data(cache=True).decode("utf-8", "replace")[:2000]
        return reject(raw, problem[0], problem[1])
    plan, problems = build_plan(body, service.config)
    if plan is None:
        first = problems[0]
        where = (
            f"requests[{first['index']}].{first['field']}" if first["index"] is not None else first["field"]
        )
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return reject(
            body, 400, f"invalid batch: {where}: {first['message']}{more}; nothing was executed", problems
        )
    try:
        view = service.submit(body, plan, client_info())
    except RigError as exc:
        return reject(body, exc.http_status, f"{exc}; nothing was executed")
    job_id = view["job_id"]
    status_url = url_for("api.get_job", job_id=job_id)
    if request.args.get("wait", "true").lower() in ("false", "0", "no"):
        return jsonify({"job_id": job_id, "status": view["status"], "status_url": status_url}), 202
    if not service.wait_job(job_id, service.job_timeout(plan)):
        view = service.job_view(job_id) or view
        return jsonify(
            {
                "job_id": job_id,
                "status": view["status"],
                "status_url": status_url,
                "message": "still running; follow status_url",
            }
        ), 202
    return jsonify({"message": "Requests processed", **(service.job_view(job_id) or view)}), 200


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    view = _service().job_view(job_id)
    if view is None:
        return jsonify(error_body(f"no job {job_id}")), 404
    return jsonify(view)


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> ResponseReturnValue:
    view = _service().cancel(job_id)
    if view is None:
        return jsonify(error_body(f"no job {job_id}")), 404
    if view["phase"] == "done":
        return jsonify(error_body(f"job {job_id} already {view['status']}", job=view)), 409
    return jsonify({"message": "cancel requested", **view}), 202


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    return jsonify({"jobs": _service().job_views()})


@bp.get("/history")
def history() -> ResponseReturnValue:
    limit = request.args.get("limit", type=int)
    return jsonify({"requests": _service().history.entries(limit if limit and limit > 0 else None)})


@bp.get("/status")
def status() -> ResponseReturnValue:
    return jsonify(_service().status())


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    service = _service()
    broker = service.link.connected
    streams = all(s.state.connected for s in service.streams)
    body = {
        "status": "ok" if broker and streams else "degraded",
        "broker_connected": broker,
        "streams_connected": streams,
    }
    return jsonify(body), 200


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    extra = current_app.extensions.get("openapi_paths", {})
    return jsonify(spec(extra, token=bool(_service().config.api.token)))


@bp.get("/config")
def get_config() -> ResponseReturnValue:
    service = _service()
    return jsonify(service.config.to_json(redact=True))


@bp.put("/config")
def put_config() -> ResponseReturnValue:
    service = _service()
    body, problem = _json_body()
    if problem is not None:
        return jsonify(error_body(problem[1])), problem[0]
    if isinstance(body, dict):
        # A GET → edit → PUT round trip must not replace secrets with their redaction.
        for section, key in (("api", "token"), ("mqtt", "password")):
            part = body.get(section)
            if isinstance(part, dict) and part.get(key) == "***":
                part[key] = getattr(getattr(service.config, section), key)
    try:
        new = Config.model_validate(body)
    except ValidationError as exc:
        details = [{"index": None, **d} for d in validation_details(exc)]
        return jsonify(
            error_body(f"invalid configuration: {describe_validation_error(exc)}; nothing saved", details)
        ), 400
    if service.config_path is None:
        return jsonify(error_body("the service was started without a config file; nothing saved")), 409
    outcome = service.update_config(new)
    return jsonify({"message": "saved; in force from the next job", **outcome})
