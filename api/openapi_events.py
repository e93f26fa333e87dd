"""OpenAPI: the event endpoints (api/events.py)."""

from __future__ import annotations

from typing import Any

from api.openapi_gen import answer, body, parameters
from api.openapi_parts import AUTH_ERR, error
from api.schemas_in import EventPath, EventQuery, EventRequest
from api.schemas_out import Event, EventList, EventQueued

EVENT_PATHS: dict[str, Any] = {
    "/events": {
        "post": {
            "summary": "Trigger an event: save the seconds before and after now as a session",
            "description": "The ring keeps the last events.pre_max_s of frames (docs/operations/events.md); "
            "the event's session holds [at - pre_s, at + post_s] in capture time. A trigger while an "
            "event still records its after part extends it (up to events.max_s). Served during a "
            "capture job too: the event gets its own session.",
            "parameters": parameters(EventQuery, "query"),
            "requestBody": body(EventRequest),
            "responses": {
                "200": answer(Event, "?wait=true: the event is saved (status says how)"),
                "202": answer(EventQueued, "recording; follow status_url"),
                "400": error("invalid trigger (details name each field); nothing was recorded"),
                "409": error("events are disabled, or off because the ring did not fit the memory cap"),
                "413": error("body over api.max_body_bytes"),
                "415": error("Content-Type is not application/json"),
                "500": error("no session folder could be made; nothing was recorded"),
                "503": error("too many events are being recorded at once"),
                "507": error("would leave less than storage.min_free_mb free; nothing was recorded"),
                **AUTH_ERR,
            },
        },
        "get": {
            "summary": "The events since the service started, newest first, and the ring now",
            "responses": {"200": answer(EventList, "events"), **AUTH_ERR},
        },
    },
    "/events/{event_id}": {
        "get": {
            "summary": "One event: its window, triggers, progress and session",
            "parameters": parameters(EventPath, "path"),
            "responses": {"200": answer(Event, "the event"), "404": error("no such event"), **AUTH_ERR},
        }
    },
}
