"""The rig's state on the live ``/rig/state`` and ``/tf`` topics, as the MCAP export writes them.

A listener of the state hub (mqtt_control.hub, on the event loop): each state message the rig sends
becomes one ``/rig/state`` message — the whole rig as known at its arrival — and each pan-tilt
message with a pan and a tilt one ``/tf`` message (base → pan → tilt → each camera). Both are made
by the export's own code (sessions.mcap_rig), from the newest sample of each device, so the live
messages and a session's are the same shape; a session keeps every sample, the live view only the
newest one per device (a handful of records, whatever the rate).

Nothing is built while no client subscribes to either topic: the listener then only keeps the
newest sample per device, so that the first message a new client gets is already whole.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from rigcore.rig import RigLayout
from rigcore.state import StateSample, is_number
from sessions.mcap_rig import RigState, state_after, transforms
from sessions.state_log import StateRecord

STATE_TOPIC = "/rig/state"
TF_TOPIC = "/tf"


class Publisher(Protocol):
    """A live channel (foxglove.Channel)."""

    def has_sinks(self) -> bool: ...
    def log(self, msg: Any, *, log_time: int | None = None) -> None: ...


class RigFeed:
    """Hub samples → ``/rig/state`` and ``/tf``. Event loop only."""

    def __init__(self, layout: RigLayout, cameras: Collection[str], state: Publisher, tf: Publisher) -> None:
        self._layout = layout
        self._cameras = list(cameras)
        self._state = state
        self._tf = tf
        self._newest: dict[str, StateRecord] = {}

    def on_sample(self, sample: StateSample) -> None:
        values = self._layout.state_values(sample)
        if values is None:
            return
        record = StateRecord(
            device_id=sample.device_id,
            received_at=sample.received_at,
            retained=sample.retained,
            values=values,
        )
        self._newest[sample.device_id] = record
        log_ns = round(sample.received_at * 1e9)
        if self._state.has_sinks():
            self._state.log(self.state_now(), log_time=log_ns)
        if sample.device_id == self._layout.pantilt_id and self._tf.has_sinks():
            pan, tilt = values.get("pan_deg_x100"), values.get("tilt_deg_x100")
            if is_number(pan) and is_number(tilt):
                message = transforms(pan, tilt, self._cameras, log_ns)
                self._tf.log(message.SerializeToString(), log_time=log_ns)

    def state_now(self) -> dict[str, Any]:
        """The ``/rig/state`` message of the newest sample: the whole rig as known then."""
        state = RigState()
        message: dict[str, Any] = {}
        for record in sorted(self._newest.values(), key=lambda r: r.received_at):
            message = state_after(state, record)
        return message


__all__ = ["STATE_TOPIC", "TF_TOPIC", "Publisher", "RigFeed"]
