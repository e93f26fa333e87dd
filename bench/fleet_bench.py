"""The fleet's shared catalog at scale: sessions of 3 nodes in PostgreSQL beside the same in SQLite.

For each engine (the same rows through the one interface, sessions.catalog_backend.CatalogBackend):

- the rows written (rows/s: the rate a catalog is filled at);
- a page of 20 (GET /sessions's catalog part), p50 / p95 in ms, with its total counted, unfiltered and
  per filter (SQLite's remembered totals are forgotten before each page, so both count every time);
- a heartbeat (one node's upsert) and the fleet's list (GET /fleet's read), p50 / p95 in ms;

and the outbox's catch-up after an outage: a node's catalog.sqlite holding ``--outage-rows`` queued
rows (what piles up while PostgreSQL is away) drained into PostgreSQL by the outbox worker, rows/s.

    python bench/fleet_bench.py [--sessions 100000] [--nodes 3] [--pages 200] [--outage-rows 20000]
                                [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--json]

A database of its own is made on that server and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from rigcore.config_fleet import CatalogConfig
from service.fleet.outbox_worker import OutboxWorker
from sessions.catalog import Catalog
from sessions.catalog_backend import CatalogBackend, NodeBeat
from sessions.catalog_filters import SessionQuery
from sessions.catalog_pg import PgCatalog
from sessions.catalog_rows import SessionRow

CAMERAS = ("cameradevice_lwir_1", "cameradevice_rgb_1", "cameradevice_swir_1", "cameradevice_vnir_playerone")
LABELS = ("roof east", "gate", "ridge sweep", "yard", None, None, None, None)
WRITE_BATCH = 1000
START = 1_764_460_800.0  # 2025-11-30, one session a minute from there


def filters(sessions: int) -> dict[str, SessionQuery]:
    """The filters timed; the day is the middle one of the sessions' span (one a minute)."""
    day = START + (sessions * 60 // 2 // 86400) * 86400
    return {
        "none": SessionQuery(),
        "node": SessionQuery(node="rig-b"),
        "status": SessionQuery(status="partial"),
        "kind": SessionQuery(kind="event"),
        "camera": SessionQuery(camera="cameradevice_vnir_playerone"),
        "since/until (a day)": SessionQuery(since=day, until=day + 86400),
        "pan 30-40 deg": SessionQuery(pan_min=3000, pan_max=4000),
        "q (label)": SessionQuery(q="ridge"),
        "pan + tilt + camera": SessionQuery(
            pan_min=3000, pan_max=4000, tilt_min=0, camera="cameradevice_rgb_1"
        ),
    }


def make_row(node: str, i: int, rnd: random.Random) -> SessionRow:
    started = START + i * 60 + rnd.random()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    cams = tuple(sorted(rnd.sample(CAMERAS, rnd.randint(1, 3))))
    return SessionRow(
        node_id=node,
        session_id=f"{stamp}-{i % 1000:03d}",
        folder=f"/data/{node}/{i}",
        status=rnd.choices(("complete", "partial", "failed"), (90, 8, 2))[0],
        kind="event" if rnd.random() < 0.05 else "recording",
        job_id=uuid.UUID(int=rnd.getrandbits(128)).hex,
        settled_at=started - 1,
        started_at=started,
        finished_at=started + 5,
        cameras=cams,
        scan_id=f"scan-{i // 50}" if i % 3 == 0 else None,
        pose_index=i % 50 if i % 3 == 0 else None,
        pan_x100=rnd.randint(-18000, 18000),
        tilt_x100=rnd.randint(-9000, 9000),
        label=rnd.choice(LABELS),
        frame_count=rnd.randint(10, 500),
        bytes=rnd.randint(10**6, 10**9),
        format_version=3,
        upload_state=None,
        upload_detail=None,
        location=None,
    )


def rows_of(sessions: int, nodes: int, first: str = "a") -> list[SessionRow]:
    rnd = random.Random(26)
    names = [f"rig-{chr(ord(first) + k)}" for k in range(nodes)]
    return [make_row(names[i % nodes], i, rnd) for i in range(sessions)]


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 2),
    }


