"""Every number in the configuration has an upper bound that PUT /config enforces
(rigcore.config_limits); config.json beyond it only warns at start."""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from rigcore.config import Config
from rigcore.config_limits import FILE_ONLY_PREFIXES, bound_of, numbers
from rigcore.config_policy import FILE_ONLY_KEYS, ConfigRefused, Place, plan_change

# A configuration that sets every optional section, so that every numeric key appears.
FULL: dict[str, Any] = {
    "api": {"threads": 10},
    "cameras": {
        "cameradevice_lwir_1": {
            "pixel_format": "mono16",
            "display": {"min": 0, "max": 4000},
            "latency_s": 0.1,
        }
    },
    "capture_time": {"late_wait_s": 5},
    "recording": {"memory_cap_mb": 1024},
    "storage": {
        "remote": {"bucket": "rig", "access_key": "a", "secret_key": "b", "endpoint": "http://127.0.0.1:9"}
    },
}


def test_every_numeric_key_has_a_bound_and_the_defaults_are_within_it() -> None:
    data = Config.from_dict(FULL).to_json()
    keys = [key for key, _ in numbers(data) if not key.startswith(FILE_ONLY_PREFIXES)]
    assert len(keys) > 40
    unbounded = [key for key in keys if bound_of(key) is None]
    assert not unbounded, f"numeric config keys without an upper bound (rigcore.config_limits): {unbounded}"
    beyond = [key for key, value in numbers(data) if (b := bound_of(key)) is not None and abs(value) > b]
    assert not beyond


def place(tmp_path: Path) -> Place:
    cfg = Config()
    return Place(config_file=tmp_path / "config.json", base_dir=tmp_path, in_force=cfg.resolve(tmp_path))


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"api": {"queue_size": 100_000}}, "api.queue_size"),
        ({"api": {"max_body_bytes": 100_000_000_000}}, "api.max_body_bytes"),
        ({"api": {"channel_timeout_s": 100_000_000}}, "api.channel_timeout_s"),
        ({"settle": {"timeout_s": 10**400}}, "settle.timeout_s"),
        ({"cameras": {"cameradevice_rgb_1": {"latency_s": 30, "display": {"min": 0, "max": 1e12}}}}, None),
    ],
)
def test_put_config_refuses_numbers_beyond_their_bound(
    tmp_path: Path, patch: dict[str, Any], key: str | None
) -> None:
    with pytest.raises(ConfigRefused) as refused:
        plan_change(Config(), patch, place(tmp_path))
    assert refused.value.status == 400
    fields = [d["field"] for d in refused.value.details]
    if key is not None:
        assert key in fields, refused.value.details
    assert all("limit" in d["message"] or "Input" in d["message"] for d in refused.value.details)


def test_a_bound_is_not_held_against_a_value_the_change_leaves_alone(tmp_path: Path) -> None:
    current = Config.from_dict({"api": {"queue_size": 500}})  # from the operator's own file
    new = plan_change(current, {"settle": {"timeout_s": 30}}, place(tmp_path))
    assert new.api.queue_size == 500 and new.settle.timeout_s == 30


def test_config_json_beyond_a_bound_starts_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api": {"queue_size": 500}}), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        config = Config.load(path)
    assert config.api.queue_size == 500
    messages = [r.getMessage() for r in caplog.records]
    assert any("api.queue_size" in m and "limit of 100" in m for m in messages), messages


def numeric_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every numeric key the model can hold, read from its fields' types (not from a document): an
    optional section, a map entry ("*") and a list item ("*") included, so no default hides one."""
    for name, field in model.model_fields.items():
        yield from _numeric(field.annotation, f"{prefix}{name}")


def _numeric(tp: Any, key: str) -> Iterator[str]:
    origin, args = get_origin(tp), get_args(tp)
    if tp in (int, float):
        yield key
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        yield from numeric_keys(tp, f"{key}.")
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _numeric(arg, key)
    elif origin is dict:
        yield from _numeric(args[1], f"{key}.*")
    elif origin in (list, tuple):
        for arg in args:
            if arg is not Ellipsis:
                yield from _numeric(arg, f"{key}.*")
    else:  # str, bool, Literal, None, paths: no number
        assert tp in (str, bool, type(None)) or origin is Literal, (
            f"{key}: a type this walk does not know: {tp}"
        )


def test_every_numeric_key_of_the_model_has_an_upper_bound() -> None:
    keys = sorted(set(numeric_keys(Config)))
    assert len(keys) > 40 and "api.queue_size" in keys and "cameras.*.latency_s" in keys
    file_only = tuple(f"{k}." for k in FILE_ONLY_KEYS)
    unbounded = [
        k for k in keys if bound_of(k) is None and not k.startswith((*FILE_ONLY_PREFIXES, *file_only))
    ]
    assert not unbounded, f"numeric config keys without an upper bound (rigcore.config_limits): {unbounded}"


@pytest.mark.parametrize(
    ("key", "most"),
    [
        ("api.queue_size", 100),
        ("api.max_body_bytes", 10_000_000),
        ("api.channel_timeout_s", 600),
        ("api.threads", 128),
        ("api.connection_limit", 2000),
    ],
)
def test_thread_queue_and_body_limits_are_tightly_bounded(key: str, most: float) -> None:
    bound = bound_of(key)
    assert bound is not None and bound <= most
