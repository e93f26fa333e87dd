"""paho-mqtt adapter: state in, commands out, responses matched by request id.

paho runs its own network thread (``loop_start``), which also reconnects by itself with a capped
back-off (``reconnect_delay_set``). Callbacks run on that thread; they only parse and hand over to
the asyncio loop with ``call_soon_threadsafe`` so all state logic stays on the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_control.hub import StateHub
from rigcore.config import MqttConfig
from rigcore.errors import BrokerUnavailable, CommandFailed
from rigcore.state import StateSample

log = logging.getLogger(__name__)

PUBLISH_ACK_TIMEOUT_S = 5.0

# A topic a feature follows besides the state topics (the event trigger, service.events): its handler
# gets each message's payload, arrival time (epoch s) and retain flag, on the loop.
TopicHandler = Callable[[bytes, float, bool], None]


class MqttLink:
    """One MQTT connection for state subscriptions and command requests."""

    def __init__(
        self, config: MqttConfig, state_devices: Iterable[str], hub: StateHub, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._cfg = config
        self._hub = hub
        self._loop = loop
        self._state_topics = {self._cfg.state_topic(d): d for d in sorted(state_devices)}
        self._response_wildcard = self._cfg.response_topic("+")
        self._response_prefix = self._cfg.response_topic("")
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Further topics by name (follow_topic); replaced whole, so paho's thread reads a stable dict.
        self._followed: dict[str, tuple[str, TopicHandler]] = {}
        self._connected = threading.Event()
        self.last_error: str | None = "not connected yet"
        self.connects = 0
        self._stopping = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self._cfg.client_id_prefix}-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self._cfg.username:
            client.username_pw_set(self._cfg.username, self._cfg.password)
        if self._cfg.tls is not None:
            # The broker's certificate is checked against ca_file and the host name (paho's default).
            tls = self._cfg.tls
            client.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(self._cfg.reconnect_min_s, self._cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background; a broker that is down now is retried forever."""
        self._client.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def require_connected(self) -> None:
        if not self.connected:
            raise BrokerUnavailable(self._cfg.host, self._cfg.port, self.last_error or "")

    def status(self) -> dict[str, Any]:
        return {
            "host": self._cfg.host,
            "port": self._cfg.port,
            "connected": self.connected,
            "connects": self.connects,
            "last_error": None if self.connected else self.last_error,
        }

    def follow_topic(self, name: str, topic: str | None, handler: TopicHandler) -> None:
        """Hand every message on ``topic`` (MQTT wildcards allowed) to ``handler``, under ``name``
        (one topic per name: a new one replaces it; None stops following). Subscribed now if
        connected, and on every reconnect."""
        old = self._followed.get(name)
        followed = {k: v for k, v in self._followed.items() if k != name}
        if topic is not None:
            followed[name] = (topic, handler)
        self._followed = followed
        if old is not None and old[0] != topic and self.connected:
            self._client.unsubscribe(old[0])
        if topic is not None and (old is None or old[0] != topic) and self.connected:
            self._client.subscribe(topic, 1)

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("MQTT connect refused: %s", reason)
            return
        # A clean session forgets subscriptions, so subscribe again on every (re)connect.
        followed = [(topic, 1) for topic, _ in self._followed.values()]
        client.subscribe([(t, 0) for t in self._state_topics] + [(self._response_wildcard, 1), *followed])
        self.connects += 1
        self.last_error = None
        self._connected.set()
        over = " over TLS" if self._cfg.tls else ""
        log.info("MQTT connected to %s:%s%s", self._cfg.host, self._cfg.port, over)

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._connected.clear()
        self.last_error = f"disconnected: {reason}"
        if self._stopping:
            return
        log.warning("MQTT disconnected (%s); paho reconnects by itself", reason)
        # A response can no longer arrive on this connection: the commands waiting for one fail now,
        # rather than reporting "no response" as if the link had held.
        try:
            self._loop.call_soon_threadsafe(self._fail_pending, str(reason))
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _fail_pending(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(
                    BrokerUnavailable(self._cfg.host, self._cfg.port, f"link lost while waiting: {reason}")
                )

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle(msg)
        except RuntimeError:
            # The loop closed under a message in flight during shutdown: nothing left to inform.
            if not self._stopping:
                raise

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        received_mono, received_at = time.monotonic(), time.time()
        device = self._state_topics.get(msg.topic)
        for topic, handler in self._followed.values():
            if device is None and mqtt.topic_matches_sub(topic, msg.topic):
                self._loop.call_soon_threadsafe(handler, bytes(msg.payload), received_at, bool(msg.retain))
                return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = None
        if device is not None:
            if not isinstance(payload, dict):
                self._loop.call_soon_threadsafe(self._hub.on_invalid, device)
                return
            sample = StateSample(device, payload, received_mono, received_at, bool(msg.retain))
            self._loop.call_soon_threadsafe(self._hub.on_sample, sample)
        elif msg.topic.startswith(self._response_prefix) and isinstance(payload, dict):
            self._loop.call_soon_threadsafe(self._resolve_response, payload)

    # -- loop side -----------------------------------------------------------------------------
    def _resolve_response(self, payload: dict[str, Any]) -> None:
        fut = self._pending.get(str(payload.get("request_id")))
        if fut is not None and not fut.done():
            fut.set_result(payload)

    async def request(self, command: dict[str, Any]) -> tuple[bool, int | None, Any]:
        """Publish one command (QoS 1) and wait for its response.

        Returns ``(answered, status_code, response)``; ``answered`` is False when no response came
        within the configured time, which is not an error: the state topics prove moves.
        """
        self.require_connected()
        device_id = str(command["device_id"])
        request_id = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[request_id] = fut
        try:
            body = json.dumps({**command, "request_id": request_id})
            info = self._client.publish(self._cfg.command_topic(device_id), body, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerUnavailable(self._cfg.host, self._cfg.port, mqtt.error_string(info.rc))
            published = await self._loop.run_in_executor(None, _wait_published, info, PUBLISH_ACK_TIMEOUT_S)
            if not published:
                raise CommandFailed(
                    device_id,
                    str(command["command_id"]),
                    f"broker did not acknowledge the publish within {PUBLISH_ACK_TIMEOUT_S} s",
                )
            try:
                async with asyncio.timeout(self._cfg.response_timeout_s):
                    answer = await fut
            except TimeoutError:
                return False, None, None
        finally:
            self._pending.pop(request_id, None)
        code = answer.get("status_code")
        return True, code if isinstance(code, int) else None, answer.get("response")


def _wait_published(info: mqtt.MQTTMessageInfo, timeout: float) -> bool:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        return False
    return bool(info.is_published())
