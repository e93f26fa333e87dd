"""The one shape of every error answer: ``{"error": ..., "details": [...]}``, bounded.

Every error answer is built here, and cut to size here (rigcore.checks ``bounded_error``): the message,
each detail's strings, the number of details (the rest counted in ``details_omitted``), so that no
answer grows with what a client sent, whichever endpoint refused it.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from rigcore.checks import bounded_error, clip


def error_body(message: str, details: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """The one shape of every error answer, bounded (docs/operations/security.md)."""
    return bounded_error(message, details, **extra)


class Refused(Exception):
    """A request refused before its view could answer; ``answer`` is the refusal, already made (and
    recorded in history where the endpoint records refusals). create_app answers it as it is."""

    def __init__(self, answer: ResponseReturnValue) -> None:
        super().__init__("refused")
        self.answer = answer


def not_found(what: str, name: str) -> ResponseReturnValue:
    """404 ``no <what> <name>`` (the name clipped)."""
    return jsonify(error_body(f"no {what} {clip(name)}")), 404


def found(view: Any, what: str, name: str) -> ResponseReturnValue:
    """The view as JSON, or 404 when there is none."""
    return not_found(what, name) if view is None else jsonify(view)
