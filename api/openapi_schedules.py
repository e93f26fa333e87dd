"""OpenAPI: the schedule endpoints (api/schedules.py)."""

from __future__ import annotations

from typing import Any

from api.openapi_gen import answer, body, parameters
from api.openapi_parts import AUTH_ERR, error
from api.schemas_in import SchedulePath, ScheduleRequest
from api.schemas_out import Schedule, ScheduleCreated, ScheduleList

SCHEDULE_ID = parameters(SchedulePath, "path")
SCHEDULE_PATHS: dict[str, Any] = {
    "/schedules": {
        "post": {
            "summary": "Run a scan or a batch every N seconds or on a cron expression",
            "description": "Runs are queued like any job (never overlapping a capture); kept in "
            "schedules.json; a run that fell due while the service was down runs once at the next start.",
            "requestBody": body(ScheduleRequest),
            "responses": {
                "201": answer(ScheduleCreated, "stored"),
                "400": error("invalid schedule (details name the field); nothing stored"),
                "409": error("too many schedules; nothing stored"),
                "413": error("body over api.max_body_bytes"),
                "415": error("Content-Type is not application/json"),
                "500": error("schedules.json could not be written; nothing stored"),
                **AUTH_ERR,
            },
        },
        "get": {
            "summary": "Every schedule, soonest first, with its next and last run",
            "responses": {
                "200": answer(
                    ScheduleList, "schedules (warning: schedules.json was damaged and set aside at start)"
                ),
                **AUTH_ERR,
            },
        },
    },
    "/schedules/{schedule_id}": {
        "get": {
            "summary": "One schedule",
            "parameters": SCHEDULE_ID,
            "responses": {
                "200": answer(Schedule, "the schedule"),
                "404": error("no such schedule"),
                **AUTH_ERR,
            },
        },
        "delete": {
            "summary": "Delete a schedule (a run already queued or running goes on)",
            "parameters": SCHEDULE_ID,
            "responses": {
                "200": answer(Schedule, "deleted"),
                "404": error("no such schedule"),
                "500": error("schedules.json could not be written; nothing deleted"),
                **AUTH_ERR,
            },
        },
    },
}
