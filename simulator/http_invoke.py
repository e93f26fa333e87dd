"""The rig gateway's HTTP invoke endpoint (docs/protocol.md §3): ``POST /api/1.0/invoke``, one command a call.

A thin stdlib ThreadingHTTPServer adapter: it reads the body and writes the JSON answer; what the
command does (and the invoke faults) is up to the ``on_invoke`` callback.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

INVOKE_PATH = "/api/1.0/invoke"
MAX_BODY_BYTES = 1 * 2**20  # a command is a few hundred bytes; refuse anything absurd
SOCKET_TIMEOUT_S = 10.0  # a client that stops mid-request cannot hold a handler thread longer

# (body bytes) -> (status, JSON-able answer or None for no body)
InvokeCallback = Callable[[bytes], tuple[int, Any]]


class _InvokeHandler(BaseHTTPRequestHandler):
    server: _InvokeServer
    timeout = SOCKET_TIMEOUT_S
    server_version = "SimRigGateway/1.0"

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != INVOKE_PATH:
            self._answer(404, {"error": f"no such endpoint {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._answer(400, {"error": "bad Content-Length"})
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self._answer(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(length)
        status, answer = self.server.on_invoke(body)
        self._answer(status, answer)

    def do_GET(self) -> None:
        self._answer(405, {"error": f"use POST {INVOKE_PATH}"})

    def _answer(self, status: int, answer: Any) -> None:
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: %s", self.address_string(), format % args)


class _InvokeServer(ThreadingHTTPServer):
    # Handler threads are joined by server_close(); a delayed answer is cut short by the rig's stop
    # event, and the socket timeout bounds a stalled client.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], on_invoke: InvokeCallback) -> None:
        self.on_invoke = on_invoke
        super().__init__(address, _InvokeHandler)


class InvokeServer:
    """Runs the invoke endpoint on its own thread."""

    def __init__(self, host: str, port: int, on_invoke: InvokeCallback) -> None:
        self._server = _InvokeServer((host, port), on_invoke)  # binds and listens now
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="simrig-http", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, join in-flight handlers and the server thread."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.server_close()
