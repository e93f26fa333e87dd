"""A small embedded MQTT 3.1.1 broker for the demo (``application.py --simulate``).

When no broker answers at the configured address, the demo starts :class:`EmbeddedBroker` on loopback
so that it needs nothing outside requirements.txt. No package from PyPI fits: amqtt 0.11.0-0.12.1 pin
``websockets==15.0.1`` (we run 17.x), amqtt 0.10.x passes ``loop=`` to asyncio and fails on Python
>= 3.10, and mqttools and moat-lib-mqtt speak only MQTT 5, which paho's MQTT 3.1.1 client does not.

What it does (MQTT 3.1.1, plus 3.1 "MQIsdp" CONNECTs):

* CONNECT/CONNACK, with wills. Username and password are read and ignored: any client may connect.
  A CONNECT whose client id is already connected disconnects the older connection.
* PUBLISH in QoS 0 and 1 (PUBACK). Incoming QoS 2 is accepted as well (PUBREC/PUBREL/PUBCOMP), and a
  resent copy is not routed twice. A subscription gets at most QoS 1, and each delivery gets the lower
  of the message's QoS and the subscription's QoS.
* SUBSCRIBE/SUBACK with ``+`` and ``#`` wildcards, and UNSUBSCRIBE/UNSUBACK. A filter that isn't
  valid gets return code 0x80 in the SUBACK. Filters that begin with a wildcard don't match topics
  that begin with ``$``.
* Retained messages: the last retained message for each topic is kept, and a retained message with
  an empty payload clears it. A new subscription first gets the retained messages that match it,
  with the retain flag set. Live deliveries have the retain flag cleared.
* PINGREQ/PINGRESP, the keep-alive limit (1.5 x the client's keep alive), and DISCONNECT.
* Sessions are clean: a client's session ends when its connection closes. CONNACK always reports
  "session present = 0", so a client that asked for clean session = 0 knows it has no stored
  session. QoS 1 messages are not resent after a reconnect.

Outgoing queue overflow policy. Each client has its own outgoing queue, bounded by
MAX_QUEUED_PACKETS packets and MAX_QUEUED_BYTES bytes. A publisher never waits for a slow subscriber,
and one slow subscriber never delays the others. When a packet doesn't fit in a client's queue:

* a QoS 0 PUBLISH is dropped for that client only. The drops are counted and logged.
* any other packet (a QoS 1 PUBLISH or a reply such as PUBACK or SUBACK) closes that client's
  connection, and its will is published. Dropping it would break at-least-once delivery or the
  protocol itself. The client can reconnect, and it then gets the retained state again.

A packet that breaks the protocol (bad header, bad lengths, invalid UTF-8, wildcards in a published
topic, CONNECT not first, ...) closes that client's connection only, and its will is published.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import socket
import struct
import threading
import time
from types import TracebackType

from simulator.mqtt_wire import (
    CONNACK,
    CONNACK_ACCEPTED,
    CONNACK_BAD_PROTOCOL_VERSION,
    CONNACK_IDENTIFIER_REJECTED,
    CONNECT,
    DISCONNECT,
    MAX_GRANTED_QOS,
    MAX_PACKET_ID,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    REQUIRED_FLAGS,
    SUBACK,
    SUBACK_FAILURE,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Fields,
    ProtocolError,
    Will,
    check_topic_name,
    encode_string,
    make_packet,
    read_will,
    skip_credentials,
    topic_matches,
    valid_filter,
)

__all__ = ["EmbeddedBroker", "broker_reachable", "topic_matches"]

log = logging.getLogger(__name__)

MAX_PACKET_SIZE = 8 * 1024 * 1024  # largest packet accepted from a client; larger ones close it
MAX_QUEUED_PACKETS = 10_000  # per-client outgoing queue bound, in packets ...
MAX_QUEUED_BYTES = 32 * 1024 * 1024  # ... and in bytes (see the overflow policy above)
CONNECT_TIMEOUT = 10.0  # seconds a new connection gets to send CONNECT
START_TIMEOUT = 5.0  # seconds start() waits for the listening socket
STOP_TIMEOUT = 5.0  # seconds stop() waits for connections to close and for the thread

# Control packet types (MQTT 3.1.1 section 2.2.1).
class _Client:
    """One client connection: its read loop, its subscriptions and its bounded outgoing queue."""

    def __init__(self, broker: _Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._broker = broker
        self._reader = reader
        self._writer = writer
        self.name = str(writer.get_extra_info("peername"))
        self.client_id = ""
        self.subscriptions: dict[str, int] = {}
        self._registered = False  # got CONNACK "accepted", so it is (or was) in broker.clients
        self._closing = False
        self._will: Will | None = None
        self._keepalive_limit: float | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._dropped = 0
        self._inflight: set[int] = set()  # ids of QoS 1 messages sent to it and not yet acknowledged
        self._next_packet_id = 1
        self._qos2_received: set[int] = set()  # ids of incoming QoS 2 messages awaiting PUBREL

    # -- connection life ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                packet_type, flags, body = await self._read_packet(first_packet=True)
            if not await self._on_connect(flags, body):
                return
            self._writer_task = asyncio.create_task(self._write_loop())
            while not self._closing:
                async with asyncio.timeout(self._keepalive_limit):
                    packet_type, flags, body = await self._read_packet()
                if not self._on_packet(packet_type, flags, body):
                    self._will = None  # a clean DISCONNECT discards the will
                    log.debug("MQTT client %s disconnected", self.name)
                    break
        except ProtocolError as exc:
            log.warning("MQTT client %s broke the protocol, closing it: %s", self.name, exc)
        except TimeoutError:
            log.info("MQTT client %s sent nothing in time (CONNECT or keep-alive), closing it", self.name)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("MQTT client %s: connection closed", self.name)
        except Exception:
            log.exception("MQTT client %s: unexpected error, closing it", self.name)
        finally:
            self._teardown()

    def abort(self, reason: str) -> None:
        """Close the connection now; the read loop then ends and cleans up."""
        if self._closing:
            return
        log.info("closing MQTT client %s: %s", self.name, reason)
        self._closing = True
        self._writer.transport.abort()

    def _teardown(self) -> None:
        self._closing = True
        if self._writer_task is not None:
            self._writer_task.cancel()
        if not self._writer.transport.is_closing():
            self._writer.transport.abort()
        if not self._registered:
            return
        if self._broker.clients.get(self.client_id) is self:
            del self._broker.clients[self.client_id]
        if self._will is not None and not self._broker.stopping:
            self._broker.route(*self._will)
            self._will = None

    async def _read_packet(self, first_packet: bool = False) -> tuple[int, int, bytes]:
        first = (await self._reader.readexactly(1))[0]
        if first_packet and first >> 4 != CONNECT:  # checked at once, so a non-MQTT peer is closed early
            raise ProtocolError("first packet is not CONNECT")
        length = 0
        for shift in range(0, 28, 7):
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        else:
            raise ProtocolError("remaining length longer than 4 bytes")
        if length > MAX_PACKET_SIZE:
            raise ProtocolError(f"packet of {length} bytes exceeds the {MAX_PACKET_SIZE}-byte limit")
        body = await self._reader.readexactly(length) if length else b""
        return first >> 4, first & 0x0F, body

    # -- outgoing ---------------------------------------------------------------------------------

    def _send(self, packet: bytes, *, droppable: bool) -> bool:
        """Queue a packet for this client, applying the overflow policy; True if it was queued."""
        if self._closing:
            return False
        if len(self._queue) >= MAX_QUEUED_PACKETS or self._queued_bytes + len(packet) > MAX_QUEUED_BYTES:
            if not droppable:
                self.abort("its outgoing queue is full")
                return False
            if self._dropped == 0:
                log.warning("MQTT client %s reads too slowly; dropping QoS 0 messages for it", self.name)
            self._dropped += 1
            return False
        if self._dropped:
            log.warning("MQTT client %s caught up; %d QoS 0 messages were dropped", self.name, self._dropped)
            self._dropped = 0
        self._queue.append(packet)
        self._queued_bytes += len(packet)
        self._wakeup.set()
        return True

    async def _write_loop(self) -> None:
        try:
            while not self._closing:
                await self._wakeup.wait()
                while self._queue and not self._closing:
                    packet = self._queue.popleft()
                    self._queued_bytes -= len(packet)
                    self._writer.write(packet)
                    await self._writer.drain()
                self._wakeup.clear()
        except ConnectionError:
            self.abort("writing to it failed")

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        first = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0)
        if qos == 0:
            self._send(make_packet(first, encode_string(topic) + payload), droppable=True)
            return
        packet_id = self._allocate_packet_id()
        if packet_id is None:
            self.abort("too many unacknowledged QoS 1 messages")
            return
        body = encode_string(topic) + struct.pack("!H", packet_id) + payload
        if self._send(make_packet(first, body), droppable=False):
            self._inflight.add(packet_id)

    def _allocate_packet_id(self) -> int | None:
        if len(self._inflight) >= MAX_PACKET_ID:
            return None
        while True:
            packet_id = self._next_packet_id
            self._next_packet_id = packet_id % MAX_PACKET_ID + 1
            if packet_id not in self._inflight:
                return packet_id

    def granted_qos(self, topic: str) -> int | None:
        """The highest QoS among this client's subscriptions that match the topic, or None."""
        best: int | None = None
        for topic_filter, qos in self.subscriptions.items():
            if (best is None or qos > best) and topic_matches(topic_filter, topic):
                best = qos
        return best

    # -- incoming ---------------------------------------------------------------------------------

    async def _on_connect(self, flags: int, body: bytes) -> bool:
        if flags:
            raise ProtocolError("CONNECT with reserved header flags set")
        fields = Fields(body)
        protocol = fields.string()
        level = fields.u8()
        if (protocol, level) not in (("MQTT", 4), ("MQIsdp", 3)):
            if protocol not in ("MQTT", "MQIsdp"):
                raise ProtocolError(f"unknown protocol name {protocol!r}")
            log.info("MQTT client %s asked for protocol level %d; only 3.1.1 is served", self.name, level)
            await self._refuse(CONNACK_BAD_PROTOCOL_VERSION)
            return False
        connect_flags = fields.u8()
        keepalive = fields.u16()
        if connect_flags & 0x01:
            raise ProtocolError("CONNECT with the reserved flag set")
        clean_session = bool(connect_flags & 0x02)
        client_id = fields.string()
        will = read_will(fields, connect_flags)
        skip_credentials(fields, connect_flags)
        if not fields.at_end:
            raise ProtocolError("CONNECT has bytes after its payload")
        if not client_id:
            if not clean_session:
                await self._refuse(CONNACK_IDENTIFIER_REJECTED)
                return False
            client_id = f"auto-{secrets.token_hex(8)}"
        self._accept(client_id, will, keepalive)
        return True

    def _accept(self, client_id: str, will: Will | None, keepalive: int) -> None:
        """Register the connection under client_id (dropping any older one) and send CONNACK."""
        self.client_id = client_id
        self.name = f"{client_id!r} at {self.name}"
        previous = self._broker.clients.get(client_id)
        if previous is not None:
            previous.abort("a new connection uses its client id")
        self._broker.clients[client_id] = self
        self._registered = True
        self._will = will
        self._keepalive_limit = keepalive * 1.5 if keepalive else None
        self._send(make_packet(CONNACK << 4, bytes([0, CONNACK_ACCEPTED])), droppable=False)
        log.debug("MQTT client %s connected", self.name)

    async def _refuse(self, return_code: int) -> None:
        self._writer.write(make_packet(CONNACK << 4, bytes([0, return_code])))
        await self._writer.drain()
        self._writer.close()  # closes once the CONNACK is written

    def _on_packet(self, packet_type: int, flags: int, body: bytes) -> bool:
        """Handle one packet after CONNECT; False means the client sent DISCONNECT."""
        if packet_type == PUBLISH:
            self._on_publish(flags, body)
            return True
        if packet_type not in REQUIRED_FLAGS:
            raise ProtocolError(f"unexpected packet type {packet_type}")
        if flags != REQUIRED_FLAGS[packet_type]:
            raise ProtocolError(f"packet type {packet_type} with header flags {flags:#x}")
        fields = Fields(body)
        if packet_type == PUBACK:
            self._inflight.discard(fields.u16())
        elif packet_type == PUBREL:
            packet_id = fields.u16()
            self._qos2_received.discard(packet_id)
            self._send(make_packet(PUBCOMP << 4, struct.pack("!H", packet_id)), droppable=False)
        elif packet_type == SUBSCRIBE:
            self._on_subscribe(fields)
        elif packet_type == UNSUBSCRIBE:
            self._on_unsubscribe(fields)
        elif packet_type == PINGREQ:
            self._send(make_packet(PINGRESP << 4), droppable=False)
        if not fields.at_end:
            raise ProtocolError(f"packet type {packet_type} has bytes after its payload")
        return packet_type != DISCONNECT

    def _on_publish(self, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 0x03
        retain = bool(flags & 0x01)
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        if qos == 0 and flags & 0x08:
            raise ProtocolError("QoS 0 PUBLISH with the DUP flag set")
        fields = Fields(body)
        topic = fields.string()
        check_topic_name(topic)
        packet_id = fields.u16() if qos else 0
        if qos and packet_id == 0:
            raise ProtocolError("PUBLISH with packet id 0")
        payload = fields.rest()
        if qos == 2:
            if packet_id not in self._qos2_received:  # a resent copy is not routed twice
                self._qos2_received.add(packet_id)
                self._broker.route(topic, payload, qos, retain)
            self._send(make_packet(PUBREC << 4, struct.pack("!H", packet_id)), droppable=False)
            return
        self._broker.route(topic, payload, qos, retain)
        if qos == 1:
            self._send(make_packet(PUBACK << 4, struct.pack("!H", packet_id)), droppable=False)

    def _on_subscribe(self, fields: Fields) -> None:
        packet_id = fields.u16()
        if packet_id == 0:
            raise ProtocolError("SUBSCRIBE with packet id 0")
        requests: list[tuple[str, int]] = []
        while not fields.at_end:
            topic_filter = fields.string()
            requested = fields.u8()
            if requested > 2:
                raise ProtocolError(f"SUBSCRIBE option byte {requested:#x}")
            requests.append((topic_filter, requested))
        if not requests:
            raise ProtocolError("SUBSCRIBE without topic filters")
        codes = bytearray()
        granted: list[tuple[str, int]] = []
        for topic_filter, requested in requests:
            if not valid_filter(topic_filter):
                log.info("MQTT client %s: refused invalid topic filter %r", self.name, topic_filter)
                codes.append(SUBACK_FAILURE)
                continue
            qos = min(requested, MAX_GRANTED_QOS)
            self.subscriptions[topic_filter] = qos
            codes.append(qos)
            granted.append((topic_filter, qos))
        self._send(make_packet(SUBACK << 4, struct.pack("!H", packet_id) + bytes(codes)), droppable=False)
        for topic_filter, qos in granted:
            for topic, (payload, retained_qos) in list(self._broker.retained.items()):
                if topic_matches(topic_filter, topic):
                    self.deliver(topic, payload, min(qos, retained_qos), retain=True)

    def _on_unsubscribe(self, fields: Fields) -> None:
        packet_id = fields.u16()
        if packet_id == 0:
            raise ProtocolError("UNSUBSCRIBE with packet id 0")
        filters: list[str] = []
        while not fields.at_end:
            filters.append(fields.string())
        if not filters:
            raise ProtocolError("UNSUBSCRIBE without topic filters")
        for topic_filter in filters:
            self.subscriptions.pop(topic_filter, None)
        self._send(make_packet((UNSUBACK << 4), struct.pack("!H", packet_id)), droppable=False)


class _Broker:
    """The broker's state; used only from the broker thread's event loop."""

    def __init__(self) -> None:
        self.clients: dict[str, _Client] = {}  # connected clients by client id
        self.retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, QoS)
        self.stopping = False
        self._connections: dict[_Client, asyncio.Task[object] | None] = {}

    def route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self.retained[topic] = (payload, qos)
            else:
                self.retained.pop(topic, None)
        for client in list(self.clients.values()):
            granted = client.granted_qos(topic)
            if granted is not None:
                client.deliver(topic, payload, min(qos, granted), retain=False)

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(self, reader, writer)
        self._connections[client] = asyncio.current_task()
        try:
            await client.run()
        finally:
            del self._connections[client]

    async def shutdown(self) -> None:
        self.stopping = True
        tasks = [task for task in self._connections.values() if task is not None]
        for client in list(self._connections):
            client.abort("the broker is stopping")
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)


