"""Pure checks of a client's values, shared by every layer that validates a request (no I/O).

The batch validator (service/batches/validation.py) and the scan validator (service/scans/spec.py)
both check a target against the limits of the positioning command that drives it, and both repeat a client's
values in their messages the same bounded way; the rules live here, below both. An angle in
hundredths of a degree is refused in words that name the unit and the value meant
(:func:`target_problem`); a command id a typo away from a configured one is found by
:func:`near_misses`.

Bounds on what any answer or record repeats (docs/operations/security.md): :func:`bounded_error` is the
one place an error answer is cut to size (api/errors.py ``error_body`` builds every error answer with
it, and the history keeps refusals through it), :func:`clip` the one place a value is cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
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


# One problem of a refused request, as the error answer's ``details`` list it.
Detail = dict[str, Any]


def detail(index: int | None, field: str, message: str) -> Detail:
    """``{"index", "field", "message"}``: where in the request (the command or pose index, None for the
    body) and which field is wrong, and what is wrong with it; the field name is clipped."""
    return {"index": index, "field": clip(field), "message": message}


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


# A state field (and so the argument of the command driving it: a settle compares the two) whose
# name ends so holds whole hundredths of a degree (docs/protocol.md §2: pan_deg_x100, tilt_deg_x100).
DEG_X100_SUFFIX = "_deg_x100"
HUNDREDTHS = "hundredths of a degree"


def in_hundredths(spec: PositioningCommand) -> bool:
    """Whether the positioning command ``spec`` takes hundredths of a degree (by its field's name)."""
    return spec.field.rsplit(".", 1)[-1].endswith(DEG_X100_SUFFIX)


def degrees_text(x100: float) -> str:
    """Hundredths of a degree as a person reads them: ``4500`` as ``45°``, ``-1250`` as ``-12.5°``."""
    return f"{x100 / 100:.2f}".rstrip("0").rstrip(".") + "°"


def target_problem(value: Any, spec: PositioningCommand) -> str | None:
    """Why ``value`` cannot be the target of the positioning command ``spec``, or None. For an angle
    in hundredths of a degree the message says so and gives the value that was likely meant."""
    angle = in_hundredths(spec)
    if spec.integer and not (isinstance(value, int) and not isinstance(value, bool)):
        if angle and is_number(value):
            return _not_whole_hundredths(value, spec)
        unit = f" ({HUNDREDTHS}, e.g. 4500 for 45°)" if angle else ""
        return f"must be an integer{unit}, got {json_type(value)}"
    if not is_number(value):
        return f"must be a number, got {json_type(value)}"
    if not _within(value, spec):
        bounds = f"{echo(value)} is out of range [{fmt_bound(spec.min)}, {fmt_bound(spec.max)}]"
        if not angle:
            return bounds
        unit = f"{spec.arg} takes {HUNDREDTHS}{_degree_span(spec)}"
        return f"{bounds}: {unit}, so {echo(value)} is {degrees_text(value)}"
    return None


def _within(value: float, spec: PositioningCommand) -> bool:
    return (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)


def _degree_span(spec: PositioningCommand) -> str:
    if spec.min is None or spec.max is None:
        return ""
    return f" ({degrees_text(spec.min)} to {degrees_text(spec.max)})"


def _not_whole_hundredths(value: float, spec: PositioningCommand) -> str:
    """``45.5`` (degrees, likely: a full turn at most) or ``4500.0`` (a whole number written with a
    decimal point) for an angle the rig takes in whole hundredths of a degree."""
    if abs(value) <= 360:
        meant = round(value * 100)
        message = f"{echo(value)} looks like degrees: {spec.arg} takes {HUNDREDTHS}, e.g. {meant}"
        if not _within(meant, spec):
            message += f", but {degrees_text(meant)} is out of range{_degree_span(spec)}"
        return message
    whole = round(value)
    return (
        f"{echo(value)} is not an integer: {spec.arg} takes whole {HUNDREDTHS}, "
        f"e.g. {whole} for {degrees_text(whole)}"
    )


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b`` (insertions, deletions, substitutions), or ``limit + 1``
    when it is more than ``limit``: strings whose lengths differ by more are not compared at all,
    so the work stays small whatever a client sends."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return min(previous[-1], limit + 1)


def near_misses(word: str, known: Iterable[str], limit: int = 2) -> list[str]:
    """The entries of ``known`` that ``word`` is a typo of: not equal, but within ``limit`` edits
    (letter case ignored), closest first."""
    lowered = word.lower()
    found = [
        (distance, name)
        for name in known
        if name != word and (distance := edit_distance(lowered, name.lower(), limit)) <= limit
    ]
    return [name for _, name in sorted(found)]
