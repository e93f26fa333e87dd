"""The dashboard blueprint's part of ``GET /openapi.json`` (api.dashboard merges it in through
``app.extensions``; api.routes serves the whole)."""

from __future__ import annotations

from typing import Any

from api.openapi import AUTH_ERR, ERR, json_response


def _binary(description: str, *mimetypes: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "binary"}
    return {"description": description, "content": {m: {"schema": schema} for m in mimetypes}}


def _path_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, **schema},
    }


def _query_int(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer"},
    }


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


# GET /sessions's filters (sessions.catalog.query_from_params); an empty value is no filter.
_SESSION_FILTERS = [
    _query("camera", "sessions that recorded this camera", type="string", example="cameradevice_lwir_1"),
    _query(
        "status",
        "session status",
        type="string",
        enum=["complete", "partial", "failed", "cancelled", "incomplete", "unreadable"],
    ),
    _query("since", "recording started at or after (epoch s)", type="number"),
    _query("until", "recording started before (epoch s)", type="number"),
    _query("scan_id", "sessions of this scan", type="string"),
    _query("pan_min", "pan at the start >= (degrees x100)", type="integer"),
    _query("pan_max", "pan at the start <= (degrees x100)", type="integer"),
    _query("tilt_min", "tilt at the start >= (degrees x100)", type="integer"),
    _query("tilt_max", "tilt at the start <= (degrees x100)", type="integer"),
    _query("q", "a substring of the session id or its label (case-insensitive)", type="string"),
]

_SESSION_PARAM = _path_param("session_id", "a folder name in save_dir", example="20261123-203016-412")
_FILE_PARAM = _path_param(
    "file", "a path relative to the session folder; may contain /", example="session.json"
)
_IMAGES = ("image/png", "image/jpeg")

# This blueprint's part of GET /openapi.json (merged in by api.routes through app.extensions).
OPENAPI_PATHS: dict[str, Any] = {
    "/": {
        "get": {
            "summary": "The dashboard page; never needs the token",
            "security": [],
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/cameras": {
        "get": {
            "summary": "Cameras with their zoom command and limits, pan/tilt ranges, longest recording",
            "responses": {
                "200": {
                    "description": "what a client needs to build a batch",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["cameras", "pantilt", "recording"],
                                "properties": {"cameras": {"type": "array", "items": {"type": "object"}}},
                            }
                        }
                    },
                },
                **AUTH_ERR,
            },
        }
    },
    "/cameras/{camera_id}/live.{ext}": {
        "get": {
            "summary": "The camera's newest frame, 8-bit, scaled to fit ?max= (mono stretched)",
            "parameters": [
                _path_param("camera_id", "a configured camera", example="cameradevice_lwir_1"),
                _path_param(
                    "ext", "image type; a camera's own JPEG/PNG may be passed through", enum=["jpg", "png"]
                ),
                _query_int("max", "longest side in pixels (32-4096, default 640)"),
            ],
            "responses": {
                "200": _binary("the image", *_IMAGES),
                "404": json_response(ERR, "unknown camera or image type, or no frame received yet"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions": {
        "get": {
            "summary": "Sessions in save_dir, newest first, with pose, times, frame counts, thumbnail files",
            "parameters": [
                _query_int("limit", "page size (1-200, default 20)"),
                _query_int("offset", "skip"),
                *_SESSION_FILTERS,
            ],
            "responses": {
                "200": {
                    "description": "one page",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sessions", "total", "offset", "limit"],
                                "properties": {
                                    "sessions": {"type": "array", "items": {"type": "object"}},
                                    "total": {"type": "integer", "description": "sessions matching"},
                                    "catalog": {
                                        "type": "string",
                                        "enum": ["building", "refreshing", "ready", "unavailable"],
                                    },
                                    "partial": {
                                        "type": "boolean",
                                        "description": "true while the catalog is first built",
                                    },
                                },
                            }
                        }
                    },
                },
                "400": json_response(ERR, "a filter that is not valid (details name it)"),
                "503": json_response(ERR, "filters asked while the catalog is rebuilt after damage"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}": {
        "get": {
            "summary": "The session's session.json, with its upload state to the object store",
            "parameters": [_SESSION_PARAM],
            "responses": {
                "200": {
                    "description": 'the manifest as written, plus "upload": null (never queued) or '
                    "{state: pending | uploading | uploaded | failed | local-deleted, attempts, last_error, "
                    "queued_at, finished_at, next_attempt_at, objects, bytes, location}",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "404": json_response(
                    ERR, 'no such session, no manifest yet, or deleted here after its upload (then "upload")'
                ),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/files/{file}": {
        "get": {
            "summary": "A file of the session as written; ?view=1 turns an image into an 8-bit PNG",
            "parameters": [
                _SESSION_PARAM,
                _FILE_PARAM,
                {
                    "name": "view",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["1"]},
                },
            ],
            "responses": {
                "200": _binary(
                    "the file", *_IMAGES, "image/tiff", "application/json", "application/octet-stream"
                ),
                "400": json_response(ERR, "the path is absolute or has '..'"),
                "404": json_response(ERR, "no such session or file"),
                "415": json_response(ERR, "?view=1 of a file that is not a readable image"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/thumbs/{file}": {
        "get": {
            "summary": "A small 8-bit JPEG of a frame",
            "parameters": [
                _SESSION_PARAM,
                _FILE_PARAM,
                _query_int("size", "longest side (32-4096, default 160)"),
            ],
            "responses": {
                "200": _binary("the thumbnail", "image/jpeg"),
                "400": json_response(ERR, "the path is absolute or has '..'"),
                "404": json_response(ERR, "no such session or image"),
                "415": json_response(ERR, "not a readable image"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}/report": {
        "get": {
            "summary": "The session's report: one self-contained HTML page of plots (also report.html in "
            "the folder, written after each session; made here when missing or older than session.json)",
            "parameters": [_SESSION_PARAM],
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                "404": json_response(ERR, "no such session, or no manifest yet"),
                "409": json_response(ERR, "session.json cannot be read"),
                **AUTH_ERR,
            },
        }
    },
    "/sessions/{session_id}.zip": {
        "get": {
            "summary": "The session folder as a zip, streamed, files stored uncompressed",
            "parameters": [_SESSION_PARAM],
            "responses": {
                "200": _binary("the zip", "application/zip"),
                "404": json_response(ERR, "no such session"),
                **AUTH_ERR,
            },
        }
    },
}


__all__ = ["OPENAPI_PATHS"]