def timed(call: Callable[[], object], n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return percentiles(times)


def fill(backend: CatalogBackend, rows: list[SessionRow]) -> float:
    started = time.perf_counter()
    for at in range(0, len(rows), WRITE_BATCH):
        backend.put_rows(rows[at : at + WRITE_BATCH])
    return len(rows) / (time.perf_counter() - started)


def pages(
    backend: CatalogBackend, queries: dict[str, SessionQuery], n_pages: int, before: Callable[[], None]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    rnd = random.Random(7)
    for name, query in queries.items():
        total = backend.query(query, 20, 0).total
        top = max(0, min(total - 20, 200))  # the first ten pages: where people look

        def page(query: SessionQuery = query, top: int = top) -> None:
            before()
            backend.query(query, 20, rnd.randint(0, top))

        out[name] = {"matching": total, **timed(page, n_pages)}
    return out


def heartbeats(backend: CatalogBackend, n: int) -> dict[str, Any]:
    state = {"broker": {"connected": True}, "streams": {"connected": True}, "job": None, "jobs_waiting": 0}
    beat = NodeBeat("rig-a", "http://rig-a:5000", "0.1.0", 5.0, START, state)
    return {"beat": timed(lambda: backend.beat(beat), n), "fleet": timed(backend.nodes, n)}


@contextmanager
def database(server: str) -> Iterator[str]:
    name = f"rc_fleet_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def catch_up(shared: PgCatalog, folder: Path, n_rows: int) -> dict[str, Any]:
    """A node's outbox holding ``n_rows`` rows (queued while the server was away) drained by the worker."""
    local = Catalog(folder / "save", folder / "images_data", node_id="rig-z", outbox=True)
    local.refresh()
    try:
        fill(local, rows_of(n_rows, 1, first="z"))
        local.outbox.resync(f"{shared.shown_url} {shared.connect()}")  # as if these rows were sent before
        queued = local.outbox.lag().rows
        worker = OutboxWorker(local.outbox, shared, CatalogConfig(batch_rows=500))
        started = time.perf_counter()
        while worker.round() == 0:
            pass
        seconds = time.perf_counter() - started
        assert local.outbox.lag().rows == 0, worker.status()
        return {"rows": queued, "seconds": round(seconds, 2), "rows_s": round(queued / seconds)}
    finally:
        local.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = rows_of(args.sessions, args.nodes)
    result: dict[str, Any] = {"sessions": args.sessions, "nodes": args.nodes, "pages": args.pages}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp, database(args.postgres) as url:
        lite = Catalog(Path(tmp) / "save", Path(tmp) / "images_data", node_id="rig-a")
        lite.refresh()
        shared = PgCatalog(url, statement_timeout_s=120)
        try:
            for name, backend, before in (
                ("sqlite", lite, lite.forget_totals),
                ("postgresql", shared, lambda: None),
            ):
                written = fill(backend, rows)
                if isinstance(backend, PgCatalog):
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute("VACUUM ANALYZE sessions")
                result[name] = {
                    "write_rows_s": round(written),
                    "pages": pages(backend, filters(args.sessions), args.pages, before),
                    **heartbeats(backend, args.pages),
                }
            result["outbox_catch_up"] = catch_up(shared, Path(tmp) / "node", args.outage_rows)
        finally:
            lite.close()
            shared.close()
    return result


def report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['sessions']:,} sessions from {r['nodes']} nodes; a page of 20 with its total, "
        f"p50 / p95 ms over {r['pages']} pages",
        "",
        "| filter | matching | SQLite | PostgreSQL |",
        "|---|---:|---:|---:|",
    ]
    for name, pg in r["postgresql"]["pages"].items():
        lite = r["sqlite"]["pages"][name]
        both = f"{lite['p50_ms']} / {lite['p95_ms']} | {pg['p50_ms']} / {pg['p95_ms']}"
        lines.append(f"| {name} | {pg['matching']:,} | {both} |")
    for what, label in (("beat", "heartbeat (one upsert)"), ("fleet", "GET /fleet's read")):
        lite, pg = r["sqlite"][what], r["postgresql"][what]
        lines.append(f"| {label} | | {lite['p50_ms']} / {lite['p95_ms']} | {pg['p50_ms']} / {pg['p95_ms']} |")
    lines.append(
        f"| rows written, rows/s | | {r['sqlite']['write_rows_s']:,} | {r['postgresql']['write_rows_s']:,} |"
    )
    up = r["outbox_catch_up"]
    drained = f"{up['rows']:,} rows in {up['seconds']} s = {up['rows_s']:,} rows/s"
    lines += ["", f"outbox catch-up after an outage: {drained}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--outage-rows", type=int, default=20_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
