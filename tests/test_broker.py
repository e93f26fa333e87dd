"""Tests for the embedded MQTT 3.1.1 broker (simulator/broker.py), driven by paho-mqtt 2.x clients."""

from __future__ import annotations

import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from simulator import broker as broker_module
from simulator.broker import EmbeddedBroker, broker_reachable, topic_matches

# An embedded broker on a loopback port (not the shared Mosquitto), with paho clients.
pytestmark = pytest.mark.integration

WAIT = 5.0  # seconds any single expected event may take


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker("127.0.0.1", 0) as running:
        yield running


class Client:
    """A paho client on its own network thread that records the messages it receives."""

    def __init__(self, port: int, client_id: str = "") -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.granted: list[int] = []
        self.mqttc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.mqttc.on_connect = self._on_connect
        self.mqttc.on_subscribe = self._on_subscribe
        self.mqttc.on_message = lambda _client, _userdata, message: self.messages.put(message)
        self.mqttc.connect("127.0.0.1", port, keepalive=30)
        self.mqttc.loop_start()
        assert self._connected.wait(WAIT), "no CONNACK"

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        assert not reason_code.is_failure
        self._connected.set()

    def _on_subscribe(self, _client: Any, _userdata: Any, _mid: int, reason_codes: Any, _props: Any) -> None:
        self.granted = [code.value for code in reason_codes]
        self._subscribed.set()

    def subscribe(self, topic: str, qos: int = 0) -> list[int]:
        self._subscribed.clear()
        result, _mid = self.mqttc.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self._subscribed.wait(WAIT), "no SUBACK"
        return self.granted

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        info = self.mqttc.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT)  # for QoS 1 this returns once the broker's PUBACK arrived
        assert info.is_published()

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        self.mqttc.disconnect()
        self.mqttc.loop_stop()


@pytest.fixture
def clients(broker: EmbeddedBroker) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def connect(broker: EmbeddedBroker, clients: list[Client], client_id: str = "") -> Client:
    client = Client(broker.port, client_id)
    clients.append(client)
    return client


def test_plus_wildcard_pub_sub(broker: EmbeddedBroker, clients: list[Client]) -> None:
    subscriber = connect(broker, clients)
    publisher = connect(broker, clients)
    assert subscriber.subscribe("acikgoz/entity_state/+") == [0]

    publisher.publish("acikgoz/entity_state/pan", b"12.5")
    publisher.publish("acikgoz/entity_state/pan/extra", b"too deep")  # "+" is one level only
    publisher.publish("acikgoz/other/pan", b"other branch")
    publisher.publish("acikgoz/entity_state/tilt", b"-3")

    first, second = subscriber.next_message(), subscriber.next_message()
    assert (first.topic, first.payload, first.retain) == ("acikgoz/entity_state/pan", b"12.5", False)
    assert (second.topic, second.payload) == ("acikgoz/entity_state/tilt", b"-3")
    time.sleep(0.1)
    assert subscriber.messages.empty()


def test_hash_wildcard_and_unsubscribe(broker: EmbeddedBroker, clients: list[Client]) -> None:
    subscriber = connect(broker, clients)
    publisher = connect(broker, clients)
    subscriber.subscribe("acikgoz/#")
    publisher.publish("acikgoz", b"parent")  # "a/#" also matches "a"
    publisher.publish("acikgoz/a/b/c", b"deep")
    assert [subscriber.next_message().payload for _ in range(2)] == [b"parent", b"deep"]

    result, _mid = subscriber.mqttc.unsubscribe("acikgoz/#")
    assert result == mqtt.MQTT_ERR_SUCCESS
    subscriber.subscribe("marker")  # SUBACK after UNSUBACK: the unsubscribe is in effect
    publisher.publish("acikgoz/a", b"after unsubscribe")
    publisher.publish("marker", b"end")
    assert subscriber.next_message().payload == b"end"


