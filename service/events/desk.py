"""Event capture in the service: the ring armed from the configuration, triggers in, events out.

:class:`EventDesk` is one part of the composition root (service.capture). While ``events.enabled``:

* the event ring (camera.ring) keeps the last ``pre_max_s`` of the ring's cameras, whose streams run
  at full rate (camera.router ``keep_full_rate``), and the state ring (service.events.states) the
  rig's state samples of that span;
* ``events.mqtt_topic`` is followed (mqtt_control.link ``follow_topic``): each message is a trigger
  with the body of ``POST /events``; one that is not JSON, or that is refused, is logged and counted
  in ``/status`` (``events.mqtt``), never fatal;
* the ring is held to the memory cap (rigcore.config_events ``ring_problem``): at the configured rates
  by the configuration itself, at the measured ones here, twice a second — a ring that does not fit
  is switched off, and ``/status`` says why with the numbers, until the configuration changes.

A trigger (:meth:`EventDesk.trigger`) is checked whole (service.events.trigger) and then opens an
event (service.events.event), or extends the event still collecting its after part. A trigger during
a capture job is served the same way: the ring is the event's own sink, independent of the job's
recorder, so the event gets its own session (frames may be in both) and the job's session stays whole.

Configuration changes (PUT /config) apply at once (:meth:`EventDesk.apply`): the ring grows, shrinks
or goes without a restart. Everything here runs on the service's loop, but the synchronous entries
(:meth:`trigger`, :meth:`view`, :meth:`views`, :meth:`wait`, :meth:`status`), which submit to it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from camera.ring import FrameRing
from camera.router import FrameRouter
from camera.stream import StreamClient
from mqtt_control.hub import StateHub
from mqtt_control.link import MqttLink
from rigcore.config import Config
from rigcore.config_events import ring_budget_bytes, ring_problem
from rigcore.config_policy import ConfigRefused
from rigcore.errors import RigError
from rigcore.runtime import LoopRuntime
from service.config_reloader import InForce
from service.disk_guard import PlannedRecording, check_space
from service.events.event import Event, EventContext
from service.events.states import StateRing
from service.events.trigger import Received, Trigger, parse_trigger
from service.jobs.session_save import SaveServices
from sessions.manifest import TriggerSource

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5  # the measured byte rates against the cap
MAX_ACTIVE = 8  # events collecting or saving at once; a new trigger beyond is refused (503)
MAX_KEPT = 200  # finished events remembered for GET /events (oldest forgotten first)
RECENT_REJECTIONS = 5
FOLLOW_NAME = "events"  # the MQTT link's name for the trigger topic


class EventRefused(RigError):
    """A trigger refused: nothing was recorded. ``http_status`` and the problems (each names a field)."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.details = details or []


@dataclass(frozen=True)
class Wiring:
    """The loop-side parts the desk works with (made in service.capture's _init_on_loop)."""

    router: FrameRouter
    hub: StateHub
    link: MqttLink
    streams: Sequence[StreamClient]


