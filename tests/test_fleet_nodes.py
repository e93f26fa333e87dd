"""Two nodes, one shared catalog: each a real service process (python application.py) with its own
simulated rig and its own broker, writing to one PostgreSQL database.

They see each other's sessions (``GET /sessions?node=all``) and each other online (``GET /fleet``);
one killed with SIGKILL is offline within 30 s (three of its 0.5 s heartbeat intervals here) and its
sessions stay listed. Skipped where no PostgreSQL answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from rigcore.atomic import write_json_atomic
from simulator.config import SimConfig
from simulator.rig import SimRig
from tests.conftest import PrivateBroker, batch, free_port, rigcli, scaled, service_process, until

HEARTBEAT_S = 0.5
CAMERA = "cameradevice_lwir_1"


@contextmanager
def node(stack: ExitStack, folder: Path, node_id: str, catalog_url: str) -> Iterator[tuple[str, Any]]:
    """One node: its broker, its simulated rig, its service process; yields (url, process)."""
    folder.mkdir()
    broker = PrivateBroker(folder)
    broker.start()
    stack.callback(broker.kill)
    prefix = f"rcfleet_{uuid.uuid4().hex[:8]}"
    rig = SimRig(SimConfig(mqtt_port=broker.port, topic_prefix=prefix, http_port=0, ws_port=0))
    rig.start()
    stack.callback(rig.stop)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = {
        "api": {"host": "127.0.0.1", "port": port},
        "mqtt": {"port": broker.port, "topic_prefix": prefix},
        "invoke_url": rig.http_url,
        "streams": [{"url": rig.ws_url}],
        "node": {"id": node_id, "url": url},
        "catalog": {"url": catalog_url, "heartbeat_s": HEARTBEAT_S, "retry_min_s": 0.2, "retry_max_s": 1},
    }
    write_json_atomic(folder / "config.json", config)
    with service_process(folder / "config.json", folder, port) as proc:
        yield url, proc


def record(url: str) -> str:
    """One short recording on the node at ``url``; its session id."""
    answer = requests.post(
        f"{url}/process-request?wait=true",
        json=batch(0, 0, seconds=0.5, cameras=(CAMERA,)),
        timeout=scaled(60),
    ).json()
    assert answer["status"] == "succeeded", answer
    return str(answer["session"]["session_id"])


def listed(url: str, **params: str) -> dict[str, Any]:
    resp = requests.get(f"{url}/sessions", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def fleet(url: str) -> dict[str, dict[str, Any]]:
    return {n["node_id"]: n for n in requests.get(f"{url}/fleet", timeout=10).json()["nodes"]}


@pytest.mark.integration
def test_two_nodes_see_each_other_and_a_killed_one_goes_offline(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    catalog_url = make_database()
    with ExitStack() as stack:
        url_a, _proc_a = stack.enter_context(node(stack, tmp_path / "a", "rig-a", catalog_url))
        url_b, proc_b = stack.enter_context(node(stack, tmp_path / "b", "rig-b", catalog_url))
        session_a, session_b = record(url_a), record(url_b)
        manifest = json.loads((tmp_path / "a" / "save_images" / session_a / "session.json").read_text())
        assert manifest["node_id"] == "rig-a"

        # Each node lists its own as before, and the fleet's with ?node=all.
        assert [s["session_id"] for s in listed(url_a)["sessions"]] == [session_a]
        for here in (url_a, url_b):
            page = until(_both_from(here), 20, "both sessions in the shared catalog")
            by_node = {s["node_id"]: s for s in page["sessions"]}
            assert page["shared"] is True and page["total"] == 2
            assert by_node["rig-a"]["session_id"] == session_a and by_node["rig-b"]["session_id"] == session_b
        remote = {s["node_id"]: s for s in listed(url_a, node="all")["sessions"]}["rig-b"]
        assert remote["remote"] is True and remote["status"] == "complete"
        assert remote["link"] == f"{url_b}/sessions/{session_b}/report" and remote["cameras"] == {
            CAMERA: {"frame_count": None, "strip": []}
        }
        own = listed(url_a, node="rig-b")
        assert [s["session_id"] for s in own["sessions"]] == [session_b]
        assert listed(url_a, node="all", kind="event")["total"] == 0

        nodes = until(lambda: _both_online(url_a), 20, "both nodes online")
        assert nodes["rig-b"]["url"] == url_b and nodes["rig-b"]["broker"] == {"connected": True}
        assert nodes["rig-a"]["catalog"]["backend"] == "postgresql"
        fleet_text, sessions_text = (
            cli("fleet", "--url", url_a),
            cli("sessions", "--node", "all", "--url", url_a),
        )
        assert (
            "rig-b" in fleet_text and "2 of 2 nodes online" in fleet_text and "0 rows waiting" in fleet_text
        )
        assert session_b in sessions_text and "rig-b" in sessions_text and "2 of 2 sessions" in sessions_text
        status = requests.get(f"{url_a}/status", timeout=10).json()["catalog"]
        assert status["backend"] == "postgresql" and status["lag"]["rows"] == 0, status
        assert "***" not in status["shared"]["url"]  # no password in this URL to hide

        killed_at = time.monotonic()
        os.kill(proc_b.pid, signal.SIGKILL)
        proc_b.wait(10)
        until(lambda: not fleet(url_a)["rig-b"]["online"], 30, "rig-b offline")
        assert time.monotonic() - killed_at < 30
        assert fleet(url_a)["rig-a"]["online"]
        after = listed(url_a, node="rig-b")  # a dead node's sessions stay listed
        assert [s["session_id"] for s in after["sessions"]] == [session_b]


def cli(*argv: str) -> str:
    code, out, err = rigcli(*argv)
    assert code == 0, err
    return out


def _both_from(url: str) -> Callable[[], dict[str, Any] | None]:
    def both() -> dict[str, Any] | None:
        page = listed(url, node="all")
        return page if page["total"] == 2 else None

    return both


def _both_online(url: str) -> dict[str, dict[str, Any]] | None:
    nodes = fleet(url)
    return nodes if {"rig-a", "rig-b"} <= set(nodes) and all(n["online"] for n in nodes.values()) else None
