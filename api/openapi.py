"""The OpenAPI 3.0 description of every endpoint, served at ``GET /openapi.json``.

Kept beside the routes and checked against the live service by schemathesis in CI
(tests/test_openapi.py), so it cannot drift from what the service really answers.
"""

from __future__ import annotations

from typing import Any

from service.job import JobPhase

NUM_OR_NULL = {"type": "number", "nullable": True}
STR_OR_NULL = {"type": "string", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "details"],
        "properties": {
            "error": {"type": "string", "description": "what is wrong, in words"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "field", "message"],
                    "properties": {
                        "index": {"type": "integer", "nullable": True, "description": "item of requests"},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
            "details_omitted": {
                "type": "integer",
                "minimum": 1,
                "description": "problems found beyond those listed (details holds at most 20)",
            },
            "history_id": {"type": "string"},
            "type": {"type": "string"},
            "host": {"type": "string", "description": "421: the Host name that was refused"},
        },
    },
    "Command": {
        "type": "object",
        "required": ["target_id", "device_id", "command_id"],
        "properties": {
            "target_id": {"type": "string", "minLength": 1, "example": "entity"},
            "device_id": {"type": "string", "minLength": 1, "example": "acikgoz_pantilt"},
            "command_id": {"type": "string", "minLength": 1, "example": "set_pan_position_degree"},
            "args": {"type": "object", "example": {"pan_position_deg_x100": 4500}},
        },
        "additionalProperties": False,
    },
    "Batch": {
        "type": "object",
        "required": ["requests"],
        "properties": {
            "requests": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {"$ref": "#/components/schemas/Command"},
            }
        },
        "additionalProperties": False,
    },
    "Result": {
        "type": "object",
        "required": ["request", "status"],
        "properties": {
            "request": {},
            "status": {"type": "string", "enum": ["ok", "failed", "skipped"]},
            "status_code": {"type": "integer", "nullable": True},
            "response": {},
            "error": STR_OR_NULL,
            "transport": {"type": "string"},
            "sent_at": {"type": "number"},
            "session_id": {"type": "string"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["session_id", "path", "status", "cameras"],
        "properties": {
            "session_id": {"type": "string"},
            "path": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["complete", "partial", "failed", "cancelled", "incomplete"],
            },
            "record_started_at": NUM_OR_NULL,
            "record_ended_at": NUM_OR_NULL,
            "missing_frames": {"type": "integer"},
            "stream_outages": {"type": "integer"},
            "cameras": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["frame_count", "rejected_frames"],
                    "properties": {
                        "frame_count": {"type": "integer"},
                        "rejected_frames": {"type": "integer"},
                    },
                },
            },
        },
    },
    "Job": {
        "type": "object",
        "required": ["job_id", "status", "phase"],
        "properties": {
            "job_id": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"],
            },
            "phase": {
                "type": "string",
                "enum": [str(p) for p in JobPhase],
            },
            "created_at": {"type": "number"},
            "started_at": NUM_OR_NULL,
            "finished_at": NUM_OR_NULL,
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
            "session": {"allOf": [{"$ref": "#/components/schemas/Session"}], "nullable": True},
            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
            "progress": {"type": "object"},
            "error": {"type": "object", "nullable": True},
            "final_pose": {"type": "object", "nullable": True},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["job_id", "status", "status_url"],
        "properties": {
            "job_id": {"type": "string"},
            "status": {"type": "string"},
            "status_url": {"type": "string"},
            "message": {"type": "string"},
        },
    },
    "Config": {
        "type": "object",
        "description": "config.json (see README); secrets show as ***: api.token, mqtt.password, and "
        "credentials inside URLs (user:password@, ?token=…)",
    },
}


def json_response(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _obj(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


ERR = "#/components/schemas/Error"
AUTH_ERR = {
    "401": {
        **json_response(ERR, "missing or wrong token (only when api.token is set)"),
        "headers": {
            "WWW-Authenticate": {
                "description": 'always Bearer realm="rigcapture"',
                "schema": {"type": "string"},
            }
        },
    }
}
# Every path answers 421 to a Host that is not one of the service's names (api._check_host), but these.
HOST_OPEN_PATHS = frozenset({"/healthz"})
WRONG_HOST = {
    "421": json_response(
        ERR, "the Host header is not one of the service's names (DNS-rebinding guard; see api.allowed_hosts)"
    )
}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})

