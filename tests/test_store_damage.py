"""Every small JSON store survives any bytes at start: set aside with a warning, never fatal, never
silently overwritten (rigcore.atomic.read_json_or_quarantine, rigcore.json_store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rigcore.atomic import read_json_or_quarantine
from service.presets.store import PresetStore
from service.schedules.rules import ScheduleStore

STORES = {"presets.json": PresetStore, "schedules.json": ScheduleStore}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_never_raise_and_are_kept(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("store")
    path = folder / "x.json"
    path.write_bytes(data)
    obj, warning = read_json_or_quarantine(path)
    if warning is None:
        assert obj == json.loads(data.decode("utf-8"))
        assert path.read_bytes() == data
    else:
        # Set aside, byte for byte, and named in the warning.
        [aside] = [p for p in folder.iterdir() if p.name.startswith("x.json.damaged-")]
        assert aside.read_bytes() == data and aside.name in warning and not path.exists()


@pytest.mark.parametrize("name", sorted(STORES))
@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00not utf-8 \x80\x81", b"[" * 100_000, b"{\"presets\": 5}", b"\x00" * 64],
    ids=["not-utf8", "nested-too-deep", "wrong-shape", "nul-bytes"],
)
def test_the_service_stores_start_on_damaged_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    store = STORES[name](path)
    assert store.warning is not None and "damaged" in store.warning
    assert store.all() in ({}, [])
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(f"{name}.damaged-")]
    assert aside.read_bytes() == content


def test_a_folder_where_the_file_should_be_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "presets.json").mkdir()
    store = PresetStore(tmp_path / "presets.json")
    assert store.warning is not None and "folder" in store.warning
    assert not (tmp_path / "presets.json").exists()
