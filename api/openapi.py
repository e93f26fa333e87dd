"""The OpenAPI 3.0 description of every endpoint, served at ``GET /openapi.json``: assembled here from
the parts of each blueprint (api/openapi_*.py), whose bodies, answers and parameters are pydantic
models turned into schemas by api/openapi_gen.py.

Kept beside the routes and checked against the live service by schemathesis in CI
(tests/test_openapi.py), so it cannot drift from what the service really answers.
"""

from __future__ import annotations

from typing import Any

from api.openapi_gen import components
from api.openapi_jobs import JOB_PATHS
from api.openapi_parts import AUTH_ERR, HOST_OPEN_PATHS, HTTP_METHODS, WRONG_HOST, error
from api.openapi_presets import PRESET_PATHS
from api.openapi_scans import SCAN_PATHS
from api.openapi_schedules import SCHEDULE_PATHS

# Imported from here by the blueprints that describe their own paths (api/exports.py,
# api/dashboard_openapi.py).
__all__ = ["AUTH_ERR", "PATHS", "error", "spec", "with_host_check"]

PATHS: dict[str, Any] = {**JOB_PATHS, **PRESET_PATHS, **SCAN_PATHS, **SCHEDULE_PATHS}


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
        # Every model the paths name (the blueprints' included: they registered them when imported).
        "components": {"schemas": components()},
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
