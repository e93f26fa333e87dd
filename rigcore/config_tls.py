"""Transport security settings (docs/operations/tls.md): the models and their rules.

- ``api.tls_cert`` / ``api.tls_key`` (fields of ``ApiConfig``): the API is served over HTTPS on
  ``api.port`` (api.server_tls); both or neither.
- ``mqtt.tls`` (:class:`MqttTlsConfig`): the broker connection over TLS (mqtt_control.link).
- ``stream_client.ca_file``: the CA that ``wss://`` stream URLs are checked against (camera.stream).

Every path is absolute or relative to the folder of config.json (rigcore.config_tls_files, applied
once at start). They are set only in config.json: ``PUT /config`` refuses to change them
(rigcore.config_policy), since they decide whom the service trusts and which key it serves.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

# Keys that name a file of the TLS settings (dotted, as in config.json).
TLS_FILE_KEYS = (
    "api.tls_cert",
    "api.tls_key",
    "mqtt.tls",
    "stream_client.ca_file",
)


class MqttTlsConfig(BaseModel):
    """The MQTT connection over TLS (paho ``tls_set``): the broker's certificate is checked against
    ``ca_file`` and its host name; ``cert_file`` and ``key_file`` are a client certificate for a
    broker that asks for one (``require_certificate true`` in mosquitto.conf)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        check_pair(self.cert_file, self.key_file, "cert_file", "key_file")
        return self


def check_pair(cert: str | None, key: str | None, cert_name: str, key_name: str) -> None:
    """A certificate and its key come together: raise ValueError naming what is missing."""
    if (cert is None) != (key is None):
        missing = key_name if key is None else cert_name
        raise ValueError(f"{missing} is missing: give {cert_name} and {key_name} together, or neither")


__all__ = ["TLS_FILE_KEYS", "MqttTlsConfig", "check_pair"]
