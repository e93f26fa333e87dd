"""OpenAPI: the scan endpoints (api/scans.py)."""

from __future__ import annotations

from typing import Any

from api.openapi_gen import answer, body, parameters, raw
from api.openapi_parts import AUTH_ERR, error
from api.schemas_in import ScanPath, ScanQuery, ScanRequest
from api.schemas_out import Scan, ScanList, ScanQueued

SCAN_ID = parameters(ScanPath, "path")
SCAN_WAIT = parameters(ScanQuery, "query")
# The answers of starting a scan, and of resuming one (less the body's 413 and 415).
SCAN_STARTED = {
    "200": answer(Scan, "?wait=true: the scan finished (status says how)"),
    "202": answer(ScanQueued, "queued; follow status_url"),
    "400": error("invalid scan (details name pose index and field); nothing executed"),
    "500": error("history could not be written; nothing was executed"),
    "503": error("broker not connected or queue full; nothing was executed"),
    "507": error("the poses would leave less than storage.min_free_mb free"),
    **AUTH_ERR,
}
SCAN_PATHS: dict[str, Any] = {
    "/scans": {
        "post": {
            "summary": "Start a scan: record the same cameras at each pose of a list or grid",
            "description": "One job in the queue; each pose is its own session folder (session.json "
            "carries scan_id and pose_index); the scan manifest is images_data/scans/<scan_id>.json.",
            "parameters": SCAN_WAIT,
            "requestBody": body(ScanRequest),
            "responses": {
                **SCAN_STARTED,
                "413": error("body over api.max_body_bytes"),
                "415": error("Content-Type is not application/json"),
            },
        },
        "get": {
            "summary": "Every scan (in memory or in a scan manifest), newest first",
            "responses": {"200": answer(ScanList, "scans"), **AUTH_ERR},
        },
    },
    "/scans/{scan_id}": {
        "get": {
            "summary": "One scan: its status, progress and poses",
            "parameters": SCAN_ID,
            "responses": {"200": answer(Scan, "the scan"), "404": error("no such scan"), **AUTH_ERR},
        },
        "delete": {
            "summary": "Cancel a scan (the pose being recorded is saved, the rest skipped)",
            "parameters": SCAN_ID,
            "responses": {
                "202": answer(Scan, "cancel requested"),
                "404": error("no such scan"),
                "409": error("already finished"),
                **AUTH_ERR,
            },
        },
    },
    "/scans/{scan_id}/resume": {
        "post": {
            "summary": "Run the poses not done of a finished scan again, under the same scan id",
            "parameters": [*SCAN_ID, *SCAN_WAIT],
            "responses": {
                **SCAN_STARTED,
                "404": error("no such scan"),
                "409": error("still running, every pose done, or no longer fits the configuration"),
            },
        }
    },
    "/scans/{scan_id}/papywizard.xml": {
        "get": {
            "summary": "The scan's poses as a Papywizard XML shoot file (yaw = pan, pitch = tilt, degrees)",
            "parameters": SCAN_ID,
            "responses": {
                "200": raw("Papywizard XML", str, "application/xml"),
                "404": error("no such scan"),
                **AUTH_ERR,
            },
        }
    },
}
