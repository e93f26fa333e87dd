"""The HTTP API: an app factory with one blueprint; the capture service is in app.extensions."""

from __future__ import annotations

import hmac
import ipaddress
import socket
from functools import cache
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from api.context import settings
from api.dashboard import bp as dashboard_bp
from api.errors import Refused, error_body
from api.events import bp as events_bp
from api.exports import bp as exports_bp
from api.fleet import bp as fleet_bp
from api.presets import bp as presets_bp
from api.routes import bp, reject
from api.scans import bp as scans_bp
from api.schedules import bp as schedules_bp
from rigcore.config import ApiConfig
from rigcore.errors import RigError
from service.capture import CaptureService

# Reachable without the token: liveness, and the dashboard's page and static files, which hold no
# data (the page asks for the token and sends it with every API call it makes).
OPEN_PATHS = frozenset({"/healthz", "/", "/openapi.json"})
OPEN_PREFIXES = ("/static/",)
# Answered whatever the Host header says: probes often reach the service by a name of their own.
HOST_OPEN_PATHS = frozenset({"/healthz"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})
# On every answer: no browser guesses a type other than the one sent (a frame file, a JSON error,
# a download taken for HTML). On HTML answers (the dashboard, a session report): no other site may
# frame the page (the dashboard holds the token: clickjacking), and no address leaks to another site.
# A page's own policy (the report's <meta> one) stays in force beside this one: both apply.
EVERY_ANSWER_HEADERS = {"X-Content-Type-Options": "nosniff"}
HTML_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


def create_app(service: CaptureService, test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = service.config.api.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update(test_config)
    app.extensions["capture"] = service
    app.register_blueprint(bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(events_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(fleet_bp)
    app.register_blueprint(presets_bp)
    app.register_blueprint(scans_bp)
    app.register_blueprint(schedules_bp)
    # The Host check comes first: a page that rebound its name to this machine learns nothing more.
    app.before_request(_check_host)
    app.before_request(_check_token)
    app.after_request(security_headers)
    app.register_error_handler(Refused, _refused)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RigError, _rig_error)
    app.register_error_handler(Exception, _internal_error)
    return app


def _check_host() -> ResponseReturnValue | None:
    """Refuse (421) a Host that is not one of this service's names: the guard against DNS rebinding.

    A page on a name its owner controls can rebind that name to this machine's address; the browser
    then sends that name as Host, which is how such a request is told apart from a real one.
    """
    if request.path in HOST_OPEN_PATHS:
        return None
    name = host_name(request.headers.get("Host", ""))
    if host_allowed(name, settings().config.api):
        return None
    what = f"unknown Host {name!r}" if name else "no Host header"
    message = (
        f"{what}: this service answers only to its own names (a guard against DNS rebinding); "
        f'to reach it by this name, add "{name or "<name>"}" to api.allowed_hosts in config.json'
    )
    return jsonify(error_body(message, host=name)), 421


def host_name(header: str) -> str:
    """The name in a Host header: lower-case, without port, IPv6 brackets or trailing dot."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def host_allowed(name: str, api: ApiConfig) -> bool:
    """Whether ``name`` (from :func:`host_name`) is one of this service's names."""
    if not name:
        return False
    # An address cannot be rebound (rebinding needs a name), so any IP literal passes: this covers
    # every address of this machine without listing its interfaces.
    if _is_ip_address(name) or "*" in api.allowed_hosts or name in api.allowed_hosts:
        return True
    if name in LOOPBACK_NAMES or name in machine_names():
        return True
    return api.host.lower() not in WILDCARD_HOSTS and name == host_name(api.host)


@cache
def machine_names() -> frozenset[str]:
    """This machine's host name and FQDN, looked up once (getfqdn may ask DNS)."""
    names = (socket.gethostname(), socket.getfqdn())
    return frozenset(host_name(n) for n in names if n)


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_token() -> ResponseReturnValue | None:
    token = settings().config.api.token
    if not token or request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES):
        return None
    given = bearer_token(request.headers.get("Authorization", ""))
    # Constant-time comparison so the token cannot be guessed byte by byte from timings.
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    resp = jsonify(
        error_body(
            "missing or wrong token: send the header 'Authorization: Bearer <token>', where <token> "
            "is api.token in the service's config.json"
        )
    )
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = 'Bearer realm="rigcapture"'
    return resp


def bearer_token(header: str) -> str:
    """The token of an 'Authorization: Bearer <token>' header ('' if none); the scheme's case is free
    (RFC 7235: auth schemes are case-insensitive)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def security_headers(resp: Response) -> Response:
    """The headers of :data:`EVERY_ANSWER_HEADERS` on every answer (errors, static files and
    downloads too), those of :data:`HTML_HEADERS` on HTML; a header a view set itself is kept,
    except that a Content-Security-Policy of its own gains frame-ancestors."""
    headers = dict(EVERY_ANSWER_HEADERS)
    if resp.mimetype in ("text/html", "application/xhtml+xml"):
        headers.update(HTML_HEADERS)
        own = resp.headers.get("Content-Security-Policy")
        if own and "frame-ancestors" not in own:
            resp.headers["Content-Security-Policy"] = f"{own.rstrip('; ')}; frame-ancestors 'none'"
    for name, value in headers.items():
        resp.headers.setdefault(name, value)
    return resp


def _refused(exc: Refused) -> ResponseReturnValue:
    return exc.answer


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    code = exc.code or 500
    message = exc.description or exc.name
    if code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"request body is larger than the limit of {limit} bytes (api.max_body_bytes)"
        if request.path in ("/process-request", "/process-requests"):
            return reject(413, f"{message}; nothing was executed", body_read=False)
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
