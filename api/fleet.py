"""The fleet's views (docs/operations/fleet.md): ``GET /fleet`` (every node, online or not, what it
does) and the fleet's part of ``GET /sessions`` (``?node=all`` or ``?node=<id>``, through
:func:`fleet_page`, which api.dashboard's listing asks first).

Both read the catalog the fleet shares (service.fleet.fleet.Fleet): the PostgreSQL one when
``catalog.url`` names it, else the node's own (this node alone). When the shared catalog does not
answer they say so (503, ``Retry-After``); the node's own listing (``GET /sessions`` without
``node``) never depends on it.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from api.context import fleet, paths, settings
from api.errors import error_body
from api.openapi import AUTH_ERR, error
from api.openapi_gen import answer
from api.schemas_out import FleetPage
from api.session_summaries import catalog_fields, fleet_summary, summaries
from sessions.catalog_db import CatalogUnavailable
from sessions.catalog_filters import FilterError, SessionQuery
from sessions.catalog_rows import SessionRow

bp = Blueprint("fleet", __name__)

RETRY_AFTER_S = 5


@bp.record_once
def _document(state: BlueprintSetupState) -> None:
    state.app.extensions.setdefault("openapi_paths", {}).update(OPENAPI_PATHS)


@bp.get("/fleet")
def nodes() -> ResponseReturnValue:
    """Every node that ever wrote a heartbeat to the catalog, by id; ``online`` false once its last
    heartbeat is older than three of its intervals."""
    view = fleet()
    try:
        seen = view.nodes()
    except CatalogUnavailable as exc:
        return _unavailable(f"the fleet cannot be listed now: {exc}")
    cfg = settings().config
    return jsonify(
        {
            "node_id": view.node_id,
            "shared": cfg.catalog.shared,
            "heartbeat_s": cfg.catalog.heartbeat_s,
            "nodes": [n.to_json() for n in seen],
        }
    )


def fleet_page(filters: SessionQuery, limit: int, offset: int) -> ResponseReturnValue | None:
    """``GET /sessions`` across the fleet, or None when this node's own catalog answers it (no
    ``node``, this node's id, or ``all`` without a shared catalog)."""
    view = fleet()
    try:
        if view.lists_here(filters):
            return None
    except FilterError as exc:
        details = [{"index": None, "field": exc.param, "message": str(exc)}]
        return jsonify(error_body(f"bad filter {exc}", details)), 400
    try:
        page = view.sessions(filters, limit, offset)
    except CatalogUnavailable as exc:
        return _unavailable(f"the fleet's sessions cannot be listed now: {exc}")
    urls = view.node_urls() if any(r.node_id != view.node_id for r in page.rows) else {}
    return jsonify(
        {
            "sessions": [_item(row, view.node_id, urls) for row in page.rows],
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "catalog": "ready",
            "node": filters.node,
            "shared": True,
        }
    )


def _item(row: SessionRow, here: str, urls: dict[str, str | None]) -> dict[str, object]:
    """A session of this node as its own listing shows it (thumbnails and all); another's from its row."""
    folder = paths().save_dir / row.session_id
    if row.node_id == here and folder.is_dir():
        return {**summaries.summary(folder), "remote": False, **catalog_fields(row)}
    return {**fleet_summary(row, urls.get(row.node_id)), **catalog_fields(row)}


def _unavailable(message: str) -> ResponseReturnValue:
    resp = jsonify(error_body(message))
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp, 503


OPENAPI_PATHS = {
    "/fleet": {
        "get": {
            "summary": "Every node of the fleet: online (a heartbeat within three intervals), its job, links",
            "responses": {
                "200": answer(FleetPage, "the nodes, by id"),
                "503": error("the shared catalog does not answer (Retry-After)"),
                **AUTH_ERR,
            },
        }
    },
}
