"""The ``foxglove`` section of config.json: the live Foxglove WebSocket server (service.live).

The server is Foxglove's own SDK (``foxglove-sdk``); it has no authentication and no TLS, so it
listens on loopback unless the operator says otherwise, and a remote engineer views it through an
SSH tunnel (docs/operations/foxglove.md). The rule that guards it, :func:`exposure_problem`, is
checked where the whole configuration is validated (``Config``, through :func:`check_exposure`): a
config.json that breaks it does not start, and ``PUT /config`` refuses a change that would break it.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

# Loopback names that need no resolving; any other name counts as reachable from the network.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


class FoxgloveConfig(BaseModel):
    """Live view in Foxglove: the cameras' images, ``/rig/state``, ``/tf`` and job events, on the
    same topics and schemas as a session's MCAP (sessions.mcap_export)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"
    # 0: any free port (tests); GET /status shows the one taken.
    port: int = Field(8765, ge=0, le=65535)
    # Live images per camera and second, at most: the newest frame is taken, older ones are skipped.
    max_fps: float = Field(2.0, gt=0, le=30)
    # "compressed": JPEG previews (mono frames through the camera's display mapping); "raw": the
    # pixels at their own depth (foxglove.RawImage). Cameras that send JPEG or PNG send it as it is.
    image: Literal["compressed", "raw"] = "compressed"
    # A host other than loopback while api.token is set: only with this set, and only in config.json
    # (PUT /config refuses it: rigcore.config_policy FILE_ONLY_KEYS).
    allow_unauthenticated: bool = False


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or a loopback name."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problem(foxglove: FoxgloveConfig, api_token: str | None) -> str | None:
    """Why ``foxglove.host`` may not be used (None: it may): the API asks for a token, but the live
    server, which has none, would listen beyond loopback without ``allow_unauthenticated``."""
    if not foxglove.enabled or not api_token or is_loopback(foxglove.host):
        return None
    if foxglove.allow_unauthenticated:
        return None
    return (
        f"{foxglove.host!r} is not a loopback address while api.token is set: the live Foxglove "
        "server has no authentication and no TLS, so anyone who reaches it sees the cameras. Keep "
        "127.0.0.1 and view it through an SSH tunnel (docs/operations/foxglove.md), or set "
        "foxglove.allow_unauthenticated to true in config.json"
    )


def check_exposure(foxglove: FoxgloveConfig, api_token: str | None) -> None:
    """For ``Config``'s own validation: the :func:`exposure_problem` as a validation error of the key
    ``foxglove.host``, so that config.json at start and ``PUT /config`` (400) both name that key."""
    problem = exposure_problem(foxglove, api_token)
    if problem is not None:
        error = PydanticCustomError("foxglove_exposed", "{problem}", {"problem": problem})
        details = InitErrorDetails(type=error, loc=("foxglove", "host"), input=foxglove.host)
        raise ValidationError.from_exception_data("Config", [details])


def exposure_warning(foxglove: FoxgloveConfig) -> str | None:
    """The warning at start when the live server listens beyond loopback (None: it does not)."""
    if not foxglove.enabled or is_loopback(foxglove.host):
        return None
    return (
        f"foxglove.host {foxglove.host!r}: the live Foxglove server (no authentication, no TLS) is "
        "reachable from the network; anyone who reaches it sees the cameras and the rig's pose"
    )


__all__ = ["FoxgloveConfig", "check_exposure", "exposure_problem", "exposure_warning", "is_loopback"]
