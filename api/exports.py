"""A session in the formats other tools read: MCAP for Foxglove, and its frame sets.

==========================================  ====================================================
``GET /sessions/<id>.mcap``                 the session as MCAP (sessions/mcap_export.py), streamed
``GET /sessions/<id>/frame_sets``           ``frame_sets.json``, or computed now for an older session
                                            (``?tolerance_ms=`` computes them with that tolerance)
==========================================  ====================================================

The MCAP is made while it is sent, never stored: a session folder stays as the recording left it and
costs no second copy on disk, and the first bytes leave at once. A listed frame file that is missing
is found before the answer starts (409); a file that cannot be decoded later cuts the stream short,
which a client sees as a failed transfer (waitress closes the connection) and a file without its
MCAP footer. Paths follow the dashboard's rules: a session id names a folder directly inside
``save_dir``, never a symlink.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from flask import Blueprint, Response, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from api.context import capture_service
from api.dashboard_openapi import TOO_MANY_DOWNLOADS, SessionPath
from api.download_limits import limited
from api.openapi import AUTH_ERR, error
from api.openapi_gen import answer, parameters, raw
from api.schemas_in import Omitted
from api.session_folders import fail as _fail
from api.session_folders import session_dir
from sessions.frame_sets import FrameSets, frame_sets_of, load_frame_sets
from sessions.manifest import MANIFEST_NAME, ManifestError, SessionManifest, has_manifest, read_manifest
from sessions.mcap_export import ExportError, mcap_chunks

log = logging.getLogger(__name__)

bp = Blueprint("exports", __name__)

MAX_TOLERANCE_MS = 60_000.0


class FrameSetsQuery(BaseModel):
    tolerance_ms: Annotated[float, Field(ge=0, le=MAX_TOLERANCE_MS)] | Omitted = Field(
        None,
        description=f"match again with this tolerance (0-{MAX_TOLERANCE_MS:g} ms) instead of reading "
        "the file",
    )


_SESSION = parameters(SessionPath, "path")
# This blueprint's part of GET /openapi.json (merged in by api.routes through app.extensions).
OPENAPI_PATHS: dict[str, Any] = {
    "/sessions/{session_id}.mcap": {
        "get": {
            "summary": "The session as MCAP for Foxglove: images, /rig/state, /tf, /frame_sets, streamed",
            "parameters": _SESSION,
            "responses": {
                "200": raw(
                    "the MCAP file (zstd chunks); see README, Export to Foxglove",
                    bytes,
                    "application/octet-stream",
                ),
                "404": error("no such session, or no session.json yet"),
                "409": error("session.json unreadable, or a listed frame file is missing"),
                **TOO_MANY_DOWNLOADS,
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/frame_sets": {
        "get": {
            "summary": "One frame per camera taken at the same instant (frame_sets.json)",
            "parameters": [*_SESSION, *parameters(FrameSetsQuery, "query")],
            "responses": {
                "200": answer(FrameSets, "the frame sets"),
                "400": error("tolerance_ms is not a number in range"),
                "404": error("no such session, or no session.json yet"),
                "409": error("session.json unreadable"),
                **AUTH_ERR,
            },
        }
    },
}


@bp.record_once
def _document(state: BlueprintSetupState) -> None:
    state.app.extensions.setdefault("openapi_paths", {}).update(OPENAPI_PATHS)


@bp.get("/sessions/<session_id>.mcap")
@limited  # holds a request thread while it is sent (api.download_limits)
def session_mcap(session_id: str) -> ResponseReturnValue:
    folder = session_dir(session_id)
    manifest = _manifest(folder)
    cameras = capture_service().config.cameras
    encoded = {cam for cam, c in cameras.items() if c.pixel_format == "encoded"}
    chunks = mcap_chunks(folder, manifest, load_frame_sets(folder, manifest), encoded)
    try:
        first = next(chunks)  # every listed file is checked before this returns
    except ExportError as exc:
        _fail(409, f"session {session_id} cannot be exported: {exc}")
    resp = Response(_stream(session_id, first, chunks), mimetype="application/octet-stream")
    resp.headers["Content-Disposition"] = f'attachment; filename="{session_id}.mcap"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _stream(session_id: str, first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    try:
        yield from rest
    except Exception:
        # Raised on so the server drops the connection: the client sees a failed download rather
        # than a file that only lacks its footer.
        log.exception("MCAP export of session %s failed part way", session_id)
        raise


@bp.get("/sessions/<session_id>/frame_sets")
def session_frame_sets(session_id: str) -> ResponseReturnValue:
    folder = session_dir(session_id)
    manifest = _manifest(folder)
    raw = request.args.get("tolerance_ms")
    sets = load_frame_sets(folder, manifest) if raw is None else frame_sets_of(manifest, _tolerance(raw))
    return jsonify(sets.to_json())


def _tolerance(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_TOLERANCE_MS):
        _fail(
            400, f"tolerance_ms must be a number of milliseconds from 0 to {MAX_TOLERANCE_MS:g}, got {raw!r}"
        )
    return value


def _manifest(folder: Path) -> SessionManifest:
    if not has_manifest(folder):
        _fail(404, f"session {folder.name} has no {MANIFEST_NAME} yet (still recording, or interrupted)")
    try:
        return read_manifest(folder)
    except ManifestError as exc:
        _fail(409, str(exc))