PROCESS = {
    "summary": "Run a batch: move, wait until settled, record, save",
    "parameters": [
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": True},
            "description": "false: answer 202 at once and follow status_url",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
    },
    "responses": {
        "200": {
            "description": "the job finished (status says how)",
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Job"},
                            {
                                "type": "object",
                                "required": ["message"],
                                "properties": {"message": {"type": "string"}},
                            },
                        ]
                    }
                }
            },
        },
        "202": json_response("#/components/schemas/Accepted", "queued; follow status_url"),
        "400": json_response(ERR, "invalid batch or body; nothing was executed"),
        "413": json_response(ERR, "body over api.max_body_bytes"),
        "415": json_response(ERR, "Content-Type is not application/json"),
        "503": json_response(ERR, "broker not connected or queue full; nothing was executed"),
        "507": json_response(ERR, "would leave less than storage.min_free_mb free; nothing was executed"),
        **AUTH_ERR,
    },
}

JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]

PATHS: dict[str, Any] = {
    "/process-request": {"post": {**PROCESS, "operationId": "processRequest"}},
    "/process-requests": {"post": {**PROCESS, "operationId": "processRequests"}},
    "/jobs": {
        "get": {
            "summary": "Jobs since the service started, newest first",
            "responses": {
                "200": _obj(
                    "jobs",
                    {
                        "type": "object",
                        "required": ["jobs"],
                        "properties": {
                            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}
                        },
                    },
                ),
                **AUTH_ERR,
            },
        }
    },
    "/jobs/{job_id}": {
        "get": {
            "summary": "One job",
            "parameters": JOB_ID,
            "responses": {
                "200": json_response("#/components/schemas/Job", "the job"),
                "404": json_response(ERR, "no such job"),
                **AUTH_ERR,
            },
        },
        "delete": {
            "summary": "Cancel a queued job or stop a running recording early",
            "parameters": JOB_ID,
            "responses": {
                "202": json_response("#/components/schemas/Job", "cancel requested"),
                "404": json_response(ERR, "no such job"),
                "409": json_response(ERR, "already finished"),
                **AUTH_ERR,
            },
        },
    },
    "/history": {
        "get": {
            "summary": "A page of the request history, counted from the newest (archives included)",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "default": 100},
                    "description": "entries in the page, at most 1000 (more gives 1000; 0 or none gives 100)",
                },
                {
                    "name": "offset",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "default": 0},
                    "description": "newest entries to skip: the newer page's next_offset (negative is 0)",
                },
            ],
            "responses": {
                "200": _obj(
                    "the page, oldest first as in history.json",
                    {
                        "type": "object",
                        "required": ["requests", "total", "limit", "offset", "next_offset"],
                        "properties": {
                            "requests": {"type": "array", "items": {"type": "object"}},
                            "total": {"type": "integer", "description": "entries in the whole history"},
                            "limit": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "next_offset": {
                                "type": "integer",
                                "nullable": True,
                                "description": "the offset of the older page; null at the oldest",
                            },
                        },
                    },
                ),
                **AUTH_ERR,
            },
        }
    },
    "/status": {
        "get": {
            "summary": "Broker, devices (latest state, age, settled), streams, cameras, the upload queue "
            "(uploads: sessions_pending, bytes_pending, rate_mb_s, last_error), the save folder's free space "
            "(disk: folder, free_mb, total_mb, min_free_mb, warning), the session catalog (catalog: state)",
            "responses": {
                "200": _obj(
                    "rig status", {"type": "object", "required": ["broker", "devices", "streams", "cameras"]}
                ),
                **AUTH_ERR,
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness; never needs the token",
            "responses": {
                "200": _obj(
                    "ok or degraded",
                    {
                        "type": "object",
                        "required": ["status", "broker_connected", "streams_connected"],
                        "properties": {
                            "status": {"type": "string", "enum": ["ok", "degraded"]},
                            "broker_connected": {"type": "boolean"},
                            "streams_connected": {"type": "boolean"},
                        },
                    },
                )
            },
        }
    },
    "/config": {
        "get": {
            "summary": "The configuration in force (secrets redacted)",
            "description": "api.token, mqtt.password and credentials inside invoke_url and stream urls "
            "show as ***; sent back by PUT they mean unchanged.",
            "responses": {"200": json_response("#/components/schemas/Config", "config"), **AUTH_ERR},
        },
        "put": {
            "summary": "Merge into the configuration in force, validate, save to config.json, apply",
            "description": "The body is merged into the configuration in force: objects key by key, "
            "lists and scalars replace, null sets null (and removes an entry of cameras or "
            "positioning_commands). The result is validated like config.json at start, saved "
            "atomically and in force from the next job. A value sent as GET shows it (***) is "
            "unchanged. api.token, api.host, api.port, api.allowed_hosts and storage_roots change "
            "only in config.json itself (403); save_dir, images_data_dir and history_file must stay "
            "inside the folder of config.json or a storage_roots folder and off the service's own "
            "files (403). A refused request saves nothing; details name each key.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Config"}}},
            },
            "responses": {
                "200": _obj(
                    "saved", {"type": "object", "required": ["message", "changed", "restart_required"]}
                ),
                "400": json_response(ERR, "invalid configuration or unknown key; nothing saved"),
                "403": json_response(ERR, "a file-only key, or a path outside the allowed folders"),
                "409": json_response(ERR, "no config file, or config.json on disk does not load"),
                "413": json_response(ERR, "body too large"),
                "415": json_response(ERR, "not JSON"),
                **AUTH_ERR,
            },
        },
    },
    "/openapi.json": {
        "get": {"summary": "This document", "security": [], "responses": {"200": _obj("OpenAPI 3.0")}}
    },
}

