"""The TLS front of the API server (api.server): HTTPS on ``api.port``, in-process, Linux and Windows.

An asyncio loop in one thread accepts on the API's port, shakes hands (TLS 1.2 or later) and hands
each connection to waitress decrypted, over a socket pair whose far end waitress serves as a
connection from the client's real address (REMOTE_ADDR, the per-client download limit and the request
history all see the client, not the front). Bytes are copied both ways; waitress's rules (channel
timeout, stalled-output timeout, threads) apply to the plain end unchanged. The front adds the same
bounds on its own side, so no connection outlives them here either:

- a client that connects and never completes the handshake is dropped after ``api.channel_timeout_s``;
- a client that stops reading is dropped once an answer has waited ``api.download_send_timeout_s`` for
  it to read (which also closes waitress's end, ending the request thread's wait);
- at most ``api.connection_limit`` connections at once; beyond it a new one is closed at once.

Why not cheroot or another TLS-capable server: waitress's guarantees (idle and half-open connections
cost a socket, not a thread) are what the edge tests hold the API to; cheroot shakes hands in its
accepting thread, so clients that connect and never shake hands stall every new connection
(docs/operations/tls.md, "Choice of server").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
Address = tuple[str, int]
HandOver = Callable[[socket.socket, Address], None]


class TlsSetupError(Exception):
    """The certificate or key cannot be loaded; the message names the key and the file."""


@dataclass(frozen=True)
class FrontLimits:
    handshake_timeout_s: float
    send_timeout_s: float
    connection_limit: int


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for ``cert`` (PEM, with its chain) and ``key``: TLS 1.2 or later, the
    library's default ciphers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for name, path in (("api.tls_cert", cert), ("api.tls_key", key)):
        if not path.is_file():
            raise TlsSetupError(f"{name}: no such file {path}")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsSetupError(
            f"api.tls_cert / api.tls_key: cannot load {cert} with {key} ({exc}); both must be PEM, "
            "the key unencrypted and matching the certificate"
        ) from exc
    return context


class TlsFront:
    """Accepts TLS connections on ``sock`` in its own thread; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext, hand_over: HandOver, limits: FrontLimits
    ) -> None:
        self._sock = sock
        self._context = context
        self._hand_over = hand_over
        self._limits = limits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open: set[asyncio.Task[None]] = set()
        self._stopped: asyncio.Event | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api tls front", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting and drop every connection; returns once the thread has ended."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self._sock, limit=CHUNK)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            for task in list(self._open):
                task.cancel()
            await asyncio.gather(*self._open, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._open) >= self._limits.connection_limit:
            writer.transport.abort()
            return
        self._open.add(task)
        _no_delay(writer)
        try:
            await self._serve(reader, writer)
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
            log.debug("TLS connection ended: %s", exc)
        except asyncio.CancelledError:
            # stop(): the handler's own task ends normally, as Python 3.11's streams log a cancelled
            # handler as an error (they ask a cancelled task for its exception).
            pass
        finally:
            self._open.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await writer.start_tls(self._context, ssl_handshake_timeout=self._limits.handshake_timeout_s)
        peer = writer.get_extra_info("peername")
        if not peer:
            return  # gone already
        inner, outer = socket.socketpair()
        try:
            plain_reader, plain_writer = await asyncio.open_connection(sock=outer, limit=CHUNK)
        except BaseException:
            inner.close()
            outer.close()
            raise
        self._hand_over(inner, (str(peer[0]), int(peer[1])))
        try:
            await self._pump(reader, writer, plain_reader, plain_writer)
        finally:
            plain_writer.transport.abort()

    async def _pump(
        self,
        tls_reader: asyncio.StreamReader,
        tls_writer: asyncio.StreamWriter,
        plain_reader: asyncio.StreamReader,
        plain_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy both ways until waitress ends the connection (or either side fails)."""
        up = asyncio.create_task(_copy(tls_reader, plain_writer, None))
        down = asyncio.create_task(_copy(plain_reader, tls_writer, self._limits.send_timeout_s))
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down not in done:
                up.result()  # the client failed: raise; it ended its side: waitress ends the rest
                await down
            down.result()
            tls_writer.close()  # the last bytes, then close_notify
            async with asyncio.timeout(self._limits.send_timeout_s):
                await tls_writer.wait_closed()
        finally:
            up.cancel()
            down.cancel()
            await asyncio.gather(up, down, return_exceptions=True)


def _no_delay(writer: asyncio.StreamWriter) -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and a socket from
    # socket.create_server has proto 0: without it, a head and body sent as two TLS records wait
    # for the client's delayed ACK (~40 ms a request on keep-alive connections).
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send_timeout: float | None
) -> None:
    """Until ``reader`` ends: then half-close ``writer`` where it can (a plain socket). A write that
    has waited ``send_timeout`` for the other side to read raises TimeoutError."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        async with asyncio.timeout(send_timeout):
            await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


__all__ = ["FrontLimits", "TlsFront", "TlsSetupError", "server_context"]
