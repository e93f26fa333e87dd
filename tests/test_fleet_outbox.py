"""The outbox against a PostgreSQL that goes away: a private server (PostgreSQL's own initdb and
pg_ctl, run as the ``postgres`` user since they refuse root, in a temp folder on a port of its own) is
stopped while sessions are recorded and started again; recording and the local listing go on
meanwhile, ``/status`` shows the lag and the error, and once the server is back every row arrives.

Skipped where PostgreSQL's binaries (/usr/lib/postgresql/*/bin) or the postgres user are missing.
"""

from __future__ import annotations

import glob
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from service.capture import CaptureService
from sessions.catalog_filters import SessionQuery
from sessions.catalog_pg import PgCatalog
from tests.conftest import batch, free_port, scaled, until

CAMERA = "cameradevice_lwir_1"


class PrivatePostgres:
    """A PostgreSQL server of one test alone: trust auth, loopback only, fsync off (a test's data)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.skip("PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin)")
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no postgres user to run a private PostgreSQL as")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
        self.folder = Path(tempfile.mkdtemp(prefix="rctest-pg-"))
        shutil.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self.data = self.folder / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=scaled(60), check=False)
        assert done.returncode == 0, f"{tool} failed: {done.stderr or done.stdout}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=scaled(30),
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if shutil.which("runuser") is None:
        pytest.skip("runuser is not installed")
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def record(client: FlaskClient, wait: bool = True) -> dict[str, Any]:
    resp = client.post(
        f"/process-request?wait={'true' if wait else 'false'}",
        json=batch(0, 0, seconds=0.5, cameras=(CAMERA,)),
    )
    body: dict[str, Any] = resp.get_json()
    return body


@pytest.mark.integration
def test_postgres_stopped_and_started_during_recordings_loses_no_row(
    private_postgres: PrivatePostgres, start_service: Callable[..., CaptureService]
) -> None:
    catalog = {"url": private_postgres.url, "heartbeat_s": 0.5, "retry_min_s": 0.2, "retry_max_s": 1.0}
    catalog["connect_timeout_s"] = 2
    service = start_service(node={"id": "rig-x"}, catalog=catalog)
    client = create_app(service).test_client()
    shared = PgCatalog(private_postgres.url, connect_timeout_s=2)
    try:
        first = record(client)
        assert first["status"] == "succeeded", first
        until(lambda: shared.count() == 1, 20, "the first row in PostgreSQL")

        running = record(client, wait=False)  # the server goes away while this one records
        private_postgres.stop()
        assert _finished(client, running["job_id"])["status"] == "succeeded"
        during = record(client)
        assert during["status"] == "succeeded", during  # recording never waits for the catalog
        # Nor does the node's own listing (the catalog takes a saved session in aftercare, at once).
        local = until(lambda: _listed(client, 3), 10, "3 sessions listed here")

        status = until(lambda: _waiting(client), 20, "the lag and the error in /status")
        assert status["lag"]["rows"] >= 2 and status["lag"]["oldest_age_s"] >= 0
        assert "127.0.0.1" in status["last_error"]["message"]
        assert client.get("/sessions?node=all").status_code == 503  # the fleet's listing says so

        private_postgres.start()
        until(lambda: shared.count() == 3, 30, "every row in PostgreSQL")
        ids = {s["session_id"] for s in local["sessions"]}
        assert {r.session_id for r in shared.query(SessionQuery(node="rig-x"), 10, 0).rows} == ids
        status = until(lambda: _caught_up(client), 20, "an empty outbox")
        assert status["last_error"] is None and status["shared"]["sent_rows"] >= 3
    finally:
        shared.close()


def _listed(client: FlaskClient, total: int) -> dict[str, Any] | None:
    page: dict[str, Any] = client.get("/sessions").get_json()
    return page if page["total"] == total else None


def _finished(client: FlaskClient, job_id: str) -> dict[str, Any]:
    return until(lambda: _done(client.get(f"/jobs/{job_id}").get_json()), 60, "the job")


def _done(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if job.get("phase") == "done" else None


def _waiting(client: FlaskClient) -> dict[str, Any] | None:
    status: dict[str, Any] = client.get("/status").get_json()["catalog"]
    return status if status["last_error"] and status["lag"]["rows"] >= 2 else None


def _caught_up(client: FlaskClient) -> dict[str, Any] | None:
    status: dict[str, Any] = client.get("/status").get_json()["catalog"]
    return status if status["lag"]["rows"] == 0 and status["last_error"] is None else None
