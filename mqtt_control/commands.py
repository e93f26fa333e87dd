"""Delivering one command to the rig over either transport of docs/protocol.md §3.

CommandTransport (protocol)
├── MqttTransport   publish + wait for entity_response (no answer is not a failure)
└── HttpTransport   POST to the gateway's invoke URL (non-2xx or no connection is a failure)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from mqtt_control.link import MqttLink
from rigcore.config import HttpTransportConfig
from rigcore.errors import BrokerUnavailable, CommandFailed


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    ok: bool
    status_code: int | None
    response: Any
    error: str | None
    transport: str
    sent_mono: float
    sent_at: float
    answered: bool = True

    @classmethod
    def failed(cls, transport: str, error: str) -> CommandOutcome:
        """A command that could not be delivered at all (sent now, never answered)."""
        return cls(False, None, None, error, transport, time.monotonic(), time.time(), False)

    def to_result(self, command: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": command,
            "status": "ok" if self.ok else "failed",
            "status_code": self.status_code,
            "transport": self.transport,
            "sent_at": self.sent_at,
        }
        if self.ok:
            out["response"] = self.response if self.answered else "no response"
        else:
            out["error"] = self.error
            if self.response is not None:
                out["response"] = self.response
        return out


# The device's own words in a refusal's error (the whole answer stays in the result's "response").
REFUSAL_CHARS = 200
_REASON_KEYS = ("error", "message", "detail", "reason", "status")


def refusal(head: str, response: Any) -> str:
    """``device answered status 400: unknown command``: what the device said, bounded, after ``head``.
    The text is the answer's own (a string), or its first of error, message, detail, reason, status."""
    text: Any = response
    if isinstance(response, dict):
        text = next((response[k] for k in _REASON_KEYS if isinstance(response.get(k), str | int)), None)
    if not isinstance(text, str | int) or isinstance(text, bool) or not str(text).strip():
        return head
    said = " ".join(str(text).split())
    return f"{head}: {said if len(said) <= REFUSAL_CHARS else said[:REFUSAL_CHARS] + '…'}"


class CommandTransport(Protocol):
    name: str

    async def send(self, command: dict[str, Any]) -> CommandOutcome: ...


class MqttTransport:
    name = "mqtt"

    def __init__(self, link: MqttLink) -> None:
        self._link = link

    async def send(self, command: dict[str, Any]) -> CommandOutcome:
        sent_mono, sent_at = time.monotonic(), time.time()
        try:
            answered, code, response = await self._link.request(command)
        except (CommandFailed, BrokerUnavailable) as exc:
            return CommandOutcome(False, None, None, str(exc), self.name, sent_mono, sent_at, False)
        if answered and code is not None and code >= 400:
            return CommandOutcome(
                False, code, response, refusal(f"device answered status {code}", response), self.name,
                sent_mono, sent_at,
            )  # fmt: skip
        return CommandOutcome(True, code, response, None, self.name, sent_mono, sent_at, answered)


class HttpTransport:
    name = "http"

    def __init__(self, invoke_url: str, timeouts: HttpTransportConfig) -> None:
        self._url = invoke_url
        self._timeouts = (timeouts.connect_timeout_s, timeouts.read_timeout_s)
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    async def send(self, command: dict[str, Any]) -> CommandOutcome:
        sent_mono, sent_at = time.monotonic(), time.time()
        loop = asyncio.get_running_loop()
        try:
            resp = await loop.run_in_executor(None, self._post, command)
        except requests.Timeout as exc:
            return self._failed(f"gateway {self._url} timed out: {exc}", sent_mono, sent_at)
        except requests.ConnectionError as exc:
            return self._failed(f"gateway {self._url} unreachable: {exc}", sent_mono, sent_at)
        except requests.RequestException as exc:
            return self._failed(f"request to {self._url} failed: {exc}", sent_mono, sent_at)
        body: Any
        if resp.status_code == 204 or not resp.content:
            body = "no content"
        else:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
        if not 200 <= resp.status_code < 300:
            return CommandOutcome(
                False,
                resp.status_code,
                body,
                refusal(f"gateway answered HTTP {resp.status_code}", body),
                self.name,
                sent_mono,
                sent_at,
            )
        return CommandOutcome(True, resp.status_code, body, None, self.name, sent_mono, sent_at)

    def _post(self, command: dict[str, Any]) -> requests.Response:
        return self._session.post(self._url, json=command, timeout=self._timeouts)

    def _failed(self, error: str, sent_mono: float, sent_at: float) -> CommandOutcome:
        return CommandOutcome(False, None, None, error, self.name, sent_mono, sent_at, False)
