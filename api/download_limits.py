"""Bounds on the downloads a request thread streams: a session's zip (api.dashboard), its MCAP
(api.exports) and a byte range of a session file.

Such an answer holds one of waitress's request threads until the client has read it, or until the
server cuts a client that stopped reading off (``api.download_send_timeout_s``, api.server). So that a
few clients cannot hold every thread:

- one client address streams at most ``api.max_downloads_per_client`` downloads at once, and all
  clients together at most ``api.max_downloads``, which stays below the thread count (the default
  thread count adds ``api.max_downloads`` to what the waiting POSTs need, rigcore.config);
- beyond either, the answer is 503 with ``Retry-After``, naming the key that bounds it; nothing is
  read or sent.

A whole session file is sent by the server itself from the open file (``wsgi.file_wrapper``, waitress's
I/O loop), which holds no thread: it is not counted. A slot is held from the view's first step until
the server closes the answer (WSGI ``close``), whether it was read to the end, cut short or cut off.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, current_app, jsonify, make_response, request
from flask.typing import ResponseReturnValue

from api.context import settings
from api.errors import error_body
from rigcore.config import ApiConfig

# Seconds a refused client is asked to wait: about as long as a short download takes.
RETRY_AFTER_S = 10
EXTENSION = "download_limits"

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


@dataclass(frozen=True)
class Refused:
    """Why a download was refused: the key that bounds it and its value."""

    key: str
    limit: int

    def message(self) -> str:
        whose = "from this client address" if self.key.endswith("per_client") else "in all"
        return (
            f"too many downloads at once {whose}: at most {self.limit} (api.{self.key}); "
            f"try again in {RETRY_AFTER_S} s"
        )


class DownloadLimits:
    """Counts the downloads in progress per client address and in all (thread-safe)."""

    def __init__(self, per_client: int, total: int) -> None:
        self.total = max(1, total)
        self.per_client = max(1, min(per_client, self.total))
        self._lock = threading.Lock()
        self._by_client: Counter[str] = Counter()
        self._active = 0

    @classmethod
    def for_api(cls, api: ApiConfig) -> DownloadLimits:
        """The limits of ``api``, the total kept below the thread count so other calls keep a thread."""
        return cls(api.max_downloads_per_client, min(api.max_downloads, api.worker_threads() - 1))

    def acquire(self, client: str) -> Callable[[], None] | Refused:
        """A release function (safe to call twice), or why not."""
        with self._lock:
            if self._by_client[client] >= self.per_client:
                return Refused("max_downloads_per_client", self.per_client)
            if self._active >= self.total:
                return Refused("max_downloads", self.total)
            self._by_client[client] += 1
            self._active += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._active -= 1
                self._by_client[client] -= 1
                if self._by_client[client] <= 0:
                    del self._by_client[client]

        return release

    def active(self) -> int:
        with self._lock:
            return self._active


def install(app: Any, api: ApiConfig) -> DownloadLimits:
    """Give ``app`` (a Flask app) the limits of the server that runs it (api.server.ApiServer)."""
    limits = DownloadLimits.for_api(api)
    app.extensions[EXTENSION] = limits
    return limits


def _limits() -> DownloadLimits:
    # An app not run by ApiServer (Flask's test client) takes the limits of the configuration in force.
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, DownloadLimits.for_api(settings().config.api))
    return cast(DownloadLimits, found)


def _refusal(refused: Refused) -> Response:
    resp = jsonify(error_body(refused.message(), limit=refused.limit, key=f"api.{refused.key}"))
    resp.status_code = 503
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp


class _Held:
    """A response body that gives its slot back when the server closes it."""

    def __init__(self, body: Iterable[Any], release: Callable[[], None]) -> None:
        self._body = body
        self._release = release

    def __iter__(self) -> Iterator[Any]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release()


def _hold(resp: Response, release: Callable[[], None]) -> Response:
    # The body itself carries the release: for a direct-passthrough body (a byte range of a file)
    # the server closes the body, never the Response, so call_on_close would not run.
    resp.response = _Held(resp.response, release)
    return resp


def _sent_by_server(resp: Response) -> bool:
    """The body is the server's file wrapper: its I/O loop sends it from the file, no thread waits."""
    wrapper = request.environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(resp.response, wrapper)


def limited(view: View) -> View:
    """A streamed download: its slot is taken before the view does any work (503 when none is free)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        taken = _limits().acquire(request.remote_addr or "")
        if isinstance(taken, Refused):
            return _refusal(taken)
        try:
            resp = make_response(view(*args, **kwargs))
        except BaseException:
            taken()
            raise
        return _hold(resp, taken)

    return cast(View, guarded)


def limited_if_streamed(view: View) -> View:
    """A file: counted only when a request thread must stream it (a byte range); a whole file is sent
    by the server from the file and holds no thread."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        resp = make_response(view(*args, **kwargs))
        if _sent_by_server(resp) or not resp.is_streamed:
            return resp
        taken = _limits().acquire(request.remote_addr or "")
        if isinstance(taken, Refused):
            resp.close()
            return _refusal(taken)
        return _hold(resp, taken)

    return cast(View, guarded)


__all__ = ["RETRY_AFTER_S", "DownloadLimits", "Refused", "install", "limited", "limited_if_streamed"]
