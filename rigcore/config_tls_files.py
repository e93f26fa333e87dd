"""The TLS files a configuration names (rigcore.config_tls): made absolute against the folder of
config.json, and checked at start, so a missing file stops the start with the key's name rather than
failing later in a connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rigcore.config import Config


def _resolve(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def missing_tls_files(config: Config) -> list[str]:
    """``key: no such file <path>`` for each TLS file that is not there (checked at start)."""
    named = {"api.tls_cert": config.api.tls_cert, "api.tls_key": config.api.tls_key}
    tls = config.mqtt.tls
    if tls is not None:
        named |= {"mqtt.tls.ca_file": tls.ca_file, "mqtt.tls.cert_file": tls.cert_file}
        named["mqtt.tls.key_file"] = tls.key_file
    named["stream_client.ca_file"] = config.stream_client.ca_file
    return [f"{key}: no such file {path}" for key, path in named.items() if path and not Path(path).is_file()]


def with_tls_paths_resolved(config: Config, base: Path) -> Config:
    """``config`` with every TLS path made absolute against ``base`` (the folder of config.json)."""
    api = config.api.model_copy(
        update={
            "tls_cert": _resolve(config.api.tls_cert, base),
            "tls_key": _resolve(config.api.tls_key, base),
        }
    )
    update: dict[str, Any] = {"api": api}
    tls = config.mqtt.tls
    if tls is not None:
        resolved = tls.model_copy(
            update={
                "ca_file": _resolve(tls.ca_file, base),
                "cert_file": _resolve(tls.cert_file, base),
                "key_file": _resolve(tls.key_file, base),
            }
        )
        update["mqtt"] = config.mqtt.model_copy(update={"tls": resolved})
    ca = config.stream_client.ca_file
    if ca is not None:
        update["stream_client"] = config.stream_client.model_copy(update={"ca_file": _resolve(ca, base)})
    return config.model_copy(update=update)


__all__ = ["missing_tls_files", "with_tls_paths_resolved"]