class EventDesk:
    def __init__(
        self,
        runtime: LoopRuntime,
        in_force: Callable[[], InForce],
        saves: SaveServices,
    ) -> None:
        self._runtime = runtime
        self._in_force = in_force
        self._saves = saves
        self._wiring: Wiring | None = None
        self.ring = FrameRing(saves.pool)
        self.states = StateRing(0.0)
        self._armed: Config | None = None  # the configuration the ring is armed with
        self.error: str | None = None  # why events are off although enabled (the measured check)
        self._events: OrderedDict[str, Event] = OrderedDict()
        self.mqtt_triggers = 0
        self.mqtt_rejected = 0
        self._rejections: deque[str] = deque(maxlen=RECENT_REJECTIONS)

    # -- arming (loop) ---------------------------------------------------------------------------
    async def start(self, wiring: Wiring) -> None:
        """Attach the rings (they stay attached; an unarmed ring keeps nothing) and arm if enabled."""
        self._wiring = wiring
        wiring.router.attach(self.ring, wiring.router.preroll_horizon())
        wiring.hub.add_listener(self.states.on_state)
        self._runtime.spawn(self._check_loop(), name="event ring check")
        await self.apply(self._in_force())

    async def apply(self, in_force: InForce) -> None:
        """Arm, resize or disarm from a configuration in force (at start and after PUT /config)."""
        config = in_force.config
        self.error = None
        if config.events.enabled:
            self._arm(config)
        else:
            self._disarm("events were disabled (events.enabled false)")

    def _arm(self, config: Config) -> None:
        wiring = self._wire()
        events = config.events
        cameras = events.ring_cameras(config.cameras)
        budget = ring_budget_bytes(config.recording.memory_cap_mb)
        self.ring.configure(cameras, events.ring_s, budget, wiring.router.preroll_horizon())
        wiring.router.keep_full_rate(cameras)
        if self._armed is None:
            since = time.monotonic() - events.ring_s
            self.states.seed(
                s for dev in config.state_devices() for s in wiring.hub.history_since(dev, since)
            )
        self.states.resize(events.ring_s)
        wiring.link.follow_topic(FOLLOW_NAME, events.mqtt_topic, self._on_mqtt)
        self._armed = config

    def _disarm(self, why: str) -> None:
        wiring = self._wire()
        for event in self._events.values():
            event.cut(f"{why}: the window was cut short")
        self.ring.clear()
        self.states.clear()
        wiring.router.keep_full_rate(())
        wiring.link.follow_topic(FOLLOW_NAME, None, self._on_mqtt)
        self._armed = None

    def _wire(self) -> Wiring:
        assert self._wiring is not None, "EventDesk.start() first"
        return self._wiring

    async def _check_loop(self) -> None:
        """The ring against the memory cap at the measured byte rates (see the module text)."""
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            config = self._armed
            if config is None:
                continue
            problem = self.measured_problem(config)
            if problem is not None:
                log.error("%s; events are off until the configuration changes", problem)
                self._disarm("the ring did not fit the memory cap")
                self.error = f"{problem}; events are off until the configuration changes"

    def measured_problem(self, config: Config) -> str | None:
        """Why ``config``'s ring does not fit the cap at the byte rates measured now (loop)."""
        cameras = set(config.events.ring_cameras(config.cameras))
        rates = {c: r for c, r in self._wire().router.byte_rates().items() if c in cameras and r > 0}
        return ring_problem(config.events, config.recording.memory_cap_mb, rates, "measured")

    # -- PUT /config (any thread) ------------------------------------------------------------------
    def refuse_unfit(self, new: Config) -> None:
        """ConfigRefused when ``new`` (checked otherwise, not yet saved: ConfigReloader.add_check)
        would give a ring that does not fit the cap at the rates measured now."""
        if self._wiring is None:
            return

        async def measured() -> str | None:
            return self.measured_problem(new)

        problem = self._runtime.submit(measured(), timeout=5)
        if problem is not None:
            raise ConfigRefused(400, "invalid configuration", [{"field": "events", "message": problem}])

    # -- triggers ----------------------------------------------------------------------------------
    def trigger(self, body: Any, source: TriggerSource = "http") -> tuple[dict[str, Any], bool]:
        """A trigger from an API thread: (the event's view, whether it extended one). EventRefused
        when it is refused (nothing recorded)."""
        got = Received(source, time.time(), time.monotonic())
        return self._runtime.submit(self._accept(body, got), timeout=30)

    def _on_mqtt(self, payload: bytes, received_at: float, retained: bool) -> None:
        got = Received("mqtt", received_at, time.monotonic() - (time.time() - received_at))
        if retained:  # the broker's copy of an old message, sent on (re)subscribing: not a trigger now
            self._rejected("a retained message: a trigger is sent without the retain flag")
            return
        try:
            body = json.loads(payload)
        except ValueError as exc:
            self._rejected(f"not JSON: {exc}")
            return
        self._runtime.spawn(self._mqtt_trigger(body, got), name="event trigger (mqtt)")

    async def _mqtt_trigger(self, body: Any, got: Received) -> None:
        try:
            view, extended = await self._accept(body, got)
        except EventRefused as exc:
            problems = "; ".join(f"{d['field']}: {d['message']}" for d in exc.details)
            self._rejected(f"{exc}{': ' + problems if problems else ''}")
            return
        self.mqtt_triggers += 1
        log.info("event %s %s by MQTT", view["event_id"], "extended" if extended else "triggered")

    def _rejected(self, why: str) -> None:
        self.mqtt_rejected += 1
        self._rejections.append(why)
        topic = self._armed.events.mqtt_topic if self._armed is not None else "(events off)"
        log.warning("event trigger on %s refused: %s", topic, why)

    async def _accept(self, body: Any, got: Received) -> tuple[dict[str, Any], bool]:
        config = self._armed  # the configuration the trigger is checked against (None: 409 below)
        trigger, problems = self._parse(body, got)
        if trigger is None or config is None:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            message = f"invalid event: {first['field']}: {first['message']}{more}; nothing was recorded"
            raise EventRefused(400, message, problems)
        extended = self._extend(trigger)
        if extended is not None:
            return extended.view(), True
        await self._check_disk(config, trigger)
        return self._open(config, trigger).view(), False

    def _extend(self, trigger: Trigger) -> Event | None:
        return next((e for e in reversed(self._events.values()) if e.extend(trigger)), None)

    async def _check_disk(self, config: Config, trigger: Trigger) -> None:
        planned = [PlannedRecording(trigger.cameras, trigger.pre_s + trigger.post_s)]
        rates = self._wire().router.byte_rates()
        space = (config.cameras, self._saves.paths.save_dir, config.storage.min_free_mb)
        check = functools.partial(check_space, planned, rates, *space)
        try:
            await asyncio.get_running_loop().run_in_executor(None, check)
        except RigError as exc:  # InsufficientStorage: 507
            raise EventRefused(exc.http_status, f"{exc}; nothing was recorded") from exc

    def _open(self, config: Config, trigger: Trigger) -> Event:
        active = [e for e in self._events.values() if not e.done.is_set()]
        if len(active) >= MAX_ACTIVE:
            raise EventRefused(503, f"{len(active)} events are being recorded already; try again shortly")
        wiring = self._wire()
        ctx = EventContext(
            config=config,
            layout=self._in_force().layout,
            hub=wiring.hub,
            ring=self.ring,
            states=self.states,
            clocks=wiring.router.clocks,
            streams=wiring.streams,
            saves=self._saves,
        )
        event = Event(f"ev-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}", trigger, ctx)
        try:
            event.open()
        except OSError as exc:
            raise EventRefused(
                500, f"cannot create a session folder in {self._saves.paths.save_dir}: {exc}"
            ) from exc
        self._events[event.id] = event
        self._forget_old()
        self._runtime.spawn(event.run(), name=f"event {event.id}")
        return event

    def _forget_old(self) -> None:
        finished = [k for k, e in self._events.items() if e.done.is_set()]
        for key in finished[: max(0, len(self._events) - MAX_KEPT)]:
            del self._events[key]

    # -- reading (any thread) ----------------------------------------------------------------------
    def view(self, event_id: str) -> dict[str, Any] | None:
        async def get() -> dict[str, Any] | None:
            event = self._events.get(event_id)
            return event.view() if event is not None else None

        return self._runtime.submit(get(), timeout=5)

    def listing(self) -> dict[str, Any]:
        """GET /events: the events since the service started (at most MAX_KEPT finished ones), newest
        first, and the ring now."""

        async def get() -> dict[str, Any]:
            events = [e.view() for e in reversed(self._events.values())]
            return {
                "events": events,
                "armed": self._armed is not None,
                "error": self.error,
                "ring": self.ring.status(),
            }

        return self._runtime.submit(get(), timeout=5)

    def problems(self, body: Any) -> list[dict[str, Any]]:
        """What is wrong with a trigger's body against the ring armed now (any thread, nothing runs);
        EventRefused (409) when events are off."""
        return self._parse(body, Received("http", time.time(), time.monotonic()))[1]

    def _parse(self, body: Any, got: Received) -> tuple[Trigger | None, list[dict[str, Any]]]:
        config = self._armed
        if config is None:
            why = self.error or "events are disabled (events.enabled is false)"
            raise EventRefused(409, f"{why}; nothing was recorded")
        ring_cameras = config.events.ring_cameras(config.cameras)
        return parse_trigger(body, config.events, ring_cameras, list(config.cameras), got)

    def wait(self, event_id: str, timeout: float) -> bool:
        """Block until the event is finished (saved or failed); False on timeout or no such event."""
        event = self._events.get(event_id)
        return event is not None and event.done.wait(timeout)

    def wait_timeout(self) -> float:
        """How long a waiting POST /events waits: the longest event, the late-frame wait, the margin."""
        config = self._in_force().config
        return (
            config.events.max_s
            + config.capture_time.late_wait(c.latency_s for c in config.cameras.values())
            + config.api.wait_margin_s
        )

    def busy(self) -> bool:
        """An event is being recorded or saved (uploads yield to it)."""
        return any(not e.done.is_set() for e in list(self._events.values()))

    def status(self) -> dict[str, Any]:
        """For /status (on the loop: the ring is loop-only)."""
        armed = self._armed
        config = self._in_force().config

        async def snapshot() -> dict[str, Any]:
            return {"ring": self.ring.status(), "state_samples": len(self.states)}

        data = self._runtime.submit(snapshot(), timeout=5) if self._wiring is not None else {}
        return {
            "enabled": config.events.enabled,
            "armed": armed is not None,
            "error": self.error,
            "pre_max_s": config.events.pre_max_s,
            "active": sum(1 for e in list(self._events.values()) if not e.done.is_set()),
            **data,
            "mqtt": {
                "topic": config.events.mqtt_topic if armed is not None else None,
                "triggers": self.mqtt_triggers,
                "rejected": self.mqtt_rejected,
                "recent_rejections": list(self._rejections),
            },
        }


__all__ = ["EventDesk", "EventRefused", "Wiring"]
