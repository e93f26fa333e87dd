"""Scans over HTTP: ``POST /scans``, ``GET /scans``, ``GET /scans/<id>``, ``DELETE /scans/<id>``.

The request is checked whole by service/scan_plan.py ``parse_scan`` before anything moves; a refused
scan is answered (and recorded in history) like a refused batch, and nothing is executed. An
accepted scan is one job in the queue (service/scan_runner.py runs its poses).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from api.context import capture_service
from api.errors import error_body
from api.routes import client_info, json_body, reject
from rigcore.errors import RigError
from service.capture import CaptureService
from service.plan import Plan
from service.scan_plan import parse_scan
from service.scan_run import ScanRun, papywizard_xml, resumed
from service.validation import clip

bp = Blueprint("scans", __name__)


def _wants_wait() -> bool:
    # Unlike POST /process-request, a scan answers at once unless asked to wait: it may run long.
    return request.args.get("wait", "false").lower() in ("true", "1", "yes")


@bp.post("/scans")
def start_scan() -> ResponseReturnValue:
    service = capture_service()
    body, problem = json_body()
    if problem is not None:
        return reject(problem[0], f"{problem[1]}; nothing was executed")
    spec, problems = parse_scan(body, service.config, service.presets.all())
    if spec is None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"invalid scan: {first['field']}: {first['message']}{more}; nothing was executed"
        return reject(400, message, problems)
    return _queue(service, ScanRun.new(spec, body))


def _queue(service: CaptureService, scan: ScanRun) -> ResponseReturnValue:
    """Queue the scan's job; answer 202 at once, or 200 with the scan once finished (?wait=true)."""
    spec = scan.spec
    try:
        service.submit(scan.body, Plan(commands=(), steps=()), client_info(), scan=scan)
    except RigError as exc:
        return reject(exc.http_status, f"{exc}; nothing was executed")
    except OSError as exc:  # history could not be written: the scan was not queued
        return reject(500, f"history could not be written ({clip(str(exc))}); nothing was executed")
    status_url = url_for("scans.get_scan", scan_id=scan.id)
    if not _wants_wait():
        return jsonify({"scan_id": scan.id, "status_url": status_url}), 202
    if not service.wait_job(scan.job_id or "", service.scan_timeout(spec)):
        return jsonify({"scan_id": scan.id, "status_url": status_url, "message": "still running"}), 202
    return jsonify(service.scan_view(scan.id) or scan.view()), 200


@bp.get("/scans")
def list_scans() -> ResponseReturnValue:
    return jsonify({"scans": capture_service().scan_views()})


@bp.get("/scans/<scan_id>")
def get_scan(scan_id: str) -> ResponseReturnValue:
    view = capture_service().scan_view(scan_id)
    if view is None:
        return jsonify(error_body(f"no scan {clip(scan_id)}")), 404
    return jsonify(view)


@bp.delete("/scans/<scan_id>")
def cancel_scan(scan_id: str) -> ResponseReturnValue:
    service = capture_service()
    view = service.cancel_scan(scan_id)
    if view is None:
        known = service.scan_view(scan_id)
        if known is None:
            return jsonify(error_body(f"no scan {clip(scan_id)}")), 404
        return jsonify(error_body(f"scan {scan_id} already {known['status']}", scan=known)), 409
    if view["status"] not in ("queued", "running"):
        return jsonify(error_body(f"scan {scan_id} already {view['status']}", scan=view)), 409
    return jsonify({"message": "cancel requested", **view}), 202


@bp.post("/scans/<scan_id>/resume")
def resume_scan(scan_id: str) -> ResponseReturnValue:
    """Run the poses not ``done`` of a finished scan again, under the same scan id."""
    service = capture_service()
    manifest = service.scan_manifest(scan_id)
    if manifest is None:
        return jsonify(error_body(f"no scan {clip(scan_id)}")), 404
    if manifest.status in ("queued", "running"):
        return jsonify(error_body(f"scan {scan_id} is {manifest.status}; nothing was executed")), 409
    if all(p.status == "done" for p in manifest.poses):
        return jsonify(error_body(f"every pose of scan {scan_id} is done; nothing to resume")), 409
    spec, problems = parse_scan(manifest.request, service.config, service.presets.all())
    if spec is None:
        first = problems[0]
        message = (
            f"scan {scan_id} no longer fits the configuration: {first['field']}: {first['message']}; "
            "nothing was executed"
        )
        return reject(409, message, problems)
    return _queue(service, resumed(manifest, spec))


@bp.get("/scans/<scan_id>/papywizard.xml")
def scan_papywizard(scan_id: str) -> ResponseReturnValue:
    """The scan's poses as a Papywizard XML shoot file (yaw = pan, pitch = tilt, degrees)."""
    manifest = capture_service().scan_manifest(scan_id)
    if manifest is None:
        return jsonify(error_body(f"no scan {clip(scan_id)}")), 404
    return Response(papywizard_xml(manifest), mimetype="application/xml")