def test_retained_message_reaches_late_subscriber(broker: EmbeddedBroker, clients: list[Client]) -> None:
    publisher = connect(broker, clients)
    publisher.publish("acikgoz/entity_state/pan", b"old", qos=1, retain=True)
    publisher.publish("acikgoz/entity_state/pan", b"latest", qos=1, retain=True)
    publisher.publish("acikgoz/entity_state/tilt", b"gone", qos=1, retain=True)
    publisher.publish("acikgoz/entity_state/tilt", b"", qos=1, retain=True)  # empty payload clears it

    late = connect(broker, clients)
    late.subscribe("acikgoz/entity_state/+", qos=1)
    message = late.next_message()
    assert (message.topic, message.payload, message.retain, message.qos) == (
        "acikgoz/entity_state/pan",
        b"latest",
        True,
        1,
    )

    publisher.publish("acikgoz/entity_state/pan", b"live", retain=True)
    live = late.next_message()
    assert (live.payload, live.retain) == (b"live", False)  # established subscriptions get retain=0
    assert late.messages.empty()


def test_qos1_round_trip_and_downgrade(broker: EmbeddedBroker, clients: list[Client]) -> None:
    qos1_subscriber = connect(broker, clients)
    qos0_subscriber = connect(broker, clients)
    publisher = connect(broker, clients)
    assert qos1_subscriber.subscribe("rig/cmd", qos=1) == [1]
    assert qos0_subscriber.subscribe("rig/cmd", qos=0) == [0]
    assert qos1_subscriber.subscribe("rig/qos2", qos=2) == [1]  # QoS 2 is granted as 1

    publisher.publish("rig/cmd", b"capture", qos=1)  # waits for the broker's PUBACK
    received = qos1_subscriber.next_message()
    assert (received.payload, received.qos) == (b"capture", 1)
    downgraded = qos0_subscriber.next_message()
    assert (downgraded.payload, downgraded.qos) == (b"capture", 0)

    publisher.publish("rig/qos2", b"exactly once", qos=2)  # PUBREC/PUBREL/PUBCOMP
    received = qos1_subscriber.next_message()
    assert (received.payload, received.qos) == (b"exactly once", 1)


def test_many_qos1_messages_keep_order(broker: EmbeddedBroker, clients: list[Client]) -> None:
    subscriber = connect(broker, clients)
    publisher = connect(broker, clients)
    subscriber.subscribe("rig/seq", qos=1)
    infos = [publisher.mqttc.publish("rig/seq", str(i).encode(), qos=1) for i in range(500)]
    for info in infos:
        info.wait_for_publish(WAIT)
    assert [int(subscriber.next_message().payload) for _ in range(500)] == list(range(500))


def test_will_is_published_when_a_client_vanishes(broker: EmbeddedBroker, clients: list[Client]) -> None:
    watcher = connect(broker, clients)
    watcher.subscribe("rig/status")
    doomed = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="doomed")
    doomed.will_set("rig/status", b"offline")
    doomed.connect("127.0.0.1", broker.port)
    doomed.loop_start()
    time.sleep(0.2)
    doomed.loop_stop()
    doomed.socket().close()  # no DISCONNECT: the broker must publish the will
    assert watcher.next_message().payload == b"offline"


