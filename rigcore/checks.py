"""Pure checks of a client's values, shared by every layer that validates a request (no I/O).

The batch validator (service/batches/validation.py) and the scan validator (service/scans/spec.py)
both check a target against the limits of the positioning command that drives it, and both repeat a client's
values in their messages the same bounded way; the rules live here, below both.
"""

from __future__ import annotations

from typing import Any

from rigcore.config import PositioningCommand
from rigcore.state import is_number

MAX_ECHO = 80  # characters of a client's value repeated in a message (then "…")


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
