"""One suite, both catalog engines: the node's own SQLite catalog and the fleet's shared PostgreSQL
catalog answer the same (sessions.catalog_backend.CatalogBackend).

Rows of three nodes go in through ``put_rows``; every filter of GET /sessions, paging, order,
replacing, deleting, pruning, upload places and heartbeats must come back the same from either. The
PostgreSQL runs are skipped (saying why) where none answers on 127.0.0.1:5432; each test gets a
database of its own, dropped afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sessions.catalog import Catalog
from sessions.catalog_backend import CatalogBackend, NodeBeat
from sessions.catalog_filters import SessionQuery
from sessions.catalog_pg import PgCatalog
from sessions.catalog_rows import SessionRow
from sessions.catalog_schema import LATEST
from sessions.folders import sort_key

NODES = ("rig-a", "rig-b", "rig-c")
CAMS = ("cameradevice_lwir_1", "cameradevice_rgb_1", "cameradevice_swir_1")


def make_row(node: str, i: int, **changes: object) -> SessionRow:
    row = SessionRow(
        node_id=node,
        session_id=f"20260301-{10 + i // 60:02d}{i % 60:02d}00-{i:03d}",
        folder=f"/data/{node}/{i}",
        status=("complete", "partial", "failed")[i % 3],
        kind="event" if i % 5 == 0 else "recording",
        job_id=f"job-{i}",
        settled_at=1000.0 + i,
        started_at=1000.0 + i * 10,
        finished_at=1005.0 + i * 10,
        cameras=CAMS[: 1 + i % 3],
        scan_id="scan-1" if i % 4 == 0 else None,
        pose_index=i // 4 if i % 4 == 0 else None,
        pan_x100=-9000 + i * 300,
        tilt_x100=(i % 7) * 100 - 300,
        label="Roof east" if i % 6 == 0 else None,
        frame_count=i * 3,
        bytes=i * 1000,
        format_version=3,
        upload_state="uploaded" if i % 8 == 0 else None,
        upload_detail={"state": "uploaded", "attempts": 1} if i % 8 == 0 else None,
        location=f"s3://bucket/rigs/{i}/" if i % 8 == 0 else None,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


ROWS = [make_row(node, i + k) for k, node in enumerate(NODES) for i in range(30)]


def matches(row: SessionRow, q: SessionQuery) -> bool:
    """What each filter means, said once in Python."""
    checks = [
        q.status is None or row.status == q.status,
        q.kind is None or row.kind == q.kind,
        q.node in (None, "all") or row.node_id == q.node,
        q.scan_id is None or row.scan_id == q.scan_id,
        q.camera is None or q.camera in row.cameras,
        q.since is None or (row.started_at is not None and row.started_at >= q.since),
        q.until is None or (row.started_at is not None and row.started_at < q.until),
        q.pan_min is None or (row.pan_x100 is not None and row.pan_x100 >= q.pan_min),
        q.pan_max is None or (row.pan_x100 is not None and row.pan_x100 <= q.pan_max),
        q.tilt_min is None or (row.tilt_x100 is not None and row.tilt_x100 >= q.tilt_min),
        q.tilt_max is None or (row.tilt_x100 is not None and row.tilt_x100 <= q.tilt_max),
        q.q is None or q.q.lower() in f"{row.session_id}\n{row.label or ''}".lower(),
    ]
    return all(checks)


def newest_first(rows: list[SessionRow]) -> list[tuple[str, str]]:
    ordered = sorted(rows, key=lambda r: (sort_key(r.session_id), r.node_id), reverse=True)
    return [(r.node_id, r.session_id) for r in ordered]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CatalogBackend]:
    if request.param == "sqlite":
        catalog = Catalog(tmp_path / "save", tmp_path / "images_data", node_id=NODES[0])
        catalog.refresh()
        yield catalog
        catalog.close()
        return
    make: Callable[[], str] = request.getfixturevalue("make_database")
    shared = PgCatalog(make(), connect_timeout_s=5)
    yield shared
    shared.close()


@pytest.fixture
def filled(backend: CatalogBackend) -> CatalogBackend:
    backend.put_rows(ROWS)
    return backend


def keys(
    backend: CatalogBackend, q: SessionQuery, limit: int = 500, offset: int = 0
) -> list[tuple[str, str]]:
    return [(r.node_id, r.session_id) for r in backend.query(q, limit, offset).rows]


def test_the_schema_is_made_once_and_found_current(backend: CatalogBackend, tmp_path: Path) -> None:
    assert backend.schema_version() == LATEST
    if isinstance(backend, PgCatalog):  # a second node starting on the same database changes nothing
        again = PgCatalog(backend.url)
        try:
            assert again.connect() == backend.connect()
            assert again.schema_version() == LATEST
        finally:
            again.close()


@pytest.mark.parametrize(
    "query",
    [
        SessionQuery(),
        SessionQuery(status="partial"),
        SessionQuery(kind="event"),
        SessionQuery(kind="recording", status="complete"),
        SessionQuery(node="rig-b"),
        SessionQuery(node="all", camera="cameradevice_swir_1"),
        SessionQuery(camera="cameradevice_rgb_1", node="rig-c"),
        SessionQuery(scan_id="scan-1"),
        SessionQuery(since=1100, until=1200),
        SessionQuery(pan_min=-3000, pan_max=0),
        SessionQuery(tilt_min=0, tilt_max=200, status="failed"),
        SessionQuery(q="roof"),
        SessionQuery(q="RO"),  # shorter than a trigram: matched row by row, the same answer
        SessionQuery(q="0301-10"),
        SessionQuery(q="100%_"),  # LIKE's wildcards are plain characters here
        SessionQuery(camera="cameradevice_never_seen"),
    ],
    ids=lambda q: ",".join(f"{k}={v}" for k, v in vars(q).items() if v is not None) or "none",
)
def test_each_filter_answers_the_same(filled: CatalogBackend, query: SessionQuery) -> None:
    expected = newest_first([r for r in ROWS if matches(r, query)])
    page = filled.query(query, 500, 0)
    assert [(r.node_id, r.session_id) for r in page.rows] == expected
    assert page.total == len(expected)


def test_pages_follow_one_order_and_keep_every_field(filled: CatalogBackend) -> None:
    seen: list[tuple[str, str]] = []
    for offset in range(0, len(ROWS), 7):
        page = filled.query(SessionQuery(), 7, offset)
        assert page.total == len(ROWS)
        seen += [(r.node_id, r.session_id) for r in page.rows]
    assert seen == newest_first(ROWS)
    first = filled.get_row("rig-a", ROWS[0].session_id)
    assert first is not None
    assert first == replace(ROWS[0], folder=first.folder)  # the shared catalog keeps no folder
    assert filled.get_row("rig-a", "no-such-session") is None


def test_one_session_id_on_two_nodes_is_two_sessions(backend: CatalogBackend) -> None:
    a, b = make_row("rig-a", 3), make_row("rig-b", 3, status="failed")
    backend.put_rows([a, b])
    assert keys(backend, SessionQuery()) == [("rig-b", a.session_id), ("rig-a", a.session_id)]
    assert keys(backend, SessionQuery(status="failed")) == [("rig-b", a.session_id)]


def test_rows_are_replaced_deleted_and_pruned(filled: CatalogBackend) -> None:
    changed = replace(ROWS[1], status="failed", label="moved", upload_state="local-deleted")
    filled.put_rows([changed])
    got = filled.get_row(changed.node_id, changed.session_id)
    assert got is not None and (got.status, got.label, got.upload_state) == (
        "failed",
        "moved",
        "local-deleted",
    )
    assert keys(filled, SessionQuery(q="moved")) == [(changed.node_id, changed.session_id)]

    b_rows = [r for r in ROWS if r.node_id == "rig-b"]
    filled.delete_rows("rig-b", [b_rows[0].session_id])
    assert filled.query(SessionQuery(node="rig-b"), 100, 0).total == len(b_rows) - 1
    keep = [r.session_id for r in b_rows[:5]]
    assert filled.prune("rig-b", keep) == len(b_rows) - 5
    assert sorted(keys(filled, SessionQuery(node="rig-b"))) == sorted(("rig-b", sid) for sid in keep[1:])
    assert filled.query(SessionQuery(node="rig-a"), 100, 0).total == 30  # other nodes untouched


def test_heartbeats_say_online_then_offline(backend: CatalogBackend) -> None:
    state = {"broker": {"connected": True}, "job": {"job_id": "j1", "status": "running"}}
    backend.beat(NodeBeat("rig-a", "http://127.0.0.1:5001", "0.1.0", 0.2, 100.0, state))
    backend.beat(NodeBeat("rig-b", None, "0.1.0", 30.0, 100.0, {}))
    (a, b) = backend.nodes()
    assert (a.beat.node_id, a.online, a.beat.state, a.beat.url) == (
        "rig-a",
        True,
        state,
        "http://127.0.0.1:5001",
    )
    view = a.to_json()
    assert view["online"] and view["job"] == state["job"] and view["last_seen"] > 0
    time.sleep(0.8)  # beyond three of rig-a's 0.2 s intervals, well within rig-b's 30 s
    (a, b) = backend.nodes()
    assert not a.online and a.age_s >= 0.6 and b.online
    backend.beat(NodeBeat("rig-a", None, "0.1.1", 0.2, 200.0, {}))
    (a, _b) = backend.nodes()
    assert a.online and a.beat.version == "0.1.1" and a.beat.url is None
