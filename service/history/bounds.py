"""What the history keeps of any request, bounded (docs/operations/security.md): each string of who
sent it (``client``: address, User-Agent, the scheduler's id) at most MAX_CLIENT_CHARS, at most
MAX_CLIENT_KEYS of them, and an error answer cut as every error answer is (rigcore.checks
``bounded_error``). A refused request's body is kept as its size, SHA-256 and first characters
(service.history.store ``refused_request``); an accepted one whole, within ``api.max_body_bytes``.

Applied by HistoryStore to every entry and every change it records, whoever made them, so that no
record grows with what a client sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rigcore.checks import bounded_error_record, clip, echo

MAX_CLIENT_CHARS = 256  # a User-Agent of 200 kB keeps its first 256 characters
MAX_CLIENT_KEYS = 8


def bounded_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` (or an update's fields) with ``client`` and ``error`` bounded; the rest as it is."""
    out = dict(entry)
    if "client" in out:
        out["client"] = bounded_client(out["client"])
    if out.get("error") is not None:
        out["error"] = bounded_error_record(out["error"])
    return out


def bounded_client(client: Any) -> Any:
    if not isinstance(client, Mapping):
        return None if client is None else clip(echo(client), MAX_CLIENT_CHARS)
    items = list(client.items())[:MAX_CLIENT_KEYS]
    return {clip(str(k), 64): _bounded_value(v) for k, v in items}


def _bounded_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return clip(value if isinstance(value, str) else echo(value), MAX_CLIENT_CHARS)
