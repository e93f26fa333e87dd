"""The catalog's filter language: ``GET /sessions``'s query string parsed and checked into a
:class:`SessionQuery`, and a query turned into SQL (a fixed WHERE text whose values SQLite binds, never
spliced into the SQL). See :mod:`sessions.catalog`."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from rigcore.config_fleet import ALL_NODES, NODE_ID
from sessions.catalog_rows import KINDS
from sessions.manifest import SessionStatus

_N = TypeVar("_N", int, float)
TRIGRAM = 3  # the shortest ?q= the text index finds; shorter ones are matched row by row


@dataclass(frozen=True)
class SessionQuery:
    """Filters of ``GET /sessions``; None = not filtered. Pan and tilt in degrees x100, times epoch s."""

    camera: str | None = None
    status: str | None = None
    since: float | None = None  # record_started_at >= since
    until: float | None = None  # record_started_at < until
    scan_id: str | None = None
    pan_min: int | None = None
    pan_max: int | None = None
    tilt_min: int | None = None
    tilt_max: int | None = None
    q: str | None = None  # a substring of the session id or its label (case-insensitive)
    kind: str | None = None  # "recording" or "event"
    node: str | None = None  # a node's id, or "all" (every node: no filter on the node)

    def filtered(self) -> bool:
        """Whether any filter narrows the sessions (``node`` alone only says whose are listed)."""
        return any(v is not None for k, v in vars(self).items() if k != "node")

    def _simple(self) -> tuple[tuple[str, Any], ...]:
        """(column, value) of the filters that are one comparison each, in both engines."""
        node = None if self.node == ALL_NODES else self.node
        return (
            ("s.status = ", self.status),
            ("s.kind = ", self.kind),
            ("s.node_id = ", node),
            ("s.scan_id = ", self.scan_id),
            ("s.started_at >= ", self.since),
            ("s.started_at < ", self.until),
            ("s.pan_x100 >= ", self.pan_min),
            ("s.pan_x100 <= ", self.pan_max),
            ("s.tilt_x100 >= ", self.tilt_min),
            ("s.tilt_x100 <= ", self.tilt_max),
        )

    def where(self, camera_bit: int | None = None) -> tuple[str, list[Any]]:
        """The WHERE clause (fixed text) and its parameters (the values, bound by SQLite).

        ``camera_bit``: the camera's bit in ``camera_mask`` (the catalog's ``camera_bits``); a
        camera without one (more than MAX_CAMERA_BITS cameras were seen) is matched through the
        ``cameras`` column (``,cam_a,cam_b,``) instead."""
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in self._simple():
            if value is not None:
                clauses.append(clause + "?")
                params.append(value)
        if self.camera is not None and camera_bit is not None:
            clauses.append("(s.camera_mask & ?) != 0")
            params.append(1 << camera_bit)
        elif self.camera is not None:  # past MAX_CAMERA_BITS cameras: the list, row by row
            clauses.append(r"s.cameras LIKE ? ESCAPE '\'")
            params.append("%," + re.sub(r"([\\%_])", r"\\\1", self.camera) + ",%")
        if self.q is not None and len(self.q) >= TRIGRAM:
            # One FTS5 phrase: the text matches where it holds q as a substring (case-insensitive).
            clauses.append("s.rowid IN (SELECT rowid FROM sessions_text WHERE sessions_text MATCH ?)")
            params.append('"' + self.q.replace('"', '""') + '"')
        elif self.q is not None:  # too short for a trigram: every row is looked at
            clauses.append(r"(s.session_id LIKE ? ESCAPE '\' OR s.label LIKE ? ESCAPE '\')")
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", self.q) + "%"
            params += [pattern, pattern]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def pg_where(self) -> tuple[str, list[Any]]:
        """The WHERE clause for the shared catalog (sessions.catalog_pg: psycopg binds the values):
        ``camera`` through the cameras array (GIN index), ``q`` through the lower-cased ``search``
        column (a pg_trgm index where the extension was had)."""
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in self._simple():
            if value is not None:
                clauses.append(clause + "%s")
                params.append(value)
        if self.camera is not None:
            clauses.append("s.cameras @> ARRAY[%s]::text[]")
            params.append(self.camera)
        if self.q is not None:
            clauses.append(r"s.search LIKE %s ESCAPE '\'")
            params.append("%" + re.sub(r"([\\%_])", r"\\\1", self.q.lower()) + "%")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class FilterError(ValueError):
    """A filter of ``GET /sessions`` that is not valid; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


FILTER_PARAMS = (
    "camera",
    "status",
    "since",
    "until",
    "scan_id",
    "pan_min",
    "pan_max",
    "tilt_min",
    "tilt_max",
    "q",
    "kind",
    "node",
)
STATUSES = frozenset({*(s.value for s in SessionStatus), "unreadable"})
MAX_TEXT = 200  # characters of camera, scan_id and q
_X100_LIMIT = 10**9


