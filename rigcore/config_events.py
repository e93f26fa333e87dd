"""The ``events`` section of config.json: event capture (service.events, docs/operations/events.md).

With events enabled the service keeps the last ``pre_max_s`` seconds (capture time) of the event
cameras' frames in warm memory (camera.ring), and a trigger (``POST /events``, or a message on
``mqtt_topic``) saves ``[trigger − pre_s, trigger + post_s]`` as a session.

The ring must fit the memory cap (``recording.memory_cap_mb``). The rule, in one place
(:func:`ring_problem`): the ring may hold at most half of the warm pool's share of the cap
(rigcore.memory ``pool_max_bytes``), the other half staying for the frames an event or a recording
is still writing and for the pool's warm reserve. The ring's size is the cameras' byte rates × its
length (``pre_max_s`` plus :data:`RING_MARGIN_S`). Where the byte rates are known from the
configuration (``expected_mb_s``) the check runs where the whole configuration is validated
(``Config``): a config.json that breaks it does not start, and ``PUT /config`` refuses the change.
Rates not given there are checked as soon as they are measured (service.events).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rigcore.memory import MIB, POOL_HEADROOM_BYTES, pool_max_bytes

# The ring keeps this much beyond pre_max_s: a trigger reaches the event loop a little after it was
# received, and frames arrive a little after they were captured.
RING_MARGIN_S = 0.5
MB = 1_000_000  # byte rates are given in MB/s (10^6 bytes a second), as the benchmarks print them


class EventsConfig(BaseModel):
    """Event capture: a ring of the last seconds of frames, saved as a session around a trigger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # Seconds of frames (capture time) the ring keeps: the most an event can reach back.
    pre_max_s: float = Field(10.0, gt=0)
    # The cameras the ring keeps (configured camera ids); empty: every configured camera.
    cameras: tuple[str, ...] = ()
    # A message here (the POST /events body, as JSON) triggers an event, like POST /events.
    mqtt_topic: str = Field("acikgoz/event_trigger", min_length=1)
    # Seconds after the trigger an event records when the trigger does not say (post_s).
    post_default_s: float = Field(5.0, ge=0)
    # The longest event (its window, an extended event's included).
    max_s: float = Field(120.0, gt=0)
    # Per camera, the bytes a second it is expected to send (MB/s): the ring is checked against the
    # memory cap with these at start and on PUT /config. Cameras not listed: checked once measured.
    expected_mb_s: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits(self) -> EventsConfig:
        if self.pre_max_s + self.post_default_s > self.max_s:
            raise ValueError(
                f"events: pre_max_s ({self.pre_max_s:g}) + post_default_s ({self.post_default_s:g}) is "
                f"more than max_s ({self.max_s:g}): an event with the defaults would not fit"
            )
        for cam, rate in self.expected_mb_s.items():
            if not rate >= 0:
                raise ValueError(f"events.expected_mb_s.{cam}: must be a number of MB/s >= 0")
        return self

    def ring_cameras(self, configured: Iterable[str]) -> tuple[str, ...]:
        """The cameras the ring keeps: ``cameras``, or every configured one."""
        return self.cameras or tuple(configured)

    @property
    def ring_s(self) -> float:
        """The seconds of frames the ring holds (its length with the margin)."""
        return self.pre_max_s + RING_MARGIN_S


def ring_budget_bytes(memory_cap_mb: float | None) -> int | None:
    """The most the ring may hold (None: no cap): half the warm pool's share of the cap."""
    share = pool_max_bytes(memory_cap_mb)
    return None if share is None else share // 2


def ring_problem(
    events: EventsConfig, memory_cap_mb: float | None, rates: Mapping[str, float], how: str
) -> str | None:
    """Why a ring of ``events`` at ``rates`` (bytes a second per camera) does not fit the cap, naming
    the numbers; None when it fits (or there is no cap, or no rate). ``how``: "expected" or
    "measured" (said in the message)."""
    budget = ring_budget_bytes(memory_cap_mb)
    total = sum(rates.values())
    if budget is None or total <= 0 or not events.enabled:
        return None
    needed = total * events.ring_s
    if needed <= budget:
        return None
    most = max(0.0, budget / total - (events.ring_s - events.pre_max_s))
    return (
        f"events: the ring needs {_fig(needed / MIB)} MiB ({how} {_fig(total / MB)} MB/s of "
        f"{', '.join(sorted(rates))} × {events.ring_s:g} s: pre_max_s {events.pre_max_s:g} s + "
        f"{RING_MARGIN_S:g} s margin), but recording.memory_cap_mb {memory_cap_mb:g} MiB allows it "
        f"{_fig(budget / MIB)} MiB (half the warm pool's share of the cap); lower events.pre_max_s to "
        f"{most:.1f} s or less, or raise recording.memory_cap_mb to "
        f"{math.ceil(_cap_for(needed))} MiB or more"
    )


def _fig(value: float) -> str:
    """A figure for a person: whole from 100 on, one decimal from 10, else two."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _cap_for(ring_bytes: float) -> float:
    """The smallest memory cap (MiB) whose ring budget holds ``ring_bytes`` (the inverse of
    rigcore.memory's pool share: the cap less a quarter of it, at most POOL_HEADROOM_BYTES)."""
    pool = 2 * ring_bytes / MIB
    small = pool * 4 / 3  # a cap whose headroom is a quarter of it
    return small if small / 4 <= POOL_HEADROOM_BYTES / MIB else pool + POOL_HEADROOM_BYTES / MIB


def events_problem(events: EventsConfig, cameras: Iterable[str], memory_cap_mb: float | None) -> str | None:
    """What is wrong with ``events`` in this configuration (checked with the whole of it, Config):
    a camera that is not configured, or a ring that cannot fit the cap at the expected rates."""
    known = set(cameras)
    for key, named in (("cameras", events.cameras), ("expected_mb_s", tuple(events.expected_mb_s))):
        unknown = [cam for cam in named if cam not in known]
        if unknown:
            return f"events.{key}: camera(s) {', '.join(map(repr, unknown))} not in cameras"
    ring = set(events.ring_cameras(known))
    rates = {cam: mb * MB for cam, mb in events.expected_mb_s.items() if cam in ring}
    return ring_problem(events, memory_cap_mb, rates, "expected")


__all__ = [
    "RING_MARGIN_S",
    "EventsConfig",
    "events_problem",
    "ring_budget_bytes",
    "ring_problem",
]
