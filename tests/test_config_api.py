"""PUT /config cannot weaken security or escape the folders: merge, file-only keys, paths, redaction,
one change at a time. Unit tests of the pure rules (rigcore.config_policy) run without a broker; the
ones through the API run against a live service started with a config.json."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from api import create_app
from rigcore.atomic import write_json_atomic
from rigcore.config import ApiConfig, Config, ConfigError, redact_url
from rigcore.config_policy import (
    ConfigRefused,
    Place,
    merge_patch,
    plan_change,
    read_file_only,
    with_file_only,
)
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import scaled, serve

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
integration = pytest.mark.integration


# -- the pure rules --------------------------------------------------------------------------------
def config_in(folder: Path, **data: Any) -> tuple[Config, Place]:
    """A configuration as if loaded from folder/config.json, and where it lives."""
    config = Config.from_dict(data)
    config_file = (folder / "config.json").resolve()
    write_json_atomic(config_file, config.to_json())
    return config, Place(config_file, config_file.parent, config.resolve(config_file.parent))


def refused(current: Config, patch: Any, place: Place) -> ConfigRefused:
    with pytest.raises(ConfigRefused) as info:
        plan_change(current, patch, place)
    return info.value


def test_merge_objects_key_by_key_lists_and_scalars_replace_null_removes_map_entries() -> None:
    base = {"settle": {"window_s": 1, "timeout_s": 2}, "streams": [{"url": "a"}, {"url": "b"}], "x": 1}
    merged = merge_patch(base, {"settle": {"timeout_s": 9}, "streams": [{"url": "c"}], "x": None})
    assert merged == {"settle": {"window_s": 1, "timeout_s": 9}, "streams": [{"url": "c"}], "x": None}
    cams = merge_patch({"cameras": {"a": {"previews": True}, "b": {}}}, {"cameras": {"a": None}})
    assert cams == {"cameras": {"b": {}}}


def test_partial_patch_keeps_everything_else(tmp_path: Path) -> None:
    current, place = config_in(tmp_path, api={"token": TOKEN, "host": "127.0.0.1"})
    new = plan_change(current, {"settle": {"timeout_s": 60}, "pantilt": {"moving_field": None}}, place)
    assert new.settle.timeout_s == 60 and new.settle.window_s == current.settle.window_s
    assert new.api == current.api and new.cameras == current.cameras
    gone = plan_change(current, {"positioning_commands": {"set_zoom_value": None}}, place)
    assert "set_zoom_value" not in gone.positioning_commands and "set_zoom_step" in gone.positioning_commands


def test_unknown_key_or_not_an_object_is_400_naming_it(tmp_path: Path) -> None:
    current, place = config_in(tmp_path)
    exc = refused(current, {"settle": {"windw_s": 1}}, place)
    assert exc.status == 400 and "settle.windw_s: unknown key" in str(exc)
    assert exc.details == [{"field": "settle.windw_s", "message": "unknown key"}]
    assert refused(current, [1, 2], place).status == 400
    assert refused(current, {"settle": 5}, place).details[0]["field"] == "settle"


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"api": {"token": "mine-now"}}, "api.token"),
        ({"api": {"token": None}}, "api.token"),
        ({"api": {"host": "0.0.0.0"}}, "api.host"),
        ({"api": {"port": 5001}}, "api.port"),
        ({"api": {"allowed_hosts": ["*"]}}, "api.allowed_hosts"),
        ({"storage_roots": ["/"]}, "storage_roots"),
    ],
)
def test_file_only_keys_are_403(tmp_path: Path, patch: dict[str, Any], key: str) -> None:
    current, place = config_in(tmp_path, api={"token": TOKEN, "host": "127.0.0.1"})
    if key == "api.allowed_hosts" and "allowed_hosts" not in ApiConfig.model_fields:
        pytest.skip("api.allowed_hosts is not in this version of the configuration")
    exc = refused(current, patch, place)
    assert exc.status == 403 and {"field": key, "message": exc.details[0]["message"]} in exc.details
    assert key in str(exc) and "config.json" in str(exc)


def test_same_value_as_in_force_is_not_a_change(tmp_path: Path) -> None:
    current, place = config_in(tmp_path, api={"token": TOKEN, "host": "127.0.0.1"}, mqtt={"password": "pw"})
    shown = current.to_json(redact=True)
    assert shown["api"]["token"] == "***" and shown["mqtt"]["password"] == "***"
    assert plan_change(current, shown, place) == current
    assert plan_change(current, {"api": {"host": "127.0.0.1", "token": TOKEN}}, place) == current


def test_no_token_in_force_and_redaction_sent_is_400(tmp_path: Path) -> None:
    current, place = config_in(tmp_path)
    exc = refused(current, {"api": {"token": "***"}}, place)
    assert exc.status == 400 and exc.details[0]["field"] == "api.token"


def test_url_credentials_are_redacted_and_kept_when_sent_back(tmp_path: Path) -> None:
    current, place = config_in(
        tmp_path,
        invoke_url="http://gw:gw-pass@127.0.0.1:8080/api/1.0/invoke?api_key=k3y&x=1",
        streams=[{"url": "ws://u:p@127.0.0.1:1"}, {"url": "wss://127.0.0.1:2/s?token=t0k"}],
    )
    shown = current.to_json(redact=True)
    assert shown["invoke_url"] == "http://***@127.0.0.1:8080/api/1.0/invoke?api_key=***&x=1"
    assert [s["url"] for s in shown["streams"]] == ["ws://***@127.0.0.1:1", "wss://127.0.0.1:2/s?token=***"]
    assert "gw-pass" not in json.dumps(shown) and "k3y" not in json.dumps(shown)
    # Sent back (streams reordered, one edited): the credentials in force are kept.
    streams = [{**shown["streams"][1], "cameras": ["cameradevice_rgb_1"]}, shown["streams"][0]]
    new = plan_change(current, {"invoke_url": shown["invoke_url"], "streams": streams}, place)
    assert new.invoke_url == current.invoke_url
    assert [s.url for s in new.streams] == ["wss://127.0.0.1:2/s?token=t0k", "ws://u:p@127.0.0.1:1"]
    # A redacted credential does not travel to another host.
    exc = refused(current, {"streams": [{"url": "ws://***@127.0.0.9:1"}]}, place)
    assert exc.status == 400 and exc.details[0]["field"] == "streams.0.url"
    assert redact_url("ws://127.0.0.1:1/x@y?monkey=1") == "ws://127.0.0.1:1/x@y?monkey=1"


def test_stored_mqtt_password_is_not_sent_to_a_new_broker(tmp_path: Path) -> None:
    current, place = config_in(tmp_path, mqtt={"username": "rig", "password": "pw"})
    exc = refused(current, {"mqtt": {"host": "127.0.0.9"}}, place)
    assert exc.status == 403 and exc.details[0]["field"] == "mqtt.password"
    assert refused(current, {"mqtt": {"port": 1884, "password": "***"}}, place).status == 403
    moved = plan_change(current, {"mqtt": {"host": "127.0.0.9", "password": "pw"}}, place)
    assert moved.mqtt.host == "127.0.0.9"
    fresh = plan_change(current, {"mqtt": {"host": "127.0.0.9", "password": "new"}}, place)
    assert fresh.mqtt.password == "new"


@pytest.mark.parametrize(
    ("patch", "key", "status"),
    [
        ({"save_dir": "/"}, "save_dir", 403),
        ({"save_dir": "../x"}, "save_dir", 403),
        ({"save_dir": "escape/sessions"}, "save_dir", 403),
        ({"save_dir": "."}, "save_dir", 403),  # would contain (and serve) config.json
        ({"images_data_dir": ""}, "images_data_dir", 403),
        ({"history_file": "config.json"}, "history_file", 403),
        ({"history_file": "./sub/../config.json"}, "history_file", 403),
        ({"history_file": "link-to-config.json"}, "history_file", 403),
        ({"history_file": "save_images/h.json"}, "history_file", 403),
        ({"history_file": "notes.json"}, "history_file", 403),  # someone else's file
        ({"history_file": "save_images"}, "history_file", 403),
        ({"history_file": "old\0.json"}, "history_file", 400),
        ({"save_dir": "h", "history_file": "h/history.json"}, "save_dir", 403),
    ],
)
def test_paths_stay_inside_and_off_the_services_own_files(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, patch: dict[str, Any], key: str, status: int
) -> None:
    current, place = config_in(tmp_path)
    (tmp_path / "escape").symlink_to(tmp_path_factory.mktemp("outside"))
    (tmp_path / "link-to-config.json").symlink_to(tmp_path / "config.json")
    (tmp_path / "notes.json").write_text('{"mine": true}')
    (tmp_path / "save_images").mkdir()
    exc = refused(current, patch, place)
    assert exc.status == status and key in [d["field"] for d in exc.details], exc
    assert str(exc).endswith("nothing saved")


def test_paths_inside_the_config_folder_or_a_storage_root_are_accepted(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("storage")
    current, place = config_in(tmp_path, storage_roots=[str(outside)])
    (tmp_path / "old-history.json").write_text('{"requests": []}')
    new = plan_change(
        current,
        {
            "save_dir": "data/sessions",
            "images_data_dir": str(outside / "work"),
            "history_file": "old-history.json",
        },
        place,
    )
    assert (new.save_dir, new.history_file) == ("data/sessions", "old-history.json")
    # Not a change: an operator's path outside the roots stays accepted while other keys change.
    operator, place = config_in(tmp_path, save_dir="/")
    assert plan_change(operator, {"settle": {"timeout_s": 5}}, place).save_dir == "/"


def test_the_file_keeps_its_own_file_only_values_and_a_broken_file_is_409(tmp_path: Path) -> None:
    # In force: --host/--port given on the command line; config.json says otherwise and keeps it.
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api": {"host": "127.0.0.1", "token": TOKEN}}))
    in_force = Config.from_dict({"api": {"host": "0.0.0.0", "port": 5001, "token": TOKEN}})
    written = with_file_only(in_force.to_json(), read_file_only(path))
    assert (written["api"]["host"], written["api"]["port"]) == ("127.0.0.1", 5000)
    path.write_text('{"api": {"host": ')  # being edited
    with pytest.raises(ConfigRefused) as info:
        read_file_only(path)
    assert info.value.status == 409 and "config.json" in str(info.value)


def test_at_start_history_file_may_not_be_config_json_and_outside_paths_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"history_file": "config.json"}))
    with pytest.raises(ConfigError, match="history_file: names this configuration file itself"):
        Config.load(path)
    path.write_text(json.dumps({"save_dir": "../elsewhere"}))
    with caplog.at_level(logging.WARNING):
        assert Config.load(path).save_dir == "../elsewhere"
    assert "save_dir" in caplog.text and "outside the folder of config.json" in caplog.text


# -- through the API -------------------------------------------------------------------------------
@dataclass
class Live:
    service: CaptureService
    client: FlaskClient
    path: Path

    def put(self, body: Any) -> tuple[int, dict[str, Any]]:
        resp = self.client.put("/config", json=body, headers=AUTH)
        return resp.status_code, resp.get_json()


@pytest.fixture
def live(sim: SimRig, make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Live]:
    config = make_config(
        "mqtt",
        api={"token": TOKEN},
        invoke_url=sim.http_url.replace("http://", "http://gw:gw-pass@"),
    )
    path = tmp_path / "config.json"
    write_json_atomic(path, config.to_json())
    service = CaptureService(config, base_dir=tmp_path, config_path=path)
    service.start()
    try:
        yield Live(service, create_app(service).test_client(), path)
    finally:
        service.stop()


@integration
def test_partial_put_merges_and_keeps_token_and_host(live: Live) -> None:
    status, body = live.put({"settle": {"timeout_s": 61}})
    assert status == 200 and body["changed"] == ["settle"] and body["restart_required"] == []
    on_disk = json.loads(live.path.read_text())
    assert on_disk["api"]["token"] == TOKEN and on_disk["api"]["host"] == "127.0.0.1"
    assert on_disk["settle"]["timeout_s"] == 61 and on_disk == live.service.config.to_json()
    assert live.client.get("/status").status_code == 401, "the token still guards the API"


@integration
def test_get_edit_put_round_trip_keeps_secrets(live: Live) -> None:
    shown = live.client.get("/config", headers=AUTH).get_json()
    assert shown["api"]["token"] == "***" and shown["invoke_url"].startswith("http://***@127.0.0.1:")
    shown["settle"]["window_s"] = 0.25
    status, body = live.put(shown)
    assert status == 200 and body["changed"] == ["settle"], body
    on_disk = json.loads(live.path.read_text())
    assert on_disk["api"]["token"] == TOKEN and on_disk["invoke_url"].startswith("http://gw:gw-pass@")


@integration
def test_refused_put_saves_nothing(live: Live) -> None:
    before = live.path.read_bytes()
    in_force = live.service.config
    for patch, key, code in (
        ({"api": {"token": "mine-now"}}, "api.token", 403),
        ({"api": {"token": None}, "settle": {"timeout_s": 5}}, "api.token", 403),
        ({"api": {"host": "0.0.0.0"}}, "api.host", 403),
        ({"api": {"port": 5001}}, "api.port", 403),
        ({"storage_roots": ["/"]}, "storage_roots", 403),
        ({"save_dir": "/"}, "save_dir", 403),
        ({"save_dir": "../x"}, "save_dir", 403),
        ({"history_file": "config.json"}, "history_file", 403),
        ({"settle": {"windw_s": 1}}, "settle.windw_s", 400),
        ({"invoke_url": "http://***@127.0.0.9/x"}, "invoke_url", 400),
    ):
        status, body = live.put(patch)
        assert status == code, (patch, body)
        assert key in body["error"] and key in [d["field"] for d in body["details"]], body
        assert live.path.read_bytes() == before, f"{patch}: config.json changed"
        assert live.service.config == in_force
    assert not list(live.path.parent.glob(".config.json.*"))


@integration
def test_history_file_cannot_name_the_history_journal_or_archives(live: Live) -> None:
    history = live.service.history
    for owned in (history.journal_path, history.archive_dir / "index.jsonl"):
        status, body = live.put({"history_file": str(owned)})
        assert status == 403 and body["details"][0]["field"] == "history_file", body


@integration
def test_path_inside_the_config_folder_is_accepted(live: Live) -> None:
    status, body = live.put({"save_dir": "sessions-2", "history_file": "history-2.json"})
    assert status == 200, body
    assert body["restart_required"] == ["history_file", "save_dir"]
    assert json.loads(live.path.read_text())["save_dir"] == "sessions-2"


@integration
def test_concurrent_puts_leave_memory_and_disk_agreeing(live: Live) -> None:
    # Each PUT sets the same two settle keys (one PUT must win whole) and adds its own positioning
    # command (every one must survive: a PUT merged into a stale configuration would drop others').
    submitted = [
        {
            "settle": {"timeout_s": 30.0 + i, "window_s": i / 100},
            "positioning_commands": {f"set_focus_{i}": {"arg": "focus", "field": f"focus_{i}"}},
        }
        for i in range(12)
    ]
    answers: list[int] = []
    with serve(live.service) as url:

        def put(body: dict[str, Any]) -> None:
            resp = requests.put(f"{url}/config", json=body, headers=AUTH, timeout=scaled(30))
            answers.append(resp.status_code)

        threads = [threading.Thread(target=put, args=(body,)) for body in submitted]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(scaled(60))
    assert answers == [200] * len(submitted)
    on_disk = json.loads(live.path.read_text())
    assert on_disk == live.service.config.to_json()
    # One submission whole, not a mix of two.
    assert any(on_disk["settle"] == {**on_disk["settle"], **body["settle"]} for body in submitted)
    assert {f"set_focus_{i}" for i in range(len(submitted))} <= set(on_disk["positioning_commands"])
