"""The HTTP API: an app factory with one blueprint; the capture service is in app.extensions."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from api.dashboard import bp as dashboard_bp
from api.errors import error_body
from api.routes import bp, reject
from rigcore.errors import RigError
from service.capture import CaptureService

# Reachable without the token: liveness, and the dashboard's page and static files, which hold no
# data (the page asks for the token and sends it with every API call it makes).
OPEN_PATHS = frozenset({"/healthz", "/", "/openapi.json"})
OPEN_PREFIXES = ("/static/",)


def create_app(service: CaptureService, test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = service.config.api.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update(test_config)
    app.extensions["capture"] = service
    app.register_blueprint(bp)
    app.register_blueprint(dashboard_bp)
    app.before_request(_check_token)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RigError, _rig_error)
    app.register_error_handler(Exception, _internal_error)
    return app


def _check_token() -> ResponseReturnValue | None:
    service: CaptureService = current_app.extensions["capture"]
    token = service.config.api.token
    if not token or request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES):
        return None
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    # Constant-time comparison so the token cannot be guessed byte by byte from timings.
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    resp = jsonify(error_body("missing or wrong token: send 'Authorization: Bearer <api.token>'"))
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = "Bearer"
    return resp


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    code = exc.code or 500
    message = exc.description or exc.name
    if code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"request body is larger than the limit of {limit} bytes (api.max_body_bytes)"
        if request.path in ("/process-request", "/process-requests"):
            return reject(f"<{request.content_length} bytes, not kept>", 413, message)
    return jsonify(error_body(message)), code


def _rig_error(exc: RigError) -> ResponseReturnValue:
    return jsonify(error_body(str(exc), type=type(exc).__name__, **_detail(exc))), exc.http_status


def _detail(exc: RigError) -> dict[str, Any]:
    data = exc.to_dict()
    data.pop("message", None)
    data.pop("type", None)
    return {"rig_error": data} if data else {}


def _internal_error(exc: Exception) -> ResponseReturnValue:
    current_app.logger.exception("unhandled error")
    return jsonify(error_body(f"internal error: {type(exc).__name__}")), 500
