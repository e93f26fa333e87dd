"""Nothing the API can set lands in a folder served without the token, names a file the service owns,
or makes two stores share a file (rigcore.config_paths: the one list of owned files); a config.json
doing it does not start (issue 21, item 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from rigcore.atomic import write_json_atomic
from rigcore.config import Config, ConfigError
from rigcore.config_paths import (
    CATALOG_FILE,
    IMAGES_DATA_FOLDERS,
    OPEN_FOLDERS,
    PRESETS_FILE,
    PROJECT_DIR,
    SCHEDULES_FILE,
    owned_files,
)
from rigcore.config_policy import ConfigRefused, Place, plan_change
from service.capture import CaptureService
from service.history.store import HistoryStore
from service.presets.store import presets_path
from service.schedules.rules import schedules_path
from sessions.catalog_db import CATALOG_FILE as CATALOG_DB_FILE
from sessions.scan_manifest import scans_dir
from sessions.upload_queue import record_path
from simulator.rig import SimRig

STATIC = OPEN_FOLDERS[0]
TOKEN = "owned-files-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def refusal(current: Config, patch: dict[str, Any], place: Place) -> ConfigRefused:
    with pytest.raises(ConfigRefused) as info:
        plan_change(current, patch, place)
    return info.value


def config_in(folder: Path) -> tuple[Config, Place]:
    """The default configuration as if loaded from folder/config.json (written), and its Place."""
    config = Config()
    write_json_atomic(folder / "config.json", config.to_json())
    return config, Place(folder / "config.json", folder, config.resolve(folder))


def reasons(exc: ConfigRefused, key: str) -> str:
    return " | ".join(d["message"] for d in exc.details if d["field"] == key)


# -- the one list ------------------------------------------------------------------------------------
def test_the_stores_take_their_names_from_the_one_list(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    assert presets_path(config_file, tmp_path) == tmp_path / PRESETS_FILE
    assert schedules_path(config_file, tmp_path) == tmp_path / SCHEDULES_FILE
    assert CATALOG_DB_FILE == CATALOG_FILE
    history = HistoryStore(tmp_path / "h.json")
    resolved = Config().resolve(tmp_path)
    owned = {
        o.path for o in owned_files(config_file, {**resolved.model_dump(), "history_file": history.path})
    }
    assert {history.path, history.journal_path, history.archive_dir, config_file} <= owned
    # The folders under images_data_dir, as each store writes them, are the ones in the list.
    images = resolved.images_data_dir
    stores = {scans_dir(images), record_path(images, "session", "s1").parent.parent, resolved.spill_dir}
    assert stores == {images / name for name in IMAGES_DATA_FOLDERS}
    assert stores <= owned


@pytest.mark.integration
def test_the_app_serves_files_without_the_token_only_from_the_open_folders(
    sim: SimRig, service: CaptureService
) -> None:
    app = create_app(service)
    root = Path(app.root_path)
    folders = {(root / (app.static_folder or "")).resolve(), (root / str(app.template_folder)).resolve()}
    folders |= {
        (Path(bp.root_path) / bp.static_folder).resolve()
        for bp in app.blueprints.values()
        if bp.static_folder
    }
    assert folders <= set(OPEN_FOLDERS)


# -- PUT /config (the pure rules) ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("history_file", "api/static/h.json"),
        ("images_data_dir", "api/static/data"),
        ("save_dir", "api/static/sess"),
        ("save_dir", "api"),  # would hold the served folder
        ("history_file", "api/templates/h.json"),
    ],
)
def test_no_path_lands_in_a_folder_served_without_the_token(key: str, value: str) -> None:
    # config.json where the service ships it: beside application.py, so "api/static" is the real one.
    config_file = PROJECT_DIR / "config.json"
    config = Config()
    place = Place(config_file, PROJECT_DIR, config.resolve(PROJECT_DIR))
    exc = refusal(config, {key: value}, place)
    assert exc.status == 403 and "served without the token" in reasons(exc, key), exc.details
    assert key in str(exc)


@pytest.mark.parametrize(
    ("patch", "key", "why"),
    [
        ({"history_file": "schedules.json"}, "history_file", "names schedules.json"),
        ({"history_file": "presets.json"}, "history_file", "names presets.json"),
        # Its archive folder would be save_images/.
        ({"history_file": "save_images.json"}, "history_file", "archives of history_file"),
        ({"history_file": "images_data/catalog.sqlite"}, "history_file", "lies inside images_data_dir"),
        ({"images_data_dir": "history"}, "images_data_dir", "archives of history_file"),
        ({"images_data_dir": "save_images"}, "images_data_dir", "names save_dir"),
        ({"save_dir": "images_data/scans"}, "save_dir", "lies inside"),
        ({"save_dir": "."}, "save_dir", "would hold config.json"),
    ],
)
def test_no_path_names_a_file_another_store_owns(
    tmp_path: Path, patch: dict[str, Any], key: str, why: str
) -> None:
    config, place = config_in(tmp_path)
    assert not (tmp_path / SCHEDULES_FILE).exists() and not (tmp_path / PRESETS_FILE).exists()
    exc = refusal(config, patch, place)
    assert exc.status == 403 and why in reasons(exc, key), exc.details


def test_paths_apart_from_every_owned_file_are_accepted(tmp_path: Path) -> None:
    config, place = config_in(tmp_path)
    patch = {
        "history_file": "logs/requests.json",
        "save_dir": "data/sessions",
        "images_data_dir": "data/work",
    }
    new = plan_change(config, patch, place)
    assert (new.history_file, new.save_dir, new.images_data_dir) == tuple(patch.values())


# -- at start --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "key", "why"),
    [
        ({"history_file": str(STATIC / "h.json")}, "history_file", "served without the token"),
        ({"save_dir": str(STATIC / "sess")}, "save_dir", "served without the token"),
        ({"history_file": "schedules.json"}, "history_file", "names schedules.json"),
        ({"images_data_dir": "save_images"}, "images_data_dir", "names save_dir"),
    ],
)
def test_a_config_json_doing_it_does_not_start(
    tmp_path: Path, data: dict[str, Any], key: str, why: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    message = str(info.value)
    assert f"{key}: " in message and why in message and "change these paths in config.json" in message


# -- over HTTP -------------------------------------------------------------------------------------
@pytest.fixture
def live(sim: SimRig, start_configured: Callable[..., CaptureService]) -> FlaskClient:
    # storage_roots admits the project's api/ folder, so the served-folder rule is what refuses.
    service = start_configured(api={"token": TOKEN}, storage_roots=[str(PROJECT_DIR / "api")])
    return create_app(service).test_client()


@pytest.mark.integration
def test_put_config_refuses_the_reproductions_and_saves_nothing(live: FlaskClient, tmp_path: Path) -> None:
    before = (tmp_path / "config.json").read_bytes()
    for patch, key in (
        ({"history_file": str(STATIC / "h.json")}, "history_file"),
        ({"images_data_dir": str(STATIC / "data")}, "images_data_dir"),
        ({"save_dir": str(STATIC / "sess")}, "save_dir"),
        ({"history_file": "schedules.json"}, "history_file"),
        ({"history_file": "presets.json"}, "history_file"),
    ):
        resp = live.put("/config", json=patch, headers=AUTH)
        body = resp.get_json()
        assert resp.status_code == 403, (patch, body)
        assert key in body["error"] and key in [d["field"] for d in body["details"]], body
        assert (tmp_path / "config.json").read_bytes() == before
    assert not (STATIC / "h.json").exists() and not (STATIC / "data").exists()
