"""The rig's MQTT side (docs/protocol.md §2–§3): a thin adapter around paho's threaded client.

paho runs its own network thread and reconnects by itself (capped exponential backoff); every
subscription is made again in ``_on_connect`` because the session is clean.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .config import SimConfig

log = logging.getLogger(__name__)

# Called with (device id from the topic, payload bytes) on paho's network thread.
CommandCallback = Callable[[str, bytes], None]


class MqttStartError(RuntimeError):
    """The broker did not accept a connection in time."""


class MqttLink:
    """Publishes state and responses, delivers commands to ``on_command``."""

    def __init__(self, cfg: SimConfig, on_command: CommandCallback) -> None:
        self._cfg = cfg
        self._on_command_cb = on_command
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"simrig-{uuid.uuid4().hex[:12]}",
            clean_session=True,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._started = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float) -> None:
        """Connect in the background and wait (bounded) for the broker's CONNACK."""
        self._client.connect_async(self._cfg.mqtt_host, self._cfg.mqtt_port, keepalive=30)
        self._client.loop_start()
        self._started = True
        if not self._connected.wait(timeout):
            why = self._refused or "no answer"
            raise MqttStartError(
                f"MQTT broker {self._cfg.mqtt_host}:{self._cfg.mqtt_port} not connected "
                f"within {timeout:.1f} s ({why})"
            )

    def stop(self, clear_retained: list[str] | None = None, timeout: float = 2.0) -> None:
        """Optionally clear retained state topics, then disconnect and join paho's thread."""
        if not self._started:
            return
        self._started = False
        if clear_retained and self.connected:
            infos = [
                self._client.publish(self._cfg.topic("entity_state", d), b"", qos=1, retain=True)
                for d in clear_retained
            ]
            for info in infos:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError) as exc:
                    log.warning("clearing retained state: %s", exc)
                    break
        self._client.disconnect()
        self._client.loop_stop()

    def publish_state(self, device_id: str, state: dict[str, Any]) -> None:
        """Retained entity_state; dropped silently while disconnected (a fresh one follows soon)."""
        if self.connected:
            topic = self._cfg.topic("entity_state", device_id)
            self._client.publish(topic, json.dumps(state), qos=0, retain=True)

    def respond(self, device_id: str, body: dict[str, Any]) -> None:
        """Answer on entity_response/<device_id>, QoS 1."""
        self._client.publish(self._cfg.topic("entity_response", device_id), json.dumps(body), qos=1)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            log.warning("MQTT connection refused: %s", reason_code)
            return
        client.subscribe(self._cfg.topic("entity_command", "+"), qos=1)
        log.info("MQTT connected to %s:%d", self._cfg.mqtt_host, self._cfg.mqtt_port)
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if self._started:
            log.warning("MQTT disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            # A retained command is an old one replayed by the broker on subscribe; a device
            # executing it again would move on its own.
            log.warning("ignoring retained command on %s", msg.topic)
            return
        device_id = msg.topic.rsplit("/", 1)[-1]
        try:
            self._on_command_cb(device_id, bytes(msg.payload))
        except Exception:
            # An exception escaping a paho callback would be swallowed or stop the network loop.
            log.exception("command on %s failed", msg.topic)