class EmbeddedBroker:
    """An MQTT 3.1.1 broker that runs in its own thread with its own asyncio event loop.

    ``port=0`` picks a free port; after :meth:`start`, :attr:`port` holds the bound port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._requested_port = port
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop_requested = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def start(self) -> None:
        """Start listening. Returns once the socket is bound; raises (e.g. OSError) if it can't be."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the embedded MQTT broker is already running")
            self._ready.clear()
            self._stop_requested.clear()
            self._startup_error = None
            self._loop = None
            self._stop_event = None
            thread = threading.Thread(target=self._run, name="embedded-mqtt-broker", daemon=True)
            self._thread = thread
            thread.start()
            if not self._ready.wait(START_TIMEOUT):
                self._stop_locked()
                raise TimeoutError(f"the embedded MQTT broker did not start within {START_TIMEOUT} s")
            error = self._startup_error
            if error is not None:
                self._stop_locked()
                raise error

    def stop(self) -> None:
        """Close every connection and the listening socket and join the thread. Safe to call twice."""
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _stop_locked(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        self._stop_requested.set()
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None:
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:
                pass  # the loop has already closed
        thread.join(STOP_TIMEOUT + 1.0)
        if thread.is_alive():
            log.warning("the embedded MQTT broker thread did not end within %.0f s", STOP_TIMEOUT + 1.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:
            if self._ready.is_set():
                log.exception("the embedded MQTT broker failed")
            else:
                self._startup_error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        broker = _Broker()
        server = await asyncio.start_server(broker.handle_connection, self.host, self._requested_port)
        try:
            ports = {sock.getsockname()[1] for sock in server.sockets}
            if len(ports) != 1:
                raise OSError(
                    f"{self.host!r} gave listening sockets on ports {sorted(ports)}; use one address"
                )
            self.port = ports.pop()
            log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
            self._ready.set()
            if not self._stop_requested.is_set():
                await self._stop_event.wait()
        finally:
            server.close()
            await broker.shutdown()
            await server.wait_closed()
            log.info("embedded MQTT broker on %s:%d stopped", self.host, self.port)


def broker_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an MQTT broker answers at host:port: TCP connect, CONNECT, CONNACK within ``timeout`` s.

    A broker that answers with a refusing CONNACK (e.g. "not authorized") still counts as reachable,
    with a warning: starting a second broker would not fix that, and connecting reports the refusal.
    """
    deadline = time.monotonic() + timeout
    client_id = f"rcprobe{secrets.token_hex(8)}"  # 23 alphanumerics: every 3.1.1 broker must accept it
    body = encode_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 10) + encode_string(client_id)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(make_packet(CONNECT << 4, body))
            answer = b""
            while len(answer) < 4:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return False
                answer += chunk
            if answer[:2] != bytes([CONNACK << 4, 2]):
                return False
            if answer[3] != CONNACK_ACCEPTED:
                log.warning(
                    "MQTT broker at %s:%d refused a connection (CONNACK code %d)", host, port, answer[3]
                )
                return True
            try:
                sock.sendall(make_packet(DISCONNECT << 4))
            except OSError:
                pass
            return True
    except OSError:
        return False
