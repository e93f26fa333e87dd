"""The request models (api/schemas_in.py) as the last check of a body the service's validators
accepted: whatever the OpenAPI document forbids is refused, so the document never promises more than
the service checks.

The service's validators run first and word every problem they find for an operator (tests and
operators' scripts read those words); this check only adds problems of the same shape
(``{"index", "field", "message"}``) for what the document forbids and they let through, which for
the bodies they accept today is nothing.

Query parameters that are numbers are read by :func:`query_int`, the one parser for them: a whole
number clamped to its range (never an OverflowError further on), anything else a 400 naming the
parameter; :func:`with_query_errors` documents that 400 on every operation that takes parameters.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from flask import jsonify, request
from pydantic import BaseModel, ValidationError

from api.errors import Refused, error_body
from api.openapi_parts import HTTP_METHODS, error
from rigcore.checks import clip, echo

Parsed = TypeVar("Parsed")
Problems = list[dict[str, Any]]

# The largest number a query parameter stands for (offsets, counts): beyond it a value is taken as
# this, so that it stays exact in JSON and fits SQLite's 64-bit integers.
MAX_QUERY_INT = 2**53
_WHOLE = re.compile(r"\s*([+-]?)([0-9]+)\s*")  # ASCII digits only (int() takes any script's)
QUERY_ERROR = error("a query parameter is not a whole number (details name it); nothing was done")


def query_int(name: str, default: int, low: int = 0, high: int = MAX_QUERY_INT) -> int:
    """``?name=`` as a whole number clamped to [low, high]; ``default`` when missing or empty.
    Anything else (``abc``, ``1.5``, ``1e3``) is refused: Refused carries the 400."""
    raw = request.args.get(name, "")
    if not raw.strip():
        return default
    found = _WHOLE.fullmatch(raw)
    if found is None:
        message = f"query parameter {name}: must be a whole number, got {echo(raw)}"
        detail = {"index": None, "field": name, "message": f"must be a whole number, got {echo(raw)}"}
        raise Refused((jsonify(error_body(message, [detail])), 400))
    sign, digits = found[1], found[2].lstrip("0")
    if len(digits) > 18:  # beyond every bound: the bound, without building the number
        return low if sign == "-" else high
    value = int(digits or "0")
    return min(max(-value if sign == "-" else value, low), high)


def with_query_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (the OpenAPI document) with the 400 of :func:`query_int` on every operation that takes
    query parameters and documents no 400 of its own (the operations are copied, not changed)."""
    doc["paths"] = {
        path: {m: _with_query_error(m, op) for m, op in item.items()} for path, item in doc["paths"].items()
    }
    return doc


def _with_query_error(method: str, op: Any) -> Any:
    if method not in HTTP_METHODS or "400" in op["responses"]:
        return op
    if not any(p.get("in") == "query" for p in op.get("parameters", [])):
        return op
    return {**op, "responses": {**op["responses"], "400": QUERY_ERROR}}


def checked(
    parsed: tuple[Parsed | None, Problems], model: type[BaseModel], body: Any
) -> tuple[Parsed | None, Problems]:
    """A validator's answer, then the model's check of a body it accepted: (result, []) or
    (None, problems)."""
    result, problems = parsed
    if result is not None:
        problems = contract_problems(model, body)
    return (result if not problems else None), problems


def refusal(what: str, problems: Problems, nothing: str, *, indexed: bool = False) -> str:
    """``invalid <what>: <field>: <message> (and N more); nothing was <nothing>`` for the first
    problem; ``indexed``: a batch's field names its command (``requests[2].args``)."""
    first = problems[0]
    where = clip(str(first["field"]))
    if indexed and first["index"] is not None:
        where = f"requests[{first['index']}].{first['field']}"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"invalid {what}: {where}: {first['message']}{more}; nothing was {nothing}"


def contract_problems(model: type[BaseModel], body: Any) -> list[dict[str, Any]]:
    """Every way ``body`` breaks ``model`` (the documented request body), or []."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [
            {"index": None, "field": clip(_where(e["loc"])), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
    return []


def _where(loc: tuple[int | str, ...]) -> str:
    """``("requests", 0, "args")`` as ``requests[0].args``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"
