"""The OpenAPI 3.0 pieces generated from pydantic models: the approach of FastAPI, kept small for Flask.

Every body, answer and parameter of ``GET /openapi.json`` is a model (api/schemas_in.py,
api/schemas_out.py, and the models of the service, sessions and rigcore themselves); the paths
(api/openapi_*.py) name them through the helpers here:

* :func:`ref` names a model and registers it; :func:`components` writes every registered model's
  schema (``model_json_schema``), its nested models included, as ``components.schemas``;
* :func:`parameters` turns a model's fields into path or query parameters;
* :func:`body`, :func:`answer`, :func:`error` and :func:`raw` build request bodies and answers.

pydantic writes JSON Schema 2020-12; :func:`to_oas30` turns it into OpenAPI 3.0's dialect
(``nullable``, ``enum`` for ``const``, boolean ``exclusiveMinimum``, ``example``; no ``title``, no
siblings beside a ``$ref``). Limits and enums therefore come from the code (the constants and enums
the models are written with), never typed twice.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"
JSON = "application/json"
_DROPPED = frozenset({"title", "$defs"})
_SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf"})
_SUBSCHEMAS = frozenset({"items", "additionalProperties", "not"})
_REGISTERED: dict[str, type[BaseModel]] = {}
_PATCHED: dict[str, type[BaseModel]] = {}
PATCH = "Patch"  # the suffix of a model's merge-patch variant (patch_ref)


def ref(model: type[BaseModel]) -> dict[str, Any]:
    """``{"$ref": ...}`` to ``model``'s component (registered for :func:`components`)."""
    known = _REGISTERED.setdefault(model.__name__, model)
    assert known is model, f"two models named {model.__name__} in the OpenAPI document"
    return {"$ref": REF.format(model=model.__name__)}


def patch_ref(model: type[BaseModel]) -> dict[str, Any]:
    """``{"$ref": ...}`` to the merge-patch variant of ``model`` (PUT /config): every key optional, at
    every depth, and any value may be null (null sets null, or removes an entry)."""
    _PATCHED[model.__name__] = model
    ref(model)
    return {"$ref": REF.format(model=model.__name__ + PATCH)}


def components() -> dict[str, Any]:
    """The schemas of every registered model and of the models they hold, by name (a copy)."""
    return copy.deepcopy(_components(len(_REGISTERED), len(_PATCHED)))


@functools.cache
def _components(registered: int, patched: int) -> dict[str, Any]:
    # Made once per set of models (the blueprints register theirs when imported), not per request.
    models = [(m, "validation") for m in _REGISTERED.values()]
    _, top = models_json_schema(models, ref_template=REF)  # type: ignore[arg-type]
    defs: dict[str, Any] = top.get("$defs", {})
    schemas = {name: to_oas30(schema) for name, schema in sorted(defs.items())}
    for name in sorted(_reached(schemas, list(_PATCHED))):
        schemas[name + PATCH] = _patch(schemas[name])
    return schemas


def _reached(schemas: dict[str, Any], names: list[str]) -> set[str]:
    """``names`` and every component their schemas refer to, at any depth."""
    seen: set[str] = set()
    while names:
        name = names.pop()
        if name not in seen:
            seen.add(name)
            names.extend(_refs(schemas[name]))
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [r for sub in node for r in _refs(sub)]
    if not isinstance(node, dict):
        return []
    own = [node["$ref"].rpartition("/")[2]] if "$ref" in node else []
    return own + [r for sub in node.values() for r in _refs(sub)]


def _patch(node: Any) -> Any:
    """A schema as a merge patch: no ``required``, values nullable, refs to the patch variants."""
    if isinstance(node, list):
        return [_patch(sub) for sub in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": node["$ref"] + PATCH}
    # A list is replaced whole (its items are full values); objects are merged key by key.
    out = {k: v if k == "items" else _patch(v) for k, v in node.items() if k not in ("required", "default")}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _nullable_value(v) for k, v in out["properties"].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _nullable_value(out["additionalProperties"])
    return out


def _nullable_value(schema: dict[str, Any]) -> dict[str, Any]:
    inner = {"allOf": [schema]} if "$ref" in schema else schema
    return {**inner, "nullable": True}


def schema_of(tp: Any) -> dict[str, Any]:
    """The schema of a plain type (``str``, ``bytes``, ``dict[str, Any]``...), inline."""
    return to_oas30(TypeAdapter(tp).json_schema(ref_template=REF))


# -- JSON Schema 2020-12 -> OpenAPI 3.0 ------------------------------------------------------------
def to_oas30(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: to_oas30(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS and isinstance(value, dict):
            out[key] = to_oas30(value)
        elif key in _SUBSCHEMA_LISTS:
            out[key] = [to_oas30(sub) for sub in value]
        else:
            out[key] = value
    if "$ref" in out:
        return {"$ref": out["$ref"]}  # OpenAPI 3.0 ignores whatever stands beside a $ref
    return _defaults(_exclusive(_const(_examples(_nullable(out)))))


def _nullable(out: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` as ``X`` with ``nullable: true``."""
    options = out.get("anyOf")
    if not options or not any(o.get("type") == "null" for o in options):
        return out
    rest = [o for o in options if o.get("type") != "null"]
    outer = {k: v for k, v in out.items() if k != "anyOf"}
    if len(rest) > 1:
        return {**outer, "anyOf": rest, "nullable": True}
    only = rest[0]
    inner = {"allOf": [only]} if "$ref" in only else only
    return {**inner, **outer, "nullable": True}


def _examples(out: dict[str, Any]) -> dict[str, Any]:
    if "examples" in out and isinstance(out["examples"], list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    return out


def _const(out: dict[str, Any]) -> dict[str, Any]:
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def _exclusive(out: dict[str, Any]) -> dict[str, Any]:
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if value is not None and not isinstance(value, bool):
            out[plain], out[bound] = value, True
    return out


def _defaults(out: dict[str, Any]) -> dict[str, Any]:
    # A field that may be left out (SkipJsonSchema[None]) but not sent as null has no default to show.
    if "default" in out and out["default"] is None and not out.get("nullable"):
        del out["default"]
    return out


# -- the pieces of an operation ---------------------------------------------------------------------
def parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    """``model``'s fields as parameters ``in`` path or query (by alias: ``from`` for ``from_``)."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        sub = to_oas30(prop)
        description = sub.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": where, "required": where == "path" or name in required}
        if description:
            param["description"] = description
        out.append({**param, "schema": sub})
    return out


def body(model: type[BaseModel], patch: bool = False) -> dict[str, Any]:
    """A required JSON request body: ``model``, or its merge patch (:func:`patch_ref`)."""
    return {"required": True, "content": {JSON: {"schema": patch_ref(model) if patch else ref(model)}}}


def answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A JSON answer whose body is ``model``."""
    return {"description": description, "content": {JSON: {"schema": ref(model)}}}


def answer_of(tp: Any, description: str) -> dict[str, Any]:
    """A JSON answer whose body is a plain type (``dict[str, Any]``: any object)."""
    return {"description": description, "content": {JSON: {"schema": schema_of(tp)}}}


def raw(description: str, tp: Any, *media_types: str) -> dict[str, Any]:
    """A non-JSON answer: ``bytes`` for a binary file, ``str`` for text (HTML, XML)."""
    schema = schema_of(tp)
    return {"description": description, "content": {m: {"schema": schema} for m in media_types}}
