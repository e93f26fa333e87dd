"""The API's HTTP server: waitress, the same on Linux and Windows, over plain HTTP or TLS.

One I/O loop holds every connection and reads each request whole before one of ``api.threads`` runs
it, so idle or slow clients cost a socket, not a thread. Three rules keep a thread from being held
for as long as a client likes:

- a connection with no request running is closed after ``api.channel_timeout_s`` without traffic
  (waitress's own channel timeout);
- a connection whose answer waits to be sent and whose client has read nothing of it for
  ``api.download_send_timeout_s`` is closed (:class:`_Server`): waitress's channel timeout skips a
  connection while its request runs, and a request thread writing a large answer blocks once
  waitress's output buffer is full (``outbuf_high_watermark``, waitress/channel.py
  ``_flush_outbufs_below_high_watermark``) until the client reads, or the connection is closed;
- streamed downloads are counted per client address and in all (api.download_limits).

With ``api.tls_cert`` and ``api.tls_key`` the port speaks TLS only (api.server_tls): a TLS front
accepts, shakes hands and hands each connection, decrypted, to waitress over a socket pair with the
client's real address, so the rules above and the request history see the real client.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from flask import Flask
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from api.download_limits import install
from api.server_tls import FrontLimits, TlsFront, server_context
from rigcore.config import ApiConfig

log = logging.getLogger(__name__)

Address = tuple[str, int]


class _Trigger(Protocol):
    # waitress's wake-up pipe; its stubs type it as int and its thunks as taking an argument.
    def pull_trigger(self, thunk: Callable[[], object]) -> None: ...


class _Server(TcpWSGIServer):
    """waitress's TCP server, whose periodic check also closes connections stalled on output."""

    send_timeout_s = 30.0

    def maintenance(self, now: int) -> None:  # waitress passes time.time(), its stubs say int
        super().maintenance(now)
        cutoff = now - self.send_timeout_s
        stalled = [c for c in self._channels() if _stalled(c, cutoff)]
        if stalled:
            # Closed from a trigger thunk, once this pass over the connections is done: waitress
            # calls maintenance while it lists the descriptors to wait on, and a descriptor closed
            # then would still be handed to select() (an error on Windows).
            trigger = cast(_Trigger, self.trigger)
            trigger.pull_trigger(lambda: self._close_stalled(stalled, cutoff))

    def _channels(self) -> list[HTTPChannel]:
        # waitress's stubs type active_channels as one channel; it is {fileno: channel}.
        return list(cast(dict[int, HTTPChannel], self.active_channels).values())

    def _close_stalled(self, stalled: list[HTTPChannel], cutoff: float) -> None:
        live = self._channels()
        for channel in stalled:
            if channel not in live or not _stalled(channel, cutoff):
                continue  # closed meanwhile, or its client read again
            log.info(
                "closing the connection of %s: it has read nothing of its answer for %g s "
                "(api.download_send_timeout_s)",
                channel.addr[0] if channel.addr else "?",
                self.send_timeout_s,
            )
            # In the loop's thread: marks the channel closed and wakes a request thread waiting to
            # write, whose next write then raises ClientDisconnected (its answer is closed, its
            # download slot given back).
            channel.handle_close()


def _stalled(channel: HTTPChannel, cutoff: float) -> bool:
    """Output waits and nothing was sent (or received) since ``cutoff``. Checked under the channel's
    output lock, which a request thread holds while it adds output and tries to send it."""
    if channel.total_outbufs_len <= 0 or channel.last_activity >= cutoff:
        return False
    if not channel.outbuf_lock.acquire(blocking=False):
        return False  # a request thread is writing right now: not stalled
    try:
        return channel.total_outbufs_len > 0 and channel.last_activity < cutoff
    finally:
        channel.outbuf_lock.release()


