"""OpenAPI: the preset endpoints (api/presets.py)."""

from __future__ import annotations

from typing import Any

from api.openapi_gen import answer, body, parameters
from api.openapi_parts import AUTH_ERR, error
from api.schemas_in import FromCurrentQuery, PresetPath
from api.schemas_out import Deleted, Preset, PresetList
from service.presets.store import PresetValues

PRESET_NAME = parameters(PresetPath, "path")
PRESET_SAVED = {
    "201": answer(Preset, "stored under a new name"),
    "200": answer(Preset, "replaced the preset of that name"),
}
PRESET_PATHS: dict[str, Any] = {
    "/presets": {
        "get": {
            "summary": "Every preset, by name",
            "responses": {
                "200": answer(
                    PresetList, "the presets (warning: presets.json was damaged and set aside at start)"
                ),
                **AUTH_ERR,
            },
        }
    },
    "/presets/{name}": {
        "get": {
            "summary": "One preset",
            "parameters": PRESET_NAME,
            "responses": {"200": answer(Preset, "the preset"), "404": error("no such preset"), **AUTH_ERR},
        },
        "put": {
            "summary": "Store a pose under a name (presets.json)",
            "description": "Values are checked against the limits of the configured positioning commands; "
            "zoom keys must be cameras with a zoom. A refused request saves nothing.",
            "parameters": PRESET_NAME,
            "requestBody": body(PresetValues),
            "responses": {
                **PRESET_SAVED,
                "400": error("invalid name, body or value (details name the field); nothing saved"),
                "404": error("the name holds '/': no such path"),
                "413": error("body too large"),
                "409": error("the store holds the most presets it may (a new name only); nothing saved"),
                "415": error("not JSON"),
                "500": error("presets.json could not be written; nothing saved"),
                **AUTH_ERR,
            },
        },
        "post": {
            "summary": "Store the pose the rig holds now under a name (?from=current)",
            "parameters": [*PRESET_NAME, *parameters(FromCurrentQuery, "query")],
            "responses": {
                **PRESET_SAVED,
                "400": error("invalid name, or ?from=current missing; nothing saved"),
                "404": error("the name holds '/': no such path"),
                "409": error("the pose is not known yet or outside the limits, or the store is full"),
                "500": error("presets.json could not be written; nothing saved"),
                **AUTH_ERR,
            },
        },
        "delete": {
            "summary": "Delete a preset",
            "parameters": PRESET_NAME,
            "responses": {
                "200": answer(Deleted, "deleted"),
                "404": error("no such preset"),
                "500": error("presets.json could not be written; nothing deleted"),
                **AUTH_ERR,
            },
        },
    },
}
