"""Scans over HTTP: ``POST /scans``, ``GET /scans``, ``GET /scans/<id>``, ``DELETE /scans/<id>``.

The request is checked whole by service/scans/spec.py ``parse_scan`` before anything moves; a refused
scan is answered (and recorded in history) like a refused batch, and nothing is executed. An
accepted scan is one job in the queue (service/jobs/scan_runner.py runs its poses).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from api.context import Submitter, jobs, presets, scans, submitter
from api.context import cancel_scan as request_cancel
from api.errors import error_body, found, not_found
from api.routes import parsed_body, reject, submit_or_refuse
from api.schemas_in import ScanRequest
from service.jobs.work import ScanWork
from service.scans.run import ScanRun, papywizard_xml, resumed
from service.scans.spec import parse_scan
from service.status import UNFINISHED, PoseStatus

bp = Blueprint("scans", __name__)


def _wants_wait() -> bool:
    # Unlike POST /process-request, a scan answers at once unless asked to wait: it may run long.
    return request.args.get("wait", "false").lower() in ("true", "1", "yes")


@bp.post("/scans")
def start_scan() -> ResponseReturnValue:
    service = submitter()
    spec, body = parsed_body(
        lambda b: parse_scan(b, service.config, presets().all()), ScanRequest, "scan", "executed"
    )
    return _queue(service, ScanRun.new(spec, body))


def _queue(service: Submitter, scan: ScanRun) -> ResponseReturnValue:
    """Queue the scan's job; answer 202 at once, or 200 with the scan once finished (?wait=true)."""
    work = ScanWork(scan)
    submit_or_refuse(service, scan.body, work)
    status_url = url_for("scans.get_scan", scan_id=scan.id)
    if not _wants_wait():
        return jsonify({"scan_id": scan.id, "status_url": status_url}), 202
    if not jobs().wait_job(scan.job_id or "", service.timeout(work)):
        return jsonify({"scan_id": scan.id, "status_url": status_url, "message": "still running"}), 202
    return jsonify(scans().view(scan.id) or scan.view()), 200


@bp.get("/scans")
def list_scans() -> ResponseReturnValue:
    return jsonify({"scans": scans().views()})


@bp.get("/scans/<scan_id>")
def get_scan(scan_id: str) -> ResponseReturnValue:
    return found(scans().view(scan_id), "scan", scan_id)


@bp.delete("/scans/<scan_id>")
def cancel_scan(scan_id: str) -> ResponseReturnValue:
    view = request_cancel(scan_id)
    if view is None:
        known = scans().view(scan_id)
        if known is None:
            return not_found("scan", scan_id)
        return jsonify(error_body(f"scan {scan_id} already {known['status']}", scan=known)), 409
    if view["status"] not in UNFINISHED:
        return jsonify(error_body(f"scan {scan_id} already {view['status']}", scan=view)), 409
    return jsonify({"message": "cancel requested", **view}), 202


@bp.post("/scans/<scan_id>/resume")
def resume_scan(scan_id: str) -> ResponseReturnValue:
    """Run the poses not ``done`` of a finished scan again, under the same scan id."""
    service = submitter()
    manifest = scans().manifest(scan_id)
    if manifest is None:
        return not_found("scan", scan_id)
    if manifest.status in UNFINISHED:
        return jsonify(error_body(f"scan {scan_id} is {manifest.status}; nothing was executed")), 409
    if all(p.status == PoseStatus.DONE.value for p in manifest.poses):
        return jsonify(error_body(f"every pose of scan {scan_id} is done; nothing to resume")), 409
    spec, problems = parse_scan(manifest.request, service.config, presets().all())
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
    manifest = scans().manifest(scan_id)
    if manifest is None:
        return not_found("scan", scan_id)
    return Response(papywizard_xml(manifest), mimetype="application/xml")
