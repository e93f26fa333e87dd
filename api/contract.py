"""The request models (api/schemas_in.py) as the last check of a body the service's validators
accepted: whatever the OpenAPI document forbids is refused, so the document never promises more than
the service checks.

The service's validators run first and word every problem they find for an operator (tests and
operators' scripts read those words); this check only adds problems of the same shape
(``{"index", "field", "message"}``) for what the document forbids and they let through, which for
the bodies they accept today is nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rigcore.checks import clip

Parsed = TypeVar("Parsed")
Problems = list[dict[str, Any]]


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
    where = first["field"]
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