# -- presets (api/presets.py) ---------------------------------------------------------------------
PRESET_REF = "#/components/schemas/Preset"
SCHEMAS["PresetValues"] = {
    "type": "object",
    "required": ["pan_deg_x100", "tilt_deg_x100"],
    "properties": {
        "pan_deg_x100": {"type": "number", "example": 4500, "description": "within the pan command's limits"},
        "tilt_deg_x100": {
            "type": "number",
            "example": -1000,
            "description": "within the tilt command's limits",
        },
        "zoom": {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "description": "camera id (a camera with a zoom) → zoom value, within its zoom command's limits",
            "example": {"cameradevice_swir_1": 200},
        },
    },
    "additionalProperties": False,
}
SCHEMAS["Preset"] = {
    "type": "object",
    "required": ["name", "pan_deg_x100", "tilt_deg_x100", "zoom"],
    "properties": {
        "name": {"type": "string"},
        "pan_deg_x100": {"type": "number"},
        "tilt_deg_x100": {"type": "number"},
        "zoom": {"type": "object", "additionalProperties": {"type": "number"}},
        "saved_at": NUM_OR_NULL,
        "message": {"type": "string"},
    },
}
PRESET_NAME = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "example": "gate"},
        "description": "1 to 64 characters of A-Z, a-z, 0-9, _ . -",
    }
]
PRESET_SAVED = {
    "201": json_response(PRESET_REF, "stored under a new name"),
    "200": json_response(PRESET_REF, "replaced the preset of that name"),
}
PRESET_PATHS: dict[str, Any] = {
    "/presets": {
        "get": {
            "summary": "Every preset, by name",
            "responses": {
                "200": _obj(
                    "the presets (warning: presets.json was damaged and set aside at start)",
                    {
                        "type": "object",
                        "required": ["presets"],
                        "properties": {
                            "presets": {"type": "array", "items": {"$ref": PRESET_REF}},
                            "warning": {"type": "string"},
                        },
                    },
                ),
                **AUTH_ERR,
            },
        }
    },
    "/presets/{name}": {
        "get": {
            "summary": "One preset",
            "parameters": PRESET_NAME,
            "responses": {
                "200": json_response(PRESET_REF, "the preset"),
                "404": json_response(ERR, "no such preset"),
                **AUTH_ERR,
            },
        },
        "put": {
            "summary": "Store a pose under a name (presets.json)",
            "description": "Values are checked against the limits of the configured positioning commands; "
            "zoom keys must be cameras with a zoom. A refused request saves nothing.",
            "parameters": PRESET_NAME,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PresetValues"}}},
            },
            "responses": {
                **PRESET_SAVED,
                "400": json_response(
                    ERR, "invalid name, body or value (details name the field); nothing saved"
                ),
                "404": json_response(ERR, "the name holds '/': no such path"),
                "413": json_response(ERR, "body too large"),
                "415": json_response(ERR, "not JSON"),
                "500": json_response(ERR, "presets.json could not be written; nothing saved"),
                **AUTH_ERR,
            },
        },
        "post": {
            "summary": "Store the pose the rig holds now under a name (?from=current)",
            "parameters": [
                *PRESET_NAME,
                {
                    "name": "from",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "enum": ["current"]},
                },
            ],
            "responses": {
                **PRESET_SAVED,
                "400": json_response(ERR, "invalid name, or ?from=current missing; nothing saved"),
                "404": json_response(ERR, "the name holds '/': no such path"),
                "409": json_response(ERR, "the pose is not known yet, or outside the limits; nothing saved"),
                "500": json_response(ERR, "presets.json could not be written; nothing saved"),
                **AUTH_ERR,
            },
        },
        "delete": {
            "summary": "Delete a preset",
            "parameters": PRESET_NAME,
            "responses": {
                "200": _obj(
                    "deleted",
                    {
                        "type": "object",
                        "required": ["message", "name"],
                        "properties": {"message": {"type": "string"}, "name": {"type": "string"}},
                    },
                ),
                "404": json_response(ERR, "no such preset"),
                "500": json_response(ERR, "presets.json could not be written; nothing deleted"),
                **AUTH_ERR,
            },
        },
    },
}
PATHS.update(PRESET_PATHS)


