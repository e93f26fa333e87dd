"""A thin client of the rigcapture HTTP API, and the errors a command line turns into exit codes.

Exceptions::

    CliError                    message, exit_code, body (the service's JSON answer, if any)
     ├── RequestRejected        the service refused the request as invalid (HTTP 400, 413, 415, 422), or
     │                          answered that what it names is not there or not in a state for it
     │                          (HTTP 404, 409, with the service's JSON error): exit 2
     └── ServiceUnavailable     cannot reach the service, timed out, wrong answer, 5xx: exit 3
          └── AuthError         the token is missing or wrong (HTTP 401, 403): exit 3
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import requests

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

_REJECTED = frozenset({400, 413, 415, 422})
# Refused by the service itself (its JSON error says why: "no scan ...", "scan ... already succeeded");
# the same codes without that JSON error are some other server's, and say the URL is wrong.
_REFUSED_BY_SERVICE = frozenset({404, 409})


class CliError(Exception):
    """An error that ends the command with ``exit_code``."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, body: Any = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.status = status  # the HTTP status of the answer, when there was one


class RequestRejected(CliError):
    exit_code = EXIT_USAGE


class ServiceUnavailable(CliError):
    exit_code = EXIT_UNAVAILABLE


class AuthError(ServiceUnavailable):
    pass


class ApiClient:
    """Calls the service at ``url``; every call is bounded by ``timeout`` seconds. An https URL is
    checked against ``cacert`` (a PEM file of the CA or the self-signed certificate; else the
    system's CAs)."""

    def __init__(
        self, url: str, token: str | None = None, timeout: float = 10.0, cacert: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Given with every call: requests lets REQUESTS_CA_BUNDLE override a Session's own verify.
        self.verify: str | bool = cacert or True
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "rigcli"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, params=params, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self._call("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def job(self, job_id: str) -> Any:
        return self.get(f"/jobs/{quote(job_id, safe='')}")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        where = f"{self.url}{path}"
        try:
            resp = self._session.request(method, where, timeout=self.timeout, verify=self.verify, **kwargs)
        except requests.Timeout as exc:
            raise ServiceUnavailable(
                f"the service at {self.url} did not answer within {self.timeout} s"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise ServiceUnavailable(f"cannot reach the service at {self.url}: {tls_reason(exc)}") from exc
        except requests.RequestException as exc:
            raise ServiceUnavailable(unreachable(f"cannot reach the service at {self.url}", exc)) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.ok:
            if body is None:
                raise ServiceUnavailable(
                    f"{method} {where} answered {resp.status_code} without JSON: "
                    "is this a rigcapture service?"
                )
            return body
        explained = isinstance(body, dict) and bool(body.get("error"))
        message = body.get("error") if isinstance(body, dict) and explained else resp.reason
        text = f"{method} {path}: {resp.status_code} {message}"
        code = resp.status_code
        if code in (401, 403):
            raise AuthError(f"{text} (give the token with --token or RIGCAPTURE_TOKEN)", body, code)
        if code in _REJECTED or (code in _REFUSED_BY_SERVICE and explained):
            raise RequestRejected(text, body, code)
        raise ServiceUnavailable(text, body, code)


def tls_reason(exc: requests.exceptions.SSLError) -> str:
    """What a person can do about a TLS failure (the certificate is not trusted, or names another host)."""
    text = str(exc)
    found = re.search(r"certificate verify failed: ([^(')\"]+)", text)
    why = found.group(1).strip() if found else "TLS handshake failed"
    return (
        f"{why}; give the service's CA (or its self-signed certificate) with --cacert PATH or "
        "RIGCAPTURE_CACERT (docs/operations/tls.md)"
    )


START_HINT = (
    "is the service running? Start it in the checkout with: python application.py --simulate "
    "(the simulated rig; without --simulate the rig of config.json), or, installed: rigcapture"
)


def unreachable(head: str, exc: requests.RequestException) -> str:
    """``head: [Errno 111] Connection refused; is the service running? Start it ...``: the socket's
    reason and, when nothing listens there, how to start the service."""
    text = f"{head}: {reason(exc)}"
    refused = isinstance(exc, requests.ConnectionError) and re.search(
        r"refused|WinError 10061", str(exc), re.IGNORECASE
    )
    return f"{text}; {START_HINT}" if refused else text


def reason(exc: requests.RequestException) -> str:
    """The socket error in ``exc``: requests nests it a few levels deep; its "[Errno 111] Connection
    refused" says it all."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return found.group(0) if found else str(exc)
