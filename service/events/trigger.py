"""An event's trigger: the request checked against the configuration and the ring (pure, no I/O).

The body of ``POST /events``, and of a message on ``events.mqtt_topic``::

    {"pre_s": 2, "post_s": 3, "cameras": ["cameradevice_lwir_1"], "label": "gate", "at": 1767000000.5}

Every key is optional: ``pre_s`` defaults to ``events.pre_max_s`` (with ``at`` in the past, to what
the ring still holds before it), ``post_s`` to ``events.post_default_s``, ``cameras`` to every camera
the ring keeps, ``at`` (epoch seconds, the trigger's time: an external detector's) to when the
service received the trigger. :func:`parse_trigger` reports every problem at once, in the shape of
the batch validator (``{"index": None, "field", "message"}``); nothing runs for a refused trigger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rigcore.checks import Detail, detail, echo, json_type
from rigcore.config_events import EventsConfig
from rigcore.state import is_number
from sessions.manifest import EventTrigger, TriggerSource

TRIGGER_KEYS = frozenset({"pre_s", "post_s", "cameras", "label", "at"})
MAX_LABEL_CHARS = 200
# How far ahead of the service's clock ``at`` may be (the detector's clock and ours differ a little).
AT_AHEAD_S = 1.0


@dataclass(frozen=True)
class Trigger:
    """A checked trigger. Times: ``at`` epoch s; ``at_mono`` the same moment on the monotonic scale."""

    at: float
    at_mono: float
    pre_s: float
    post_s: float
    cameras: tuple[str, ...]
    label: str | None
    source: TriggerSource
    received_at: float
    body: Mapping[str, Any]

    def record(self) -> EventTrigger:
        """As session.json lists it (sessions.manifest.EventTrigger)."""
        return EventTrigger.model_validate(self, from_attributes=True)  # its fields, by name


@dataclass(frozen=True)
class Received:
    """When and how a trigger reached the service (both clocks, read together)."""

    source: TriggerSource
    at: float  # epoch s
    mono: float

    def mono_of(self, epoch: float) -> float:
        return self.mono - (self.at - epoch)


def parse_trigger(
    body: Any, events: EventsConfig, ring_cameras: Sequence[str], configured: Sequence[str], got: Received
) -> tuple[Trigger | None, list[Detail]]:
    """The trigger ``body`` asks for, or every problem with it."""
    if not isinstance(body, Mapping):
        return None, [detail(None, "(body)", f"must be a JSON object, got {json_type(body)}")]
    problems = [detail(None, str(k), "unknown key") for k in body if k not in TRIGGER_KEYS]
    at, at_problems = _at(body.get("at"), events, got)
    problems += at_problems
    age = max(0.0, got.at - at)
    pre_s = _seconds(body, "pre_s", max(0.0, events.pre_max_s - age), events.pre_max_s, problems)
    post_s = _seconds(body, "post_s", events.post_default_s, events.max_s, problems)
    cameras = _cameras(body.get("cameras"), ring_cameras, configured, problems)
    label = body.get("label")
    if label is not None and not isinstance(label, str):
        problems.append(detail(None, "label", f"must be a string, got {json_type(label)}"))
    elif isinstance(label, str) and len(label) > MAX_LABEL_CHARS:
        problems.append(detail(None, "label", f"is {len(label)} characters long; at most {MAX_LABEL_CHARS}"))
    if not problems:
        problems += _fits(pre_s, post_s, age, events, "pre_s" in body)
    if problems:
        return None, problems
    trigger = Trigger(
        at=at,
        at_mono=got.mono_of(at),
        pre_s=pre_s,
        post_s=post_s,
        cameras=cameras,
        label=label,
        source=got.source,
        received_at=got.at,
        body=dict(body),
    )
    return trigger, []


def _at(value: Any, events: EventsConfig, got: Received) -> tuple[float, list[Detail]]:
    if value is None:
        return got.at, []
    if not is_number(value):
        return got.at, [detail(None, "at", f"must be a number (epoch seconds), got {json_type(value)}")]
    at = float(value)
    if at > got.at + AT_AHEAD_S:
        return got.at, [
            detail(None, "at", f"is {at - got.at:.1f} s in the future; a trigger's time has passed")
        ]
    if at < got.at - events.pre_max_s:
        return got.at, [
            detail(
                None,
                "at",
                f"was {got.at - at:.1f} s ago: before what the ring holds (the last "
                f"{events.pre_max_s:g} s, events.pre_max_s)",
            )
        ]
    return at, []


def _seconds(body: Mapping[str, Any], key: str, default: float, most: float, problems: list[Detail]) -> float:
    if key not in body:
        return default
    value = body[key]
    if not is_number(value):
        problems.append(detail(None, key, f"must be a number of seconds, got {json_type(value)}"))
        return default
    if value < 0:
        problems.append(detail(None, key, f"must be 0 or more, got {echo(value)}"))
        return default
    if value > most:
        limit = "events.pre_max_s: what the ring holds" if key == "pre_s" else "events.max_s"
        problems.append(detail(None, key, f"{echo(value)} is more than {most:g} s ({limit})"))
        return default
    return float(value)


def _cameras(
    value: Any, ring_cameras: Sequence[str], configured: Sequence[str], problems: list[Detail]
) -> tuple[str, ...]:
    if value is None:
        return tuple(ring_cameras)
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        problems.append(
            detail(None, "cameras", f"must be a non-empty array of camera ids, got {json_type(value)}")
        )
        return ()
    for i, cam in enumerate(value):
        if cam not in configured:
            problems.append(
                detail(None, f"cameras[{i}]", f"unknown camera {echo(cam)}; cameras: {', '.join(configured)}")
            )
        elif cam not in ring_cameras:
            problems.append(
                detail(
                    None,
                    f"cameras[{i}]",
                    f"camera {cam} is not kept by the event ring (events.cameras: {', '.join(ring_cameras)})",
                )
            )
    if len(set(value)) != len(value):
        problems.append(detail(None, "cameras", "lists a camera twice"))
    return tuple(dict.fromkeys(value))


def _fits(pre_s: float, post_s: float, age: float, events: EventsConfig, pre_given: bool) -> list[Detail]:
    """The window against the ring and max_s: what lies before ``at`` must still be held."""
    problems = []
    if pre_given and age + pre_s > events.pre_max_s + 1e-6:
        problems.append(
            detail(
                None,
                "pre_s",
                f"{pre_s:g} s before a trigger {age:.1f} s ago reaches {age + pre_s:.1f} s back; the ring "
                f"holds the last {events.pre_max_s:g} s (events.pre_max_s)",
            )
        )
    if pre_s + post_s > events.max_s:
        problems.append(
            detail(
                None,
                "post_s",
                f"pre_s {pre_s:g} + post_s {post_s:g} is more than events.max_s {events.max_s:g}",
            )
        )
    return problems


__all__ = ["AT_AHEAD_S", "MAX_LABEL_CHARS", "TRIGGER_KEYS", "Received", "Trigger", "parse_trigger"]
