"""Upper bounds on every number in the configuration (pure).

The models in :mod:`rigcore.config` say what a value must be to work at all; these bounds say what
``PUT /config`` may set. Thread, queue, body and connection limits are tight here: the API must not be
able to raise the service's own limits far enough to exhaust the machine. At start a value beyond its
bound in the operator's own ``config.json`` is only warned about (:func:`limit_warnings`): the file is
the operator's word. ``tests/test_config_limits.py`` checks that every numeric key has a bound, so
a new key cannot be added without one.

Keys are dotted paths; ``*`` stands for one key of a map (a camera id, a command id).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

from rigcore.state import is_number

LIMITS: Mapping[str, float] = {
    "api.port": 65535,
    "api.max_body_bytes": 10_000_000,
    "api.queue_size": 100,
    "api.wait_margin_s": 600,
    "api.threads": 128,
    "api.connection_limit": 2000,
    "api.channel_timeout_s": 600,
    "api.max_downloads_per_client": 16,
    "api.max_downloads": 64,
    "api.download_send_timeout_s": 600,
    "mqtt.port": 65535,
    "mqtt.keepalive_s": 3600,
    "mqtt.response_timeout_s": 60,
    "mqtt.reconnect_min_s": 600,
    "mqtt.reconnect_max_s": 3600,
    "http.connect_timeout_s": 300,
    "http.read_timeout_s": 600,
    "stream_client.max_message_bytes": 1024 * 1024 * 1024,
    "stream_client.reconnect_min_s": 600,
    "stream_client.reconnect_max_s": 3600,
    "stream_client.open_timeout_s": 300,
    "stream_client.preroll_s": 10,
    "stream_client.idle_ack_delay_s": 1,
    "cameras.*.latency_s": 60,
    "cameras.*.display.min": 1e9,
    "cameras.*.display.max": 1e9,
    "positioning_commands.*.tolerance": 1e9,
    "positioning_commands.*.min": 1e9,
    "positioning_commands.*.max": 1e9,
    "settle.window_s": 60,
    "settle.min_messages": 1000,
    "settle.timeout_s": 3600,
    "capture_time.max_delay_s": 60,
    "capture_time.ahead_tolerance_s": 10,
    "capture_time.window_s": 120,
    "capture_time.late_wait_s": 120,
    "recording.max_duration_s": 86_400,
    "recording.writer_threads": 64,
    "recording.catchup_threads": 8,
    "recording.memory_cap_mb": 1_048_576,
    "recording.warm_buffer_s": 60,
    "storage.min_free_mb": 1e9,
    "events.pre_max_s": 600,
    "events.post_default_s": 3600,
    "events.max_s": 3600,
    "events.expected_mb_s.*": 100_000,
    "foxglove.port": 65535,
    "foxglove.max_fps": 30,
    "catalog.heartbeat_s": 60,
    "catalog.batch_rows": 10_000,
    "catalog.retry_min_s": 600,
    "catalog.retry_max_s": 3600,
    "catalog.pool_size": 32,
    "catalog.connect_timeout_s": 300,
    "catalog.statement_timeout_s": 600,
}
# Keys whose numbers only config.json sets (PUT /config refuses any change there: file-only).
FILE_ONLY_PREFIXES = ("storage.remote.",)


def numbers(data: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric leaf of a configuration document, as (dotted key, value)."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from numbers(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list | tuple):  # a list's items by index: "streams.0.x" matches "streams.*.x"
        for index, value in enumerate(data):
            yield from numbers(value, f"{path}.{index}")
    elif is_number(data):
        yield path, float(data)
    elif isinstance(data, int) and not isinstance(data, bool):
        yield path, float("inf")  # an integer beyond a float: beyond every bound


def bound_of(key: str) -> float | None:
    """The upper bound of ``key`` (None: no bound is defined, which the tests refuse)."""
    if key in LIMITS:
        return LIMITS[key]
    return next((limit for pattern, limit in LIMITS.items() if fnmatch.fnmatchcase(key, pattern)), None)


def over_limits(data: Mapping[str, Any], only: set[str] | None = None) -> list[tuple[str, str]]:
    """(key, message) for each number above its bound (of ``only`` these keys, when given)."""
    out = []
    for key, value in numbers(data):
        if (only is not None and key not in only) or key.startswith(FILE_ONLY_PREFIXES):
            continue
        limit = bound_of(key)
        if limit is not None and abs(value) > limit:
            out.append((key, f"{_show(value)} is beyond the limit of {_show(limit)}"))
    return out


def changed_numbers(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    """Keys whose number differs between two configuration documents (or that are new)."""
    before = dict(numbers(old))
    return {key for key, value in numbers(new) if before.get(key) != value}


def limit_warnings(data: Mapping[str, Any]) -> list[str]:
    """At start: what PUT /config would refuse as beyond its limit (the file's values stay)."""
    return [f"{key}: {message} (PUT /config would refuse it)" for key, message in over_limits(data)]


def _show(value: float) -> str:
    return f"{value:g}"
