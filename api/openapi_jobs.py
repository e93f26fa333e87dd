"""OpenAPI: the batch and job endpoints, status, history, configuration (api/routes.py)."""

from __future__ import annotations

from typing import Any

from api.openapi_gen import answer, answer_of, body, parameters
from api.openapi_parts import AUTH_ERR, error
from api.schemas_in import Batch, HistoryQuery, JobPath, ProcessQuery
from api.schemas_out import Accepted, ConfigSaved, Health, HistoryPage, Job, JobDone, JobList, RigStatus
from rigcore.config import Config

PROCESS = {
    "summary": "Run a batch: move, wait until settled, record, save",
    "parameters": parameters(ProcessQuery, "query"),
    "requestBody": body(Batch),
    "responses": {
        "200": answer(JobDone, "the job finished (status says how)"),
        "202": answer(Accepted, "queued; follow status_url"),
        "400": error("invalid batch or body; nothing was executed"),
        "413": error("body over api.max_body_bytes"),
        "415": error("Content-Type is not application/json"),
        "503": error("broker not connected or queue full; nothing was executed"),
        "507": error("would leave less than storage.min_free_mb free; nothing was executed"),
        **AUTH_ERR,
    },
}

JOB_ID = parameters(JobPath, "path")

JOB_PATHS: dict[str, Any] = {
    "/process-request": {"post": {**PROCESS, "operationId": "processRequest"}},
    "/process-requests": {"post": {**PROCESS, "operationId": "processRequests"}},
    "/jobs": {
        "get": {
            "summary": "Jobs since the service started, newest first",
            "responses": {"200": answer(JobList, "jobs"), **AUTH_ERR},
        }
    },
    "/jobs/{job_id}": {
        "get": {
            "summary": "One job",
            "parameters": JOB_ID,
            "responses": {"200": answer(Job, "the job"), "404": error("no such job"), **AUTH_ERR},
        },
        "delete": {
            "summary": "Cancel a queued job or stop a running recording early",
            "parameters": JOB_ID,
            "responses": {
                "202": answer(Job, "cancel requested"),
                "404": error("no such job"),
                "409": error("already finished"),
                **AUTH_ERR,
            },
        },
    },
    "/history": {
        "get": {
            "summary": "A page of the request history, counted from the newest (archives included)",
            "parameters": parameters(HistoryQuery, "query"),
            "responses": {
                "200": answer(HistoryPage, "the page, oldest first as in history.json"),
                **AUTH_ERR,
            },
        }
    },
    "/status": {
        "get": {
            "summary": "Broker, devices (latest state, age, settled), streams, cameras, the upload queue "
            "(uploads: sessions_pending, bytes_pending, rate_mb_s, last_error), the save folder's free space "
            "(disk: folder, free_mb, total_mb, min_free_mb, warning), the session catalog (catalog: state)",
            "responses": {"200": answer(RigStatus, "rig status"), **AUTH_ERR},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness; never needs the token",
            "responses": {"200": answer(Health, "ok or degraded")},
        }
    },
    "/config": {
        "get": {
            "summary": "The configuration in force (secrets redacted)",
            "description": "api.token, mqtt.password and credentials inside invoke_url and stream urls "
            "show as ***; sent back by PUT they mean unchanged.",
            "responses": {"200": answer(Config, "config"), **AUTH_ERR},
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
            "requestBody": body(Config, patch=True),
            "responses": {
                "200": answer(ConfigSaved, "saved"),
                "400": error("invalid configuration or unknown key; nothing saved"),
                "403": error("a file-only key, or a path outside the allowed folders"),
                "409": error("no config file, or config.json on disk does not load"),
                "413": error("body too large"),
                "415": error("not JSON"),
                **AUTH_ERR,
            },
        },
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": answer_of(dict[str, Any], "OpenAPI 3.0")},
        }
    },
}
