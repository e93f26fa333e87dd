"""The shared pieces of the OpenAPI description (api.openapi): the answers every path shares (errors,
the token, the Host check). The schemas themselves are generated from models (api/openapi_gen.py)."""

from __future__ import annotations

from typing import Any

from api.openapi_gen import answer, schema_of
from api.schemas_out import Error


def error(description: str) -> dict[str, Any]:
    """An error answer: ``{"error": ..., "details": [...]}``."""
    return answer(Error, description)


AUTH_ERR = {
    "401": {
        **error("missing or wrong token (only when api.token is set)"),
        "headers": {
            "WWW-Authenticate": {"description": 'always Bearer realm="rigcapture"', "schema": schema_of(str)}
        },
    }
}
# Every path answers 421 to a Host that is not one of the service's names (api._check_host), but these.
HOST_OPEN_PATHS = frozenset({"/healthz"})
WRONG_HOST = {
    "421": error(
        "the Host header is not one of the service's names (DNS-rebinding guard; see api.allowed_hosts)"
    )
}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
