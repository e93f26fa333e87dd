"""moto's S3 server on 127.0.0.1 for the upload tests, one that a test can stop and start again.

moto's standalone server (``moto[server]``) is a WSGI app that speaks the S3 protocol over HTTP; this
runs that same app (``DomainDispatcherApplication``, with moto's request handler) on a threaded
werkzeug server of our own, for two things moto's ``ThreadedMotoServer`` does not do:

- **A store that goes down and comes back.** moto keeps buckets and objects in this process (its
  backends), not in the HTTP server. :meth:`S3Server.stop` closes the listening socket *and every
  open connection* (``ThreadedMotoServer.stop`` leaves keep-alive connections served), so a client
  sees connections reset and then refused, as with a store that went down. :meth:`start` listens on
  the same port again and serves the same buckets and objects: a store restarted with its disk
  intact. (A new moto *process* on the port would come back empty: not a restart of a store.)
- **A count of the writes.** ``writes[key]`` counts the requests that created an object and
  succeeded (a PUT of an object, the completion of a multipart upload): a test proves that nothing
  was uploaded twice. ``delay_s`` slows each object or part PUT, so a test can cut an upload off in
  the middle.

:meth:`enforce_auth` turns on moto's credential check (``/moto-api/reset-auth``): from then on an
access key moto does not know is refused with ``InvalidAccessKeyId``. It is process-wide in moto:
turn it off again (``enforce_auth(False)``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

import boto3
import requests
from botocore.config import Config as BotoConfig
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import ThreadedWSGIServer

# moto's request handler logs every request through werkzeug's logger: a test's output would drown.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"

_App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server, keeping its open connections so that stop() can cut them."""

    def __init__(self, port: int, app: _App) -> None:
        self.connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__("127.0.0.1", port, app, handler=MotoRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._conn_lock:
            self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._conn_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class S3Server:
    def __init__(self) -> None:
        self._app = DomainDispatcherApplication(create_backend_app)
        self.port = 0
        self.writes: Counter[str] = Counter()
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = _Server(self.port, self._wsgi)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="moto s3", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The store goes down: no new connection is accepted, and every open one is cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if self._thread is not None:
            self._thread.join(5)

    def total_writes(self) -> int:
        with self._lock:
            return sum(self.writes.values())

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=BotoConfig(s3={"addressing_style": "path"}),
        )

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of the bucket: key → bytes."""
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out

    def enforce_auth(self, on: bool) -> None:
        count = "0" if on else "inf"
        requests.post(f"{self.url}/moto-api/reset-auth", data=count.encode(), timeout=5).raise_for_status()

    def remote_config(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``storage.remote`` for config.json pointing at this server, fast back-off for tests."""
        return {
            "endpoint": self.url,
            "bucket": bucket,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": REGION,
            "retry_min_s": 0.2,
            "retry_max_s": 1.0,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 10.0,
            **extra,
        }

    # -- the WSGI wrapper ------------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        parts = unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)
        key = parts[1] if len(parts) == 2 and parts[1] else None
        creates = key is not None and (
            (method == "PUT" and "partNumber" not in query) or (method == "POST" and "uploadId" in query)
        )
        if method == "PUT" and key is not None and self.delay_s:
            time.sleep(self.delay_s)
        seen: list[str] = []

        def recording_start_response(status: str, headers: Any, *args: Any) -> Any:
            seen.append(status)
            return start_response(status, headers, *args)

        body = self._app(environ, recording_start_response)
        if creates and seen and seen[0].startswith("200"):
            with self._lock:
                self.writes[str(key)] += 1
        return body