def spec(extra_paths: dict[str, Any] | None = None, token: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "rigcapture",
            "version": "0.1.0",
            "description": "Drive the pan-tilt rig and record its cameras (see README.md).",
        },
        "servers": [{"url": "/"}],
        "paths": with_host_check({**PATHS, **(extra_paths or {})}),
        "components": {"schemas": SCHEMAS},
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def with_host_check(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with the 421 answer on every operation but those of HOST_OPEN_PATHS (copies: the
    module's dicts, some shared between operations, stay as they are)."""
    out: dict[str, Any] = {}
    for path, item in paths.items():
        if path in HOST_OPEN_PATHS:
            out[path] = item
            continue
        out[path] = {
            key: {**op, "responses": {**op["responses"], **WRONG_HOST}} if key in HTTP_METHODS else op
            for key, op in item.items()
        }
    return out


# -- scans (api/scans.py) -------------------------------------------------------------------------
SCAN_REF = "#/components/schemas/Scan"
AXIS_RANGE = {
    "type": "object",
    "required": ["from", "to", "step"],
    "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}, "step": {"type": "integer"}},
    "description": "whole hundredths of a degree; from first, to only if a step lands on it",
}
SCHEMAS["ScanRequest"] = {
    "type": "object",
    "required": ["cameras", "duration_second"],
    "description": "give poses or grid (not both); checked whole before anything moves",
    "properties": {
        "cameras": {"type": "array", "items": {"type": "string"}, "description": "configured camera ids"},
        "duration_second": {"type": "number", "description": "recorded at each pose"},
        "poses": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "description": '{"pan_deg_x100", "tilt_deg_x100", "zoom"?} or {"preset": name}',
            },
        },
        "grid": {
            "type": "object",
            "properties": {
                "pan_deg_x100": AXIS_RANGE,
                "tilt_deg_x100": AXIS_RANGE,
                "order": {"type": "string", "enum": ["serpentine", "rows"]},
            },
            "description": "at most 500 poses",
        },
        "on_pose_failure": {"type": "string", "enum": ["abort", "skip"], "default": "abort"},
        "retries": {"type": "integer", "minimum": 0, "maximum": 5, "default": 0},
        "label": {"type": "string", "maxLength": 200},
    },
}
SCHEMAS["Scan"] = {
    "type": "object",
    "required": ["scan_id", "label", "status", "progress", "poses"],
    "properties": {
        "scan_id": {"type": "string"},
        "job_id": STR_OR_NULL,
        "label": STR_OR_NULL,
        "status": {
            "type": "string",
            "enum": ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"],
        },
        "created_at": NUM_OR_NULL,
        "started_at": NUM_OR_NULL,
        "finished_at": NUM_OR_NULL,
        "error": {"type": "object", "nullable": True},
        "progress": {
            "type": "object",
            "required": ["done", "total"],
            "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
        },
        "poses": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "target", "status", "session_id", "path", "settle", "error"],
                "properties": {
                    "index": {"type": "integer"},
                    "target": {"type": "object", "required": ["pan_deg_x100", "tilt_deg_x100", "zoom"]},
                    "preset": STR_OR_NULL,
                    "status": {"type": "string", "enum": ["pending", "running", "done", "failed", "skipped"]},
                    "attempts": {"type": "integer"},
                    "session_id": STR_OR_NULL,
                    "path": STR_OR_NULL,
                    "settle": {"type": "object", "nullable": True},
                    "error": {"type": "object", "nullable": True},
                },
            },
        },
        "message": {"type": "string"},
    },
}
SCAN_ID = [{"name": "scan_id", "in": "path", "required": True, "schema": {"type": "string"}}]
SCAN_PATHS: dict[str, Any] = {
    "/scans": {
        "post": {
            "summary": "Start a scan: record the same cameras at each pose of a list or grid",
            "description": "One job in the queue; each pose is its own session folder (session.json "
            "carries scan_id and pose_index); the scan manifest is images_data/scans/<scan_id>.json.",
            "parameters": [
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "boolean", "default": False},
                    "description": "true: answer 200 with the scan once it finished",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScanRequest"}}},
            },
            "responses": {
                "200": json_response(SCAN_REF, "?wait=true: the scan finished (status says how)"),
                "202": _obj(
                    "queued; follow status_url",
                    {
                        "type": "object",
                        "required": ["scan_id", "status_url"],
                        "properties": {
                            "scan_id": {"type": "string"},
                            "status_url": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                ),
                "400": json_response(
                    ERR, "invalid scan (details name pose index and field); nothing executed"
                ),
                "413": json_response(ERR, "body over api.max_body_bytes"),
                "415": json_response(ERR, "Content-Type is not application/json"),
                "500": json_response(ERR, "history could not be written; nothing was executed"),
                "503": json_response(ERR, "broker not connected or queue full; nothing was executed"),
                "507": json_response(ERR, "the poses would leave less than storage.min_free_mb free"),
                **AUTH_ERR,
            },
        },
        "get": {
            "summary": "Every scan (in memory or in a scan manifest), newest first",
            "responses": {
                "200": _obj(
                    "scans",
                    {
                        "type": "object",
                        "required": ["scans"],
                        "properties": {"scans": {"type": "array", "items": {"$ref": SCAN_REF}}},
                    },
                ),
                **AUTH_ERR,
            },
        },
    },
    "/scans/{scan_id}": {
        "get": {
            "summary": "One scan: its status, progress and poses",
            "parameters": SCAN_ID,
            "responses": {
                "200": json_response(SCAN_REF, "the scan"),
                "404": json_response(ERR, "no such scan"),
                **AUTH_ERR,
            },
        },
        "delete": {
            "summary": "Cancel a scan (the pose being recorded is saved, the rest skipped)",
            "parameters": SCAN_ID,
            "responses": {
                "202": json_response(SCAN_REF, "cancel requested"),
                "404": json_response(ERR, "no such scan"),
                "409": json_response(ERR, "already finished"),
                **AUTH_ERR,
            },
        },
    },
}
SCAN_PATHS["/scans/{scan_id}/resume"] = {
    "post": {
        "summary": "Run the poses not done of a finished scan again, under the same scan id",
        "parameters": [*SCAN_ID, SCAN_PATHS["/scans"]["post"]["parameters"][0]],
        "responses": {
            **{k: v for k, v in SCAN_PATHS["/scans"]["post"]["responses"].items() if k not in ("413", "415")},
            "404": json_response(ERR, "no such scan"),
            "409": json_response(ERR, "still running, every pose done, or no longer fits the configuration"),
        },
    }
}
SCAN_PATHS["/scans/{scan_id}/papywizard.xml"] = {
    "get": {
        "summary": "The scan's poses as a Papywizard XML shoot file (yaw = pan, pitch = tilt, degrees)",
        "parameters": SCAN_ID,
        "responses": {
            "200": {
                "description": "Papywizard XML",
                "content": {"application/xml": {"schema": {"type": "string"}}},
            },
            "404": json_response(ERR, "no such scan"),
            **AUTH_ERR,
        },
    }
}
PATHS.update(SCAN_PATHS)


# -- schedules (api/schedules.py) -----------------------------------------------------------------
SCHEDULE_REF = "#/components/schemas/Schedule"
SCHEMAS["ScheduleRequest"] = {
    "type": "object",
    "description": "exactly one of scan and batch, exactly one of every_s and cron; checked whole",
    "properties": {
        "scan": {"$ref": "#/components/schemas/ScanRequest"},
        "batch": {"type": "object", "description": "a POST /process-request body"},
        "every_s": {"type": "number", "minimum": 1, "description": "seconds between runs"},
        "cron": {"type": "string", "description": "five fields, in the service machine's local time"},
        "label": {"type": "string", "maxLength": 200},
    },
}
SCHEMAS["Schedule"] = {
    "type": "object",
    "required": ["schedule_id", "kind", "request", "created_at", "next_run_at", "last_run", "runs"],
    "properties": {
        "schedule_id": {"type": "string"},
        "label": STR_OR_NULL,
        "kind": {"type": "string", "enum": ["scan", "batch"]},
        "request": {"type": "object"},
        "every_s": NUM_OR_NULL,
        "cron": STR_OR_NULL,
        "created_at": {"type": "number"},
        "next_run_at": {"type": "number", "description": "epoch seconds"},
        "last_run": {
            "type": "object",
            "nullable": True,
            "properties": {
                "at": {"type": "number"},
                "due_at": {"type": "number"},
                "status": {"type": "string"},
                "job_id": STR_OR_NULL,
                "scan_id": STR_OR_NULL,
                "error": {"type": "object", "nullable": True},
            },
        },
        "runs": {"type": "integer", "description": "runs queued"},
        "skipped": {"type": "integer", "description": "slots not queued: the previous run was unfinished"},
        "message": {"type": "string"},
    },
}
SCHEDULE_ID = [{"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string"}}]
PATHS["/schedules"] = {
    "post": {
        "summary": "Run a scan or a batch every N seconds or on a cron expression",
        "description": "Runs are queued like any job (never overlapping a capture); kept in "
        "schedules.json; a run that fell due while the service was down runs once at the next start.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScheduleRequest"}}},
        },
        "responses": {
            "201": _obj(
                "stored",
                {
                    "type": "object",
                    "required": ["schedule_id", "next_run_at"],
                    "properties": {"schedule_id": {"type": "string"}, "next_run_at": {"type": "number"}},
                },
            ),
            "400": json_response(ERR, "invalid schedule (details name the field); nothing stored"),
            "409": json_response(ERR, "too many schedules; nothing stored"),
            "413": json_response(ERR, "body over api.max_body_bytes"),
            "415": json_response(ERR, "Content-Type is not application/json"),
            "500": json_response(ERR, "schedules.json could not be written; nothing stored"),
            **AUTH_ERR,
        },
    },
    "get": {
        "summary": "Every schedule, soonest first, with its next and last run",
        "responses": {
            "200": _obj(
                "schedules (warning: schedules.json was damaged and set aside at start)",
                {
                    "type": "object",
                    "required": ["schedules"],
                    "properties": {
                        "schedules": {"type": "array", "items": {"$ref": SCHEDULE_REF}},
                        "warning": {"type": "string"},
                    },
                },
            ),
            **AUTH_ERR,
        },
    },
}
PATHS["/schedules/{schedule_id}"] = {
    "get": {
        "summary": "One schedule",
        "parameters": SCHEDULE_ID,
        "responses": {
            "200": json_response(SCHEDULE_REF, "the schedule"),
            "404": json_response(ERR, "no such schedule"),
            **AUTH_ERR,
        },
    },
    "delete": {
        "summary": "Delete a schedule (a run already queued or running goes on)",
        "parameters": SCHEDULE_ID,
        "responses": {
            "200": json_response(SCHEDULE_REF, "deleted"),
            "404": json_response(ERR, "no such schedule"),
            "500": json_response(ERR, "schedules.json could not be written; nothing deleted"),
            **AUTH_ERR,
        },
    },
}