def query_from_params(
    params: Mapping[str, str], cameras: Collection[str] = (), now: float | None = None
) -> SessionQuery:
    """The filters in ``GET /sessions``'s query string; FilterError names the first bad one. An empty
    value is no filter. ``cameras``: the configured camera ids, which a short ``camera`` (``swir``,
    a part of one id) stands for; ``now``: what a relative ``since``/``until`` counts back from."""
    values = {k: params[k].strip() for k in FILTER_PARAMS if params.get(k, "").strip()}
    if "camera" in values:
        values["camera"] = camera_meant(values["camera"], cameras)
    for name in ("camera", "scan_id", "q"):
        if name in values and len(values[name]) > MAX_TEXT:
            raise FilterError(name, f"{len(values[name])} characters; at most {MAX_TEXT}")
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise FilterError("status", f"{status!r} is not one of {', '.join(sorted(STATUSES))}")
    kind = values.get("kind")
    if kind is not None and kind not in KINDS:
        raise FilterError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    node = values.get("node")
    if node is not None and node != ALL_NODES and not NODE_ID.fullmatch(node):
        raise FilterError("node", f"{node!r} is not {ALL_NODES!r} or a node id (letters, digits, _ . -)")
    times = {name: _epoch(name, values.get(name), now) for name in ("since", "until")}
    ints = {
        name: _x100_param(name, values.get(name)) for name in ("pan_min", "pan_max", "tilt_min", "tilt_max")
    }
    for low, high in (("since", "until"), ("pan_min", "pan_max"), ("tilt_min", "tilt_max")):
        lo, hi = {**times, **ints}[low], {**times, **ints}[high]
        if lo is not None and hi is not None and lo > hi:
            raise FilterError(low, f"{lo} is greater than {high} {hi}")
    return SessionQuery(
        camera=values.get("camera"),
        status=status,
        scan_id=values.get("scan_id"),
        q=values.get("q"),
        since=times["since"],
        until=times["until"],
        pan_min=ints["pan_min"],
        pan_max=ints["pan_max"],
        tilt_min=ints["tilt_min"],
        tilt_max=ints["tilt_max"],
        kind=kind,
        node=node,
    )


def camera_meant(name: str, cameras: Collection[str]) -> str:
    """The camera id ``name`` stands for: itself when it is one (or no camera is known), else the one
    configured id that holds it (``swir`` for ``cameradevice_swir_1``, case ignored). A name that
    holds no id is kept (a camera since removed from the configuration still has its sessions); one
    that several hold is a FilterError naming them."""
    if name in cameras or not cameras:
        return name
    matches = sorted(c for c in cameras if name.lower() in c.lower())
    if len(matches) > 1:
        raise FilterError("camera", f"{name!r} matches several cameras ({', '.join(matches)}); say which")
    return matches[0] if matches else name


_TIME = (
    "a time: ISO 8601 (2026-12-06, 2026-12-06T14:30, with a zone or in the service's local time), "
    "an age (30m, 2h, 3d, 1w) or seconds since the epoch"
)
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_AGE_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float | None = None) -> float | None:
    """``text`` as epoch seconds, or None when it is no time: epoch seconds (``1765000000``), an ISO
    8601 date or date and time (without a zone: this machine's local time), or an age back from
    ``now`` (``30m``, ``2h``, ``3d``, ``1w``)."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) and number >= 0 else None
    age = _AGE.fullmatch(text.strip())
    if age is not None:
        back = float(age[1]) * _AGE_UNIT_S[age[2].lower()]
        return (time.time() if now is None else now) - back
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


def _epoch(name: str, value: str | None, now: float | None = None) -> float | None:
    if value is None:
        return None
    found = parse_time(value, now)
    if found is None:
        raise FilterError(name, f"{value!r} is not {_TIME}")
    return found


def _x100_param(name: str, value: str | None) -> int | None:
    number = _parsed(name, value, int, "an integer (degrees x100, e.g. -1500)")
    if number is not None and abs(number) > _X100_LIMIT:
        raise FilterError(name, f"{number} is out of range")
    return number


def _parsed(name: str, value: str | None, parse: Callable[[str], _N], what: str) -> _N | None:
    """``value`` parsed, None when not given; FilterError saying it is not ``what``."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        raise FilterError(name, f"{value!r} is not {what}") from None


__all__ = [
    "ALL_NODES",
    "FILTER_PARAMS",
    "STATUSES",
    "FilterError",
    "SessionQuery",
    "camera_meant",
    "parse_time",
    "query_from_params",
]
