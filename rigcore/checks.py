"""Pure checks of a client's values, shared by every layer that validates a request (no I/O).

The batch validator (service/batches/validation.py) and the scan validator (service/scans/spec.py)
both check a target against the limits of the positioning command that drives it, and both repeat a client's
values in their messages the same bounded way; the rules live here, below both.

Bounds on what any answer or record repeats (docs/operations/security.md): :func:`bounded_error` is the
one place an error answer is cut to size (api/errors.py ``error_body`` builds every error answer with
it, and the history keeps refusals through it), :func:`clip` the one place a value is cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rigcore.config import PositioningCommand
from rigcore.state import is_number as is_number  # the one finiteness check (never math.isfinite)

MAX_ECHO = 80  # characters of a client's value repeated in a message (then "…")
# An error answer (and the history's copy of it): the message, each string of a detail, the details
# listed (the rest are counted in "details_omitted"). At most ~15 kB whatever the request held.
MAX_ERROR_CHARS = 1000
MAX_DETAIL_CHARS = 300
MAX_DETAILS = 20
MAX_DETAIL_KEYS = 8  # keys of one detail ({"index", "field", "message"} and a few more)
# Characters XML 1.0 forbids anywhere (C0 controls but tab, LF and CR; surrogates; U+FFFE and U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, "…" marking the cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def echo(value: Any) -> str:
    """A client's value as a message repeats it: quoted if a string, and at most MAX_ECHO characters."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an integer with more digits than Python will print
        text = f"<an integer of about {value.bit_length() * 0.30103:.0f} digits>"
    return clip(text)


def clip_strings(value: Any, limit: int) -> Any:
    """``value`` with every string in it cut to ``limit`` (objects and lists one level deep; a
    deeper value is shown as its clipped text)."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, Mapping):
        return {clip(str(k), limit): _leaf(v, limit) for k, v in list(value.items())[:MAX_DETAIL_KEYS]}
    if isinstance(value, Sequence):
        return [_leaf(v, limit) for v in value[:MAX_DETAIL_KEYS]]
    return value


def _leaf(value: Any, limit: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value if not isinstance(value, int) or is_number(value) else echo(value)
    return clip(value if isinstance(value, str) else echo(value), limit)


def cap_details(details: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first MAX_DETAILS problems, each string in them cut to MAX_DETAIL_CHARS, and how many were
    left out."""
    shown = [clip_strings(d, MAX_DETAIL_CHARS) for d in details[:MAX_DETAILS]]
    return shown, max(len(details) - MAX_DETAILS, 0)


def bounded_error(
    message: str, details: Sequence[Mapping[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The one shape of every error answer, cut to size: ``{"error", "details"[, "details_omitted"],
    **extra}``, the message at most MAX_ERROR_CHARS, at most MAX_DETAILS details of bounded strings,
    and every string in ``extra`` clipped (a Host header, a name from the path). ``extra`` objects
    (a job's or a scan's view) are the service's own and kept whole."""
    shown, omitted = cap_details(details or [])
    body: dict[str, Any] = {"error": clip(str(message), MAX_ERROR_CHARS), "details": shown}
    if omitted:
        body["details_omitted"] = omitted
    body.update({k: clip(v, MAX_DETAIL_CHARS) if isinstance(v, str) else v for k, v in extra.items()})
    return body


def bounded_error_record(error: Any) -> Any:
    """An error as a record keeps it (the history): an error answer (``{"error": str, ...}``) bounded
    by :func:`bounded_error` again, so a record is bounded whoever built the answer; a job's error
    (``{"type", "message", ...}``: the service's and the rig's own words) as it is."""
    if not isinstance(error, Mapping) or not isinstance(error.get("error"), str):
        return error
    details = error.get("details")
    extra = {k: v for k, v in error.items() if k not in ("error", "details", "details_omitted")}
    body = bounded_error(error["error"], details if isinstance(details, list) else None, **extra)
    if isinstance(error.get("details_omitted"), int):
        body["details_omitted"] = body.get("details_omitted", 0) + error["details_omitted"]
    return body


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids, so any label makes a well-formed document
    (ElementTree escapes &, < and > but writes control characters through)."""
    return _NOT_XML.sub("", text)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON: what a stored request costs the file that keeps it."""
    return len(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8", "replace")
    )


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if is_number(value) else "a number out of range (NaN, Infinity or beyond ±1.8e308)"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def fmt_bound(value: float | None) -> str:
    """A limit as a message shows it: 18000 rather than 18000.0, "∞" for none."""
    if value is None:
        return "∞"
    return str(int(value)) if float(value).is_integer() else str(value)


def target_problem(value: Any, spec: PositioningCommand) -> str | None:
    """Why ``value`` cannot be the target of the positioning command ``spec``, or None."""
    if spec.integer and not (isinstance(value, int) and not isinstance(value, bool)):
        return f"must be an integer, got {json_type(value)}"
    if not is_number(value):
        return f"must be a number, got {json_type(value)}"
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        return f"{echo(value)} is out of range [{fmt_bound(spec.min)}, {fmt_bound(spec.max)}]"
    return None
