"""The dashboard blueprint's part of ``GET /openapi.json`` (api.dashboard merges it in through
``app.extensions``; api.routes serves the whole). Parameters and answers are models
(api/openapi_gen.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.openapi import AUTH_ERR, error
from api.openapi_gen import answer, answer_of, parameters, raw
from api.schemas_in import Omitted
from api.schemas_out import CameraList, SessionPage
from sessions.catalog_filters import STATUSES
from sessions.catalog_rows import KINDS

# A download that holds a request thread while it is sent (api.download_limits), beyond its limits.
TOO_MANY_DOWNLOADS = {
    "503": error(
        "too many downloads at once (api.max_downloads_per_client, api.max_downloads); "
        "Retry-After says when to try again"
    )
}

_IMAGES = ("image/png", "image/jpeg")
_SESSION_ID = Field(min_length=1, description="a folder name in save_dir", examples=["20261123-203016-412"])
_FILE = Field(
    min_length=1,
    description="a path relative to the session folder; may contain /",
    examples=["session.json"],
)
_PanTilt = Annotated[int, Field(description="degrees x100")]


class LivePath(BaseModel):
    camera_id: str = Field(min_length=1, description="a configured camera", examples=["cameradevice_lwir_1"])
    ext: Literal["jpg", "png"] = Field(
        description="image type; a camera's own JPEG/PNG may be passed through"
    )


class LiveQuery(BaseModel):
    max: int | Omitted = Field(None, description="longest side in pixels (32-4096, default 640)")


def _filter(description: str, *examples: str) -> Any:
    """An optional query parameter: absent (or empty), no filter."""
    return Field(None, description=description, examples=list(examples) or None)


class SessionsQuery(BaseModel):
    """GET /sessions: the page, and the filters (sessions.catalog.query_from_params); an empty value
    is no filter."""

    limit: int | Omitted = _filter("page size (1-200, default 20)")
    offset: int | Omitted = _filter("skip")
    camera: str | Omitted = _filter(
        "sessions that recorded this camera: its id, or a part of one configured id (lwir, sw); a part "
        "that several ids hold is refused (400)",
        "cameradevice_lwir_1",
        "lwir",
    )
    status: Annotated[str, Field(json_schema_extra={"enum": sorted(STATUSES)})] | Omitted = _filter(
        "session status"
    )
    since: str | Omitted = _filter(
        "recording started at or after: an ISO 8601 date or time (without a zone: the service host's "
        "time zone), an age back from now (30m, 2h, 3d, 1w) or epoch seconds",
        "2026-12-06",
        "2026-12-06T14:30:00+01:00",
        "2h",
        "1796515200",
    )
    until: str | Omitted = _filter("recording started before: the same forms as since", "2026-12-07", "30m")
    scan_id: str | Omitted = _filter("sessions of this scan")
    pan_min: _PanTilt | Omitted = _filter("pan at the start >= (degrees x100)")
    pan_max: _PanTilt | Omitted = _filter("pan at the start <= (degrees x100)")
    tilt_min: _PanTilt | Omitted = _filter("tilt at the start >= (degrees x100)")
    tilt_max: _PanTilt | Omitted = _filter("tilt at the start <= (degrees x100)")
    q: str | Omitted = _filter("a substring of the session id or its label (case-insensitive)")
    kind: Annotated[str, Field(json_schema_extra={"enum": list(KINDS)})] | Omitted = _filter(
        "recordings, or event captures"
    )
    node: str | Omitted = _filter(
        "all: every node's sessions (the shared catalog; without one, this node's); a node's id: its "
        "sessions. Absent: this node's (docs/operations/fleet.md)"
    )


class SessionPath(BaseModel):
    session_id: str = _SESSION_ID


class SessionFilePath(BaseModel):
    session_id: str = _SESSION_ID
    file: str = _FILE


class ViewQuery(BaseModel):
    view: Literal["1"] | Omitted = None


class ThumbQuery(BaseModel):
    size: int | Omitted = Field(None, description="longest side (32-4096, default 160)")


_SESSION = parameters(SessionPath, "path")
_SESSION_FILE = parameters(SessionFilePath, "path")
_HTML = raw("HTML", str, "text/html")

# This blueprint's part of GET /openapi.json (merged in by api.routes through app.extensions).
OPENAPI_PATHS: dict[str, Any] = {
    "/": {
        "get": {
            "summary": "The dashboard page; never needs the token",
            "security": [],
            "responses": {"200": _HTML},
        }
    },
    "/cameras": {
        "get": {
            "summary": "Cameras with their zoom command and limits, pan/tilt ranges, longest recording",
            "responses": {"200": answer(CameraList, "what a client needs to build a batch"), **AUTH_ERR},
        }
    },
    "/cameras/{camera_id}/live.{ext}": {
        "get": {
            "summary": "The camera's newest frame, 8-bit, scaled to fit ?max= (mono stretched)",
            "parameters": [*parameters(LivePath, "path"), *parameters(LiveQuery, "query")],
            "responses": {
                "200": raw("the image", bytes, *_IMAGES),
                "404": error("unknown camera or image type, or no frame received yet"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions": {
        "get": {
            "summary": "Sessions in save_dir, newest first, with pose, times, frame counts, thumbnail files",
            "parameters": parameters(SessionsQuery, "query"),
            "responses": {
                "200": answer(SessionPage, "one page"),
                "400": error("a filter that is not valid (details name it)"),
                "503": error("filters asked while the catalog is rebuilt after damage"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}": {
        "get": {
            "summary": "The session's session.json, with its upload state to the object store",
            "parameters": _SESSION,
            "responses": {
                "200": answer_of(
                    dict[str, Any],
                    'the manifest as written, plus "upload": null (never queued) or '
                    "{state: pending | uploading | uploaded | failed | local-deleted, attempts, last_error, "
                    "queued_at, finished_at, next_attempt_at, objects, bytes, location}",
                ),
                "404": error(
                    'no such session, no manifest yet, or deleted here after its upload (then "upload")'
                ),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/files/{file}": {
        "get": {
            "summary": "A file of the session as written; ?view=1 turns an image into an 8-bit PNG",
            "parameters": [*_SESSION_FILE, *parameters(ViewQuery, "query")],
            "responses": {
                "200": raw(
                    "the file", bytes, *_IMAGES, "image/tiff", "application/json", "application/octet-stream"
                ),
                "400": error("the path is absolute or has '..'"),
                "404": error("no such session or file"),
                "415": error("?view=1 of a file that is not a readable image"),
                **TOO_MANY_DOWNLOADS,
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/thumbs/{file}": {
        "get": {
            "summary": "A small 8-bit JPEG of a frame",
            "parameters": [*_SESSION_FILE, *parameters(ThumbQuery, "query")],
            "responses": {
                "200": raw("the thumbnail", bytes, "image/jpeg"),
                "400": error("the path is absolute or has '..'"),
                "404": error("no such session or image"),
                "415": error("not a readable image"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/report": {
        "get": {
            "summary": "The session's report: one self-contained HTML page of plots (also report.html in "
            "the folder, written after each session; made here when missing or older than session.json)",
            "parameters": _SESSION,
            "responses": {
                "200": _HTML,
                "404": error("no such session, or no manifest yet"),
                "409": error("session.json cannot be read"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}.zip": {
        "get": {
            "summary": "The session folder as a zip, streamed, files stored uncompressed",
            "parameters": _SESSION,
            "responses": {
                "200": raw("the zip", bytes, "application/zip"),
                "404": error("no such session"),
                **TOO_MANY_DOWNLOADS,
                **AUTH_ERR,
            },
        }
    },
}


__all__ = ["OPENAPI_PATHS", "TOO_MANY_DOWNLOADS", "SessionPath"]