class ApiServer:
    """The API on waitress (with the TLS front when configured). Run :meth:`serve_forever` in one
    thread, stop it with :meth:`shutdown` from another, then :meth:`close`.

    ``base_dir``: where relative ``api.tls_cert`` / ``api.tls_key`` paths start (the folder of
    config.json; application.py makes them absolute before this)."""

    def __init__(self, app: Flask, api: ApiConfig, base_dir: Path | None = None) -> None:
        self._map: dict[int, Any] = {}
        self._host = api.host
        self._sock = _listen_socket(api.host, api.port)
        try:
            context = _tls_context(api, base_dir)
        except BaseException:
            self._sock.close()
            raise
        self.scheme = "https" if context else "http"
        adj = Adjustments(
            sockets=[self._sock],
            threads=api.worker_threads(),
            connection_limit=api.connection_limit,
            channel_timeout=api.channel_timeout_s,
            # How often idle and stalled connections are looked for: often enough for short timeouts.
            cleanup_interval=max(1, int(min(30, api.channel_timeout_s, api.download_send_timeout_s) // 2)),
            # poll() has no 1024-descriptor ceiling (select() stays in use where poll is missing).
            asyncore_use_poll=True,
            # Bodies a little over api.max_body_bytes reach Flask, whose 413 names the key and is
            # kept in history; far larger ones are refused before they are read (nor spooled).
            max_request_body_size=4 * api.max_body_bytes + 65536,
            url_scheme=self.scheme,
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        # Under TLS waitress gets a socket it never listens on (the front listens on api.port); the
        # front hands it each connection (:meth:`_adopt`).
        own = socket.socket(self._sock.family, socket.SOCK_STREAM) if context else self._sock
        sockinfo = (own.family, own.type, own.proto, self._sock.getsockname())
        # As waitress's create_server builds it from a socket; it listens (_start) only without TLS.
        self._server = _Server(
            app,
            self._map,
            context is None,
            own,
            dispatcher=dispatcher,
            adj=adj,
            bind_socket=False,
            sockinfo=sockinfo,
        )
        self._server.send_timeout_s = api.download_send_timeout_s
        install(app, api)
        self._front: TlsFront | None = None
        if context is not None:
            limits = FrontLimits(
                handshake_timeout_s=float(api.channel_timeout_s),
                send_timeout_s=api.download_send_timeout_s,
                connection_limit=api.connection_limit,
            )
            self._front = TlsFront(self._sock, context, self._adopt, limits)

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """A URL that reaches the server from this machine (loopback when it listens on every address)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self._host, self._host)
        return f"{self.scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    def serve_forever(self) -> None:
        if self._front is not None:
            self._front.start()
        self._server.run()

    def shutdown(self) -> None:
        """Make :meth:`serve_forever` return; from any thread but the serving one (not a signal handler:
        it may interrupt the loop while it holds the trigger's lock)."""
        if self._front is not None:
            self._front.stop()
        try:
            # Closing every connection in the loop's own thread empties its map, which ends the loop.
            self._trigger().pull_trigger(lambda: wasyncore.close_all(self._map))
        except OSError:
            pass  # the trigger is closed: the loop has already stopped (a second Ctrl-C)

    def close(self, timeout: int = 2) -> None:
        """Stop the request threads; requests still running are abandoned (the threads are daemons)."""
        if self._front is not None:
            self._front.stop()
        wasyncore.close_all(self._map)  # no-op after shutdown; closes the socket if it never served
        self._sock.close()
        self._server.task_dispatcher.shutdown(timeout=timeout)

    def _trigger(self) -> _Trigger:
        return cast(_Trigger, self._server.trigger)

    def _adopt(self, sock: socket.socket, client: Address) -> None:
        """From the TLS front's thread: serve ``sock`` (the plain end of a decrypted connection) as a
        connection from ``client``; waitress's channels are made in its loop's thread."""
        server = self._server

        def adopt() -> None:
            server.channel_class(server, sock, client, server.adj, map=self._map)

        try:
            self._trigger().pull_trigger(adopt)
        except OSError:  # the loop has stopped
            sock.close()


def _tls_context(api: ApiConfig, base_dir: Path | None) -> ssl.SSLContext | None:
    if api.tls_cert is None or api.tls_key is None:
        return None
    base = base_dir or Path.cwd()
    return server_context(base / api.tls_cert, base / api.tls_key)


def _listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``'s first address, so a name is resolved once and port 0 means one port."""
    family, _, _, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address, family=family)


__all__ = ["ApiServer"]
