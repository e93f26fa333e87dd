"""MQTT 3.1.1 on the wire for the embedded broker (simulator.broker): packet types, the encoding of
lengths and strings, and the reading of a packet's fields; every violation raises
:class:`ProtocolError` (the broker closes that client's connection)."""

from __future__ import annotations

import struct

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

# Fixed-header flags that each incoming packet type must carry (section 2.2.2). PUBLISH is checked apart.
REQUIRED_FLAGS = {PUBACK: 0, PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2, PINGREQ: 0, DISCONNECT: 0}

CONNACK_ACCEPTED = 0x00
CONNACK_BAD_PROTOCOL_VERSION = 0x01
CONNACK_IDENTIFIER_REJECTED = 0x02
SUBACK_FAILURE = 0x80
MAX_GRANTED_QOS = 1
MAX_PACKET_ID = 0xFFFF

Will = tuple[str, bytes, int, bool]  # topic, payload, QoS, retain


class ProtocolError(Exception):
    """The client broke MQTT 3.1.1, so its connection is closed."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Return True if the topic name matches the (valid) topic filter, following MQTT 3.1.1 section 4.7."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent level: "a/#" matches "a"
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


def valid_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def check_topic_name(topic: str) -> None:
    if not topic or "+" in topic or "#" in topic:
        raise ProtocolError(f"invalid topic name {topic!r}")


def encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def make_packet(first_byte: int, body: bytes = b"") -> bytes:
    return bytes([first_byte]) + encode_length(len(body)) + body


def encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


class Fields:
    """Reads the fields of one packet's body; running past its end is a protocol error."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, count: int) -> bytes:
        if self._pos + count > len(self._data):
            raise ProtocolError("packet shorter than its fields")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self._take(2))[0]
        return value

    def binary(self) -> bytes:
        return self._take(self.u16())

    def string(self) -> str:
        try:
            text = self.binary().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not valid UTF-8") from exc
        if "\x00" in text:
            raise ProtocolError("string contains U+0000")
        return text

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)


def read_will(fields: Fields, connect_flags: int) -> Will | None:
    """CONNECT's will topic and message if its will flag is set; checks the will QoS and retain bits."""
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = bool(connect_flags & 0x20)
    if connect_flags & 0x04:
        if will_qos > 2:
            raise ProtocolError("will QoS 3")
        will_topic = fields.string()
        check_topic_name(will_topic)
        return (will_topic, fields.binary(), will_qos, will_retain)
    if will_qos or will_retain:
        raise ProtocolError("will QoS or retain set without the will flag")
    return None


def skip_credentials(fields: Fields, connect_flags: int) -> None:
    """Read past CONNECT's user name and password (neither is checked)."""
    if connect_flags & 0x80:
        fields.string()  # user name: not checked
    elif connect_flags & 0x40:
        raise ProtocolError("password flag without user name flag")
    if connect_flags & 0x40:
        fields.binary()  # password: not checked
