"""The one shape of every error answer: ``{"error": ..., "details": [...]}``."""

from __future__ import annotations

from typing import Any


def error_body(message: str, details: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """The one shape of every error answer."""
    return {"error": message, "details": details or [], **extra}
