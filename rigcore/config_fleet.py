"""Configuration of the fleet: who this node is (``node``) and where the session catalog lives
(``catalog``). See docs/operations/fleet.md.

- ``node.id`` names this rigcapture among the fleet's (default: the machine's host name); every session
  records it (``session.json`` ``node_id``) and every catalog row carries it. ``node.url`` is how
  people and other nodes reach this node's API (its sessions in another node's listing link there).
- ``catalog.url``: absent or ``"sqlite"`` = the node's own ``catalog.sqlite`` only (one rig, the
  default); ``postgresql://user:password@host:5432/db`` = a shared catalog every node writes to
  through its outbox (sessions.outbox) and reads the whole fleet from.

``catalog.url`` and ``node.url`` change only in config.json (rigcore.config_policy: file-only), and a
password in either is shown as ``***`` (rigcore.config.redact_secrets).
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A node id: what a session id may hold (a folder name), so it is safe in URLs, file names and logs.
NODE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")
ALL_NODES = "all"  # GET /sessions?node=all: every node; never a node's id
SHARED_SCHEMES = ("postgresql://", "postgres://")
REDACTED = "***"  # rigcore.config.REDACTED (that module imports this one, so it is not imported here)
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)([^&#]+)", re.IGNORECASE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_node_id() -> str:
    """The host name, cut to what a node id may hold ("rig"-prefixed when it starts badly)."""
    name = re.sub(r"[^0-9A-Za-z_.-]", "-", socket.gethostname().split(".")[0]) or "rig"
    if not name[0].isalnum():
        name = f"rig{name}"
    return name[:64]


def redact_password(url: str) -> str:
    """``postgresql://rig:secret@db/x?password=s`` → ``postgresql://rig:***@db/x?password=***``: the
    password hidden, the user and the place kept (GET /config, /status, the log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, place = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{place}" if colon else netloc
    return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", urlunsplit(parts._replace(netloc=netloc)))


class NodeConfig(_Model):
    id: str = Field(default_factory=default_node_id)
    # How people and other nodes reach this node's API (http://rig-a.example:5000); None: not said.
    url: str | None = None

    @field_validator("id")
    @classmethod
    def _node_id(cls, value: str) -> str:
        if not NODE_ID.fullmatch(value):
            raise ValueError("1 to 64 letters, digits, '_', '.' or '-', the first a letter or digit")
        if value == ALL_NODES:
            raise ValueError(f"{ALL_NODES!r} means every node (GET /sessions?node=all); choose another id")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class CatalogConfig(_Model):
    # None or "sqlite": this node's catalog.sqlite alone; "postgresql://…": the fleet's shared catalog.
    url: str | None = None
    # Each node writes its heartbeat this often; a node silent for three intervals is offline.
    heartbeat_s: float = Field(5.0, ge=0.2)
    # The outbox: rows per transaction to the shared catalog, and the back-off after a failure
    # (doubling from retry_min_s to retry_max_s, each delay drawn between half and all of it).
    batch_rows: int = Field(500, ge=1)
    retry_min_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    # Connections to the shared catalog (psycopg_pool) and how long one may take to open or to wait for.
    pool_size: int = Field(4, ge=1)
    connect_timeout_s: float = Field(5.0, gt=0)
    # A statement that runs longer is cancelled by the server (a page, a batch of rows).
    statement_timeout_s: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _catalog_url(cls, value: str | None) -> str | None:
        if value is None or value == "sqlite" or value.startswith(SHARED_SCHEMES):
            return value
        raise ValueError('must be "sqlite" or a PostgreSQL URL (postgresql://user:password@host:5432/db)')

    @model_validator(mode="after")
    def _backoff(self) -> CatalogConfig:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must not be below retry_min_s")
        return self

    @property
    def shared(self) -> bool:
        """Whether a shared (PostgreSQL) catalog is configured."""
        return self.url is not None and self.url.startswith(SHARED_SCHEMES)


__all__ = [
    "ALL_NODES",
    "NODE_ID",
    "REDACTED",
    "CatalogConfig",
    "NodeConfig",
    "default_node_id",
    "redact_password",
]
