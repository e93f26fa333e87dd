"""The fleet's pure parts and the node's own side of it, without PostgreSQL: the node and catalog
configuration (file-only keys, passwords as ***), the ?node= and ?kind= filters, the outbox in the
node's catalog.sqlite (queued with each change, coalesced, kept until sent), the outbox worker's
retries (against a stand-in for the shared catalog), and GET /fleet and GET /sessions?node= on a node
without a shared catalog."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from rigcore.config import Config
from rigcore.config_fleet import NODE_ID, REDACTED, CatalogConfig, NodeConfig, default_node_id
from rigcore.config_policy import ConfigRefused, Place, plan_change
from service.capture import CaptureService
from service.fleet.fleet import Fleet
from service.fleet.outbox_worker import OutboxWorker
from sessions.catalog import Catalog
from sessions.catalog_db import CatalogUnavailable
from sessions.catalog_filters import FilterError, SessionQuery, query_from_params
from sessions.catalog_rows import SessionRow
from sessions.manifest import SessionManifest, SessionStatus, write_manifest
from sessions.outbox import PRUNE
from tests.test_catalog_backends import make_row

SECRET = "s3cr3t-pw"
PG_URL = f"postgresql://rig:{SECRET}@db.example:5432/fleet"


# -- configuration -----------------------------------------------------------------------------------
def test_node_and_catalog_defaults_and_checks() -> None:
    cfg = Config()
    assert cfg.node.id == default_node_id() and NODE_ID.fullmatch(cfg.node.id)
    assert cfg.catalog.url is None and not cfg.catalog.shared and cfg.catalog.heartbeat_s == 5.0
    assert Config.from_dict({"catalog": {"url": "sqlite"}}).catalog.shared is False
    assert Config.from_dict({"catalog": {"url": PG_URL}}).catalog.shared is True
    assert NodeConfig(url="http://rig-a:5000/").url == "http://rig-a:5000"
    for bad in ({"node": {"id": "all"}}, {"node": {"id": "a b"}}, {"node": {"url": "rig-a:5000"}}):
        with pytest.raises(Exception, match="node"):
            Config.from_dict(bad)
    with pytest.raises(Exception, match=r"catalog\.url"):
        Config.from_dict({"catalog": {"url": "mysql://x"}})
    with pytest.raises(Exception, match="retry_max_s"):
        CatalogConfig(retry_min_s=10, retry_max_s=1)


def test_passwords_in_urls_are_shown_as_stars_and_the_urls_are_file_only(tmp_path: Path) -> None:
    cfg = Config.from_dict({"catalog": {"url": PG_URL}, "node": {"url": f"http://op:{SECRET}@rig-a:5000"}})
    shown = cfg.to_json(redact=True)
    assert shown["catalog"]["url"] == f"postgresql://rig:{REDACTED}@db.example:5432/fleet"
    assert shown["node"]["url"] == f"http://op:{REDACTED}@rig-a:5000"
    assert SECRET not in json.dumps(shown)
    place = Place(config_file=tmp_path / "config.json", base_dir=tmp_path, in_force=cfg.resolve(tmp_path))
    # GET /config's view sent back unchanged is accepted (*** means "as in force") …
    assert plan_change(cfg, {"catalog": shown["catalog"], "node": shown["node"]}, place) == cfg
    # … a new place for the catalog or the node is not, over the API.
    for patch in (
        {"catalog": {"url": "postgresql://rig@other/fleet"}},
        {"node": {"url": "http://rig-b:5000"}},
    ):
        with pytest.raises(ConfigRefused) as refused:
            plan_change(cfg, patch, place)
        assert refused.value.status == 403
    changed = plan_change(cfg, {"catalog": {"heartbeat_s": 2}}, place)
    assert changed.catalog.heartbeat_s == 2
    with pytest.raises(ConfigRefused, match=r"catalog\.heartbeat_s"):
        plan_change(cfg, {"catalog": {"heartbeat_s": 600}}, place)


def test_node_and_kind_filters() -> None:
    assert query_from_params({"node": "all", "kind": "event"}) == SessionQuery(node="all", kind="event")
    assert not SessionQuery(node="rig-a").filtered() and SessionQuery(kind="event").filtered()
    for params, bad in (({"node": "a b"}, "node"), ({"kind": "movie"}, "kind"), ({"node": "x" * 65}, "node")):
        with pytest.raises(FilterError) as err:
            query_from_params(params)
        assert err.value.param == bad


# -- the outbox in the node's own catalog -------------------------------------------------------------
@pytest.fixture
def local(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(tmp_path / "save", tmp_path / "images_data", node_id="rig-a", outbox=True)
    catalog.refresh()
    yield catalog
    catalog.close()


def test_every_change_is_queued_once_and_kept_until_sent(local: Catalog) -> None:
    rows = [make_row("rig-a", i) for i in range(3)]
    local.put_rows(rows)
    local.put_rows([rows[0]])  # changed again before it was sent: still one entry
    queued = local.outbox.batch(10)
    assert sorted(sid for sid, _ in queued) == sorted([PRUNE, *(r.session_id for r in rows)])
    assert local.outbox.lag().rows == 4

    local.put_rows([rows[1]])  # changed while the batch was in flight: stays for the next one
    assert local.outbox.done(queued) == 3
    ((left, _seq),) = local.outbox.batch(10)
    assert left == rows[1].session_id

    local.remove_session(rows[2].session_id)  # gone here: queued, and sent as a deletion
    present, stored = local.outbox.rows([rows[1].session_id, rows[2].session_id])
    assert set(present) == {rows[1].session_id} and stored == {}
    assert local.outbox.lag().to_json()["rows"] == 2


def test_a_session_deleted_after_its_upload_stays_in_the_shared_catalog(local: Catalog) -> None:
    row = make_row("rig-a", 5)
    local.put_rows([row])
    local.put_rows(
        [SessionRow(**{**row.to_json(), "upload_state": "local-deleted", "location": "s3://b/x/"})]
    )
    local.remove_session(row.session_id)
    present, stored = local.outbox.rows([row.session_id])
    assert present == {} and stored[row.session_id].location == "s3://b/x/"
    assert local.outbox.keep() == [row.session_id]


def test_a_new_shared_catalog_gets_every_row(local: Catalog) -> None:
    local.put_rows([make_row("rig-a", i) for i in range(5)])
    local.outbox.done(local.outbox.batch(100))
    assert local.outbox.lag().rows == 0 and local.outbox.target() is None
    assert local.outbox.resync("postgresql://db/fleet abc") == 5
    assert local.outbox.target() == "postgresql://db/fleet abc"
    assert len(local.outbox.batch(100)) == 6  # and a PRUNE


class FlakyShared:
    """A stand-in for the shared catalog (sessions.catalog_pg.PgCatalog) that fails while ``down``."""

    shown_url = "postgresql://db/fleet"

    def __init__(self) -> None:
        self.down = True
        self.rows: dict[str, SessionRow] = {}
        self.pruned: list[list[str]] = []

    def connect(self) -> str:
        if self.down:
            raise CatalogUnavailable("the shared catalog postgresql://db/fleet failed: OperationalError")
        return "id-1"

    def apply(
        self,
        rows: Sequence[SessionRow],
        stored: Sequence[SessionRow] = (),
        deleted: tuple[str, Sequence[str]] | None = None,
    ) -> None:
        self.connect()
        self.rows.update({r.session_id: r for r in rows})
        for sid in deleted[1] if deleted else ():
            self.rows.pop(sid, None)

    def prune(self, node_id: str, keep: Collection[str]) -> int:
        self.pruned.append(list(keep))
        return 0


def test_the_worker_backs_off_while_the_shared_catalog_is_down_then_sends_everything(local: Catalog) -> None:
    local.put_rows([make_row("rig-a", i) for i in range(7)])
    shared = FlakyShared()
    worker = OutboxWorker(local.outbox, shared, CatalogConfig(batch_rows=3, retry_min_s=1, retry_max_s=4))
    waits = [worker.round() for _ in range(6)]
    assert all(0.5 <= w <= 4 for w in waits) and max(waits) > 1  # doubling, with jitter, bounded
    assert worker.status()["last_error"]["message"].startswith("the shared catalog")
    assert local.outbox.lag().rows == 8  # nothing lost, nothing taken out

    shared.down = False
    while worker.round() == 0:  # one batch after another until the outbox is empty
        pass
    assert len(shared.rows) == 7 and local.outbox.lag().rows == 0
    assert shared.pruned and len(shared.pruned[0]) == 7
    assert worker.status()["last_error"] is None and worker.status()["sent_rows"] >= 8


# -- the fleet as one node sees it ------------------------------------------------------------------
class Parts:
    def broker_connected(self) -> bool:
        return True

    def streams_connected(self) -> bool:
        return False

    def job_views(self) -> list[dict[str, Any]]:
        return [
            {"job_id": "j2", "status": "queued", "phase": "queued"},
            {"job_id": "j1", "status": "running", "phase": "recording", "progress": {"frames": 3}},
            {"job_id": "j0", "status": "succeeded", "phase": "done"},
        ]


def test_which_listing_answers_and_what_a_beat_says(local: Catalog) -> None:
    alone = Fleet(NodeConfig(id="rig-a"), CatalogConfig(), local, Parts())
    assert alone.lists_here(SessionQuery()) and alone.lists_here(SessionQuery(node="all"))
    with pytest.raises(FilterError, match="no shared catalog"):
        alone.lists_here(SessionQuery(node="rig-b"))
    beat = alone.beat()
    assert beat.state["job"] == {
        "job_id": "j1",
        "status": "running",
        "phase": "recording",
        "progress": {"frames": 3},
    }
    assert beat.state["jobs_waiting"] == 1 and beat.state["streams"] == {"connected": False}
    assert alone.status()["backend"] == "sqlite" and alone.status()["lag"] is None

    shared = Fleet(NodeConfig(id="rig-a"), CatalogConfig(url=PG_URL), local, Parts())
    assert shared.lists_here(SessionQuery(node="rig-a")) and not shared.lists_here(SessionQuery(node="all"))
    status = shared.status()  # nothing connects for it
    assert status["backend"] == "postgresql" and SECRET not in json.dumps(status)
    assert status["shared"]["url"] == f"postgresql://rig:{REDACTED}@db.example:5432/fleet"


@pytest.mark.integration
def test_a_node_without_a_shared_catalog_is_a_fleet_of_one(
    client: FlaskClient, service: CaptureService
) -> None:
    deadline = time.monotonic() + 5  # the first heartbeat is written by its thread just after the start
    while not (fleet := client.get("/fleet").get_json())["nodes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fleet["shared"] is False and [n["node_id"] for n in fleet["nodes"]] == [service.config.node.id]
    assert fleet["nodes"][0]["online"] is True
    assert client.get("/sessions?node=all").status_code == 200
    refused = client.get("/sessions?node=rig-elsewhere")
    assert refused.status_code == 400 and refused.get_json()["details"][0]["field"] == "node"
    status = client.get("/status").get_json()["catalog"]
    assert status["backend"] == "sqlite" and status["node_id"] == service.config.node.id


def test_a_renamed_node_indexes_its_folders_again_under_its_new_id(tmp_path: Path) -> None:
    folder = tmp_path / "save" / "20260101-100000-001"
    folder.mkdir(parents=True)
    write_manifest(folder, SessionManifest(session_id=folder.name, status=SessionStatus.COMPLETE))
    for node in ("old-name", "new-name"):
        catalog = Catalog(tmp_path / "save", tmp_path / "images_data", node_id=node)
        try:
            assert catalog.refresh().read == 1
            page = catalog.query(SessionQuery(), 10, 0)
            assert [(r.node_id, r.session_id) for r in page.rows] == [(node, folder.name)]
        finally:
            catalog.close()