def raw_connect(port: int, client_id: bytes = b"raw") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(client_id)) + client_id
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Read until the broker closes the connection; False if it stays open for WAIT seconds."""
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def test_malformed_packet_closes_only_that_client(broker: EmbeddedBroker, clients: list[Client]) -> None:
    subscriber = connect(broker, clients)
    subscriber.subscribe("rig/#")
    bad = raw_connect(broker.port)
    with bad:
        bad.sendall(b"\x30\x04\x00\x09ab")  # PUBLISH whose topic length runs past the packet
        assert closed_by_peer(bad)
    wildcard_publisher = raw_connect(broker.port, b"wild")
    with wildcard_publisher:
        wildcard_publisher.sendall(b"\x30\x05\x00\x03a/+")  # wildcards are not allowed in topic names
        assert closed_by_peer(wildcard_publisher)
    not_mqtt = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    with not_mqtt:
        not_mqtt.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert closed_by_peer(not_mqtt)

    publisher = connect(broker, clients)
    publisher.publish("rig/ok", b"still serving")
    assert subscriber.next_message().payload == b"still serving"


def test_mqtt5_client_is_refused_cleanly(broker: EmbeddedBroker) -> None:
    refused = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_connect(_client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            refused.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert refused.wait(WAIT)
    finally:
        client.loop_stop()


Flood = Callable[[bytes, int], AbstractContextManager[socket.socket]]


@pytest.fixture
def flood(
    broker: EmbeddedBroker,
    clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Flood:
    """``flood(client_id, qos)``: a raw client subscribed to rig/# at ``qos`` that never reads, while a
    fast subscriber takes 200 messages of 256 KiB (QoS 1) one by one; the broker queues at most 20
    packets a client. Yields the slow client's socket, still open."""
    caplog.set_level(logging.INFO, logger="simulator.broker")
    monkeypatch.setattr(broker_module, "MAX_QUEUED_PACKETS", 20)

    @contextmanager
    def flooded(client_id: bytes, qos: int) -> Iterator[socket.socket]:
        slow = raw_connect(broker.port, client_id)
        slow.sendall(b"\x82\x0a\x00\x01\x00\x05rig/#" + bytes([qos]))  # SUBSCRIBE rig/#, then never read
        fast = connect(broker, clients)
        fast.subscribe("rig/#")
        publisher = connect(broker, clients)
        payload = bytes(256 * 1024)
        with slow:
            for i in range(200):  # 50 MiB: far more than the socket buffers, so the slow queue overflows
                publisher.publish("rig/frame", payload + str(i).encode(), qos=1)
                fast.next_message()
            yield slow

    return flooded


def test_slow_qos1_subscriber_is_closed_without_blocking_others(
    flood: Flood, caplog: pytest.LogCaptureFixture
) -> None:
    with flood(b"slow", 1) as slow:
        assert closed_by_peer(slow)
    assert "'slow'" in caplog.text and "outgoing queue is full" in caplog.text


def test_slow_qos0_subscriber_loses_messages_but_stays_connected(
    flood: Flood, caplog: pytest.LogCaptureFixture
) -> None:
    with flood(b"slow0", 0):
        assert "'slow0'" in caplog.text and "dropping QoS 0 messages" in caplog.text
        assert "outgoing queue is full" not in caplog.text


def test_topic_matches() -> None:
    assert topic_matches("a/+/c", "a/b/c")
    assert topic_matches("a/+", "a/")
    assert not topic_matches("a/+", "a")
    assert topic_matches("#", "a/b")
    assert not topic_matches("#", "$SYS/x")
    assert not topic_matches("+/x", "$SYS/x")
    assert topic_matches("$SYS/#", "$SYS/x")


def test_broker_reachable(broker: EmbeddedBroker) -> None:
    assert broker_reachable("127.0.0.1", broker.port)


def test_broker_not_reachable_on_closed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert not broker_reachable("127.0.0.1", free_port, timeout=0.5)


def test_broker_not_reachable_when_peer_is_not_mqtt() -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        assert not broker_reachable("127.0.0.1", silent.getsockname()[1], timeout=0.3)
        assert time.monotonic() - started < 2.0


def test_start_fails_when_port_is_taken_and_stop_is_idempotent(broker: EmbeddedBroker) -> None:
    second = EmbeddedBroker("127.0.0.1", broker.port)
    with pytest.raises(OSError):
        second.start()
    second.stop()

    other = EmbeddedBroker("127.0.0.1", 0)
    other.start()
    port = other.port
    assert port != 0
    other.stop()
    other.stop()
    assert not broker_reachable("127.0.0.1", port, timeout=0.5)
