"""Load: 50 concurrent POSTs, valid and invalid mixed, while a recording runs.

Starts the simulated rig and the service in-process on loopback (the real Mosquitto on
127.0.0.1:1883 must be running), then checks and prints:

- every valid batch was executed exactly once, in arrival order, or refused with 503 (queue full);
- every invalid batch got a 4xx and executed nothing;
- history.json has exactly one entry per request, none lost or duplicated;
- latency of rejections and acceptances (p50/p99).

With ``--tls`` the same load runs twice, over plain HTTP and over HTTPS (the service's TLS front,
api.server_tls, with a throwaway certificate from trustme), and the figures are printed side by side.
Every request opens its own connection, so the HTTPS figures include a TLS handshake each.

    python bench/load.py [--requests 50] [--queue-size 10] [--tls] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import create_app
from api.server import ApiServer
from rigcore.config import Config
from service.capture import CaptureService
from service.status import JobPhase, JobStatus
from simulator.config import SimConfig
from simulator.rig import SimRig


def pan_batch(pan: int) -> dict[str, Any]:
    return {
        "requests": [
            {
                "target_id": "entity",
                "device_id": "acikgoz_pantilt",
                "command_id": "set_pan_position_degree",
                "args": {"pan_position_deg_x100": pan},
            }
        ]
    }


def invalid_batch(i: int) -> dict[str, Any]:
    kinds: list[dict[str, Any]] = [
        {"requests": []},
        {"requests": [{"target_id": "entity", "device_id": "toaster", "command_id": "x"}]},
        {
            "requests": [
                {
                    "target_id": "entity",
                    "device_id": "acikgoz_pantilt",
                    "command_id": "set_pan_position_degree",
                    "args": {"pan_position_deg_x100": "90"},
                }
            ]
        },
        {"nope": 1},
    ]
    return kinds[i % len(kinds)]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Plan = list[tuple[str, dict[str, Any], int | None]]
Verify = str | bool  # requests' verify: the CA file of an https service


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--queue-size", type=int, default=10)
    ap.add_argument("--tls", action="store_true", help="run over HTTP and over HTTPS; figures side by side")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def service_config(rig: SimRig, prefix: str, queue_size: int, work: Path, tls: dict[str, str]) -> Config:
    return Config.from_dict(
        {
            "api": {"host": "127.0.0.1", "port": 0, "queue_size": queue_size, **tls},
            "mqtt": {"topic_prefix": prefix},
            "invoke_url": rig.http_url,
            "streams": [{"url": rig.ws_url}],
            "save_dir": str(work / "save_images"),
            "images_data_dir": str(work / "images_data"),
            "history_file": str(work / "history.json"),
        }
    )


def start_recording(url: str, verify: Verify) -> None:
    """Start a 5 s recording and return once its job is in the recording phase."""
    recording: dict[str, Any] = {
        "requests": [
            {
                "target_id": "camera_device",
                "device_id": "cameradevice_swir_1",
                "command_id": "start_recording_command",
                "args": {"duration_second": 5, "camera_ids": ["cameradevice_swir_1"]},
            }
        ]
    }
    first = requests.post(
        f"{url}/process-request?wait=false", json=recording, timeout=10, verify=verify
    ).json()
    while (
        requests.get(f"{url}/jobs/{first['job_id']}", timeout=10, verify=verify).json()["phase"]
        != "recording"
    ):
        time.sleep(0.05)


def plan_batches(count: int) -> Plan:
    """Two in five batches invalid; each valid one a pan move unique to it."""
    plan: Plan = []
    for i in range(count):
        if i % 5 in (1, 3):
            plan.append(("invalid", invalid_batch(i), None))
        else:
            pan = 100 * (i + 1)  # unique per batch: identifies its command at the rig
            plan.append(("valid", pan_batch(pan), pan))
    return plan


def send_concurrently(url: str, plan: Plan, verify: Verify) -> list[dict[str, Any]]:
    """POST every batch of plan at once, one thread each; the outcomes in plan order."""
    barrier = threading.Barrier(len(plan))

    def send(item: tuple[str, dict[str, Any], int | None]) -> dict[str, Any]:
        kind, body, pan = item
        barrier.wait()
        t0 = time.perf_counter()
        resp = requests.post(f"{url}/process-request?wait=false", json=body, timeout=30, verify=verify)
        return {
            "kind": kind,
            "pan": pan,
            "status": resp.status_code,
            "latency_s": time.perf_counter() - t0,
            "body": resp.json(),
        }

    with ThreadPoolExecutor(max_workers=len(plan)) as pool:
        return list(pool.map(send, plan))


def wait_for_jobs(
    url: str, accepted: list[dict[str, Any]], verify: Verify
) -> dict[str, dict[str, Any]] | None:
    """Each accepted job once it is done, by job id; None if they are not all done within 300 s."""
    deadline = time.monotonic() + 300

    def job(o: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = requests.get(
            f"{url}/jobs/{o['body']['job_id']}", timeout=10, verify=verify
        ).json()
        return found

    for o in accepted:
        while job(o)["phase"] != JobPhase.DONE:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
    return {o["body"]["job_id"]: job(o) for o in accepted}


def check_valid_outcome(
    o: dict[str, Any], jobs: dict[str, dict[str, Any]], sent_pans: list[Any]
) -> list[str]:
    problems: list[str] = []
    if o["status"] == 202:
        if sent_pans.count(o["pan"]) != 1:
            problems.append(f"pan {o['pan']} executed {sent_pans.count(o['pan'])} times")
        if jobs[o["body"]["job_id"]]["status"] != JobStatus.SUCCEEDED:
            problems.append(f"job for pan {o['pan']} ended {jobs[o['body']['job_id']]['status']}")
    elif o["status"] == 503:
        if o["pan"] in sent_pans:
            problems.append(f"refused pan {o['pan']} was executed")
    else:
        problems.append(f"valid batch answered {o['status']}")
    return problems


def check_outcomes(
    outcomes: list[dict[str, Any]], jobs: dict[str, dict[str, Any]], sent_pans: list[Any]
) -> list[str]:
    problems: list[str] = []
    for o in outcomes:
        if o["kind"] == "invalid" and o["status"] != 400:
            problems.append(f"invalid batch answered {o['status']}")
        if o["kind"] == "valid":
            problems += check_valid_outcome(o, jobs, sent_pans)
    return problems


def check_order(jobs: dict[str, dict[str, Any]], sent_pans: list[Any]) -> list[str]:
    problems: list[str] = []
    # Arrival order = the order the service queued them (created_at); execution order must match.
    by_arrival = sorted(jobs.values(), key=lambda j: j["created_at"])
    by_start = sorted(jobs.values(), key=lambda j: j["started_at"])
    if [j["job_id"] for j in by_arrival] != [j["job_id"] for j in by_start]:
        problems.append("jobs did not run in arrival order")
    arrival_pans = [j["results"][0]["request"]["args"]["pan_position_deg_x100"] for j in by_arrival]
    if [p for p in sent_pans if p in arrival_pans] != arrival_pans:
        problems.append("the rig received the moves in another order than the batches arrived")
    return problems


def check_history(history: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    ids = [e["id"] for e in history]
    if len(ids) != len(set(ids)):
        problems.append("duplicate history entries")
    if len(history) != len(outcomes) + 1:
        problems.append(f"history has {len(history)} entries for {len(outcomes) + 1} requests")
    return problems


def load_figures(
    outcomes: list[dict[str, Any]],
    accepted: list[dict[str, Any]],
    history: list[dict[str, Any]],
    problems: list[str],
) -> dict[str, Any]:
    rejected = [o["latency_s"] for o in outcomes if o["status"] >= 400]
    acc = [o["latency_s"] for o in accepted]
    return {
        "requests": len(outcomes),
        "accepted": len(accepted),
        "refused_503": sum(1 for o in outcomes if o["status"] == 503),
        "invalid_400": sum(1 for o in outcomes if o["status"] == 400),
        "rejection_latency_ms_p50": round(pct(rejected, 0.5) * 1000, 1),
        "rejection_latency_ms_p99": round(pct(rejected, 0.99) * 1000, 1),
        "accept_latency_ms_p50": round(pct(acc, 0.5) * 1000, 1),
        "accept_latency_ms_p99": round(pct(acc, 0.99) * 1000, 1),
        "history_entries": len(history),
        "problems": problems,
    }


def print_report(figures: dict[str, Any], problems: list[str]) -> None:
    print(f"{'requests':<28}{figures['requests']}")
    for key in ("accepted", "refused_503", "invalid_400", "history_entries"):
        print(f"{key:<28}{figures[key]}")
    print(
        f"{'rejection latency p50/p99':<28}{figures['rejection_latency_ms_p50']} / "
        f"{figures['rejection_latency_ms_p99']} ms"
    )
    acc_txt = f"{figures['accept_latency_ms_p50']} / {figures['accept_latency_ms_p99']} ms"
    print(f"{'accept latency p50/p99':<28}{acc_txt}")
    print("problems:", "none" if not problems else "")
    for p in problems:
        print("  -", p)
    print(json.dumps(figures))


def make_certificate(work: Path) -> tuple[dict[str, str], str]:
    """A throwaway CA and a server certificate for 127.0.0.1: the api keys, and the CA file."""
    import trustme  # a test dependency (requirements-dev.txt), needed only for --tls

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(work / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    return {"tls_cert": str(work / "cert.pem"), "tls_key": str(work / "key.pem")}, str(work / "ca.pem")


def run_load(args: argparse.Namespace, tls: bool) -> tuple[dict[str, Any], list[str]] | None:
    """One run of the load on a fresh rig and service: (figures, problems), or None when it did not
    get as far as figures."""
    prefix = f"load_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="rigcapture-load-"))
    keys, verify = make_certificate(work) if tls else ({}, True)
    rig = SimRig(SimConfig(topic_prefix=prefix, http_port=0, ws_port=0, pan_speed_deg_s=180.0))
    rig.start()
    service = CaptureService(service_config(rig, prefix, args.queue_size, work, keys), base_dir=work)
    service.start()
    # The production server (waitress, with its TLS front for https), so the figures are the service's own.
    server = ApiServer(create_app(service), service.config.api)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = server.url
    try:
        if not service.wait_ready(15):
            print("service not ready", file=sys.stderr)
            return None
        start_recording(url, verify)
        outcomes = send_concurrently(url, plan_batches(args.requests), verify)
        accepted = [o for o in outcomes if o["status"] == 202]
        done = wait_for_jobs(url, accepted, verify)
        if done is None:
            print("jobs did not finish in time", file=sys.stderr)
            return None
        jobs = done
    finally:
        server.shutdown()
        serving.join(5)
        server.close()
        service.stop()
        rig.stop()

    commands = [c["command"] for c in rig.commands_received()]
    sent_pans = [
        c["args"]["pan_position_deg_x100"] for c in commands if c["command_id"] == "set_pan_position_degree"
    ]
    history = json.loads((work / "history.json").read_text())["requests"]
    problems = (
        check_outcomes(outcomes, jobs, sent_pans)
        + check_order(jobs, sent_pans)
        + check_history(history, outcomes)
    )
    return load_figures(outcomes, accepted, history, problems), problems


def print_side_by_side(runs: dict[str, dict[str, Any]]) -> None:
    keys = [k for k in next(iter(runs.values())) if k != "problems"]
    print(f"{'':<28}" + "".join(f"{name:>12}" for name in runs))
    for key in keys:
        print(f"{key:<28}" + "".join(f"{figures[key]!s:>12}" for figures in runs.values()))
    for name, figures in runs.items():
        print(f"problems ({name}):", "none" if not figures["problems"] else "")
        for p in figures["problems"]:
            print("  -", p)
    print(json.dumps(runs))


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # its "task queue depth" notes are the point here
    runs: dict[str, dict[str, Any]] = {}
    for name in ("http", "https") if args.tls else ("http",):
        result = run_load(args, tls=name == "https")
        if result is None:
            return 1
        runs[name] = result[0]
    if args.json:
        print(json.dumps(runs if args.tls else runs["http"]))
    elif args.tls:
        print_side_by_side(runs)
    else:
        print_report(runs["http"], runs["http"]["problems"])
    return 0 if not any(figures["problems"] for figures in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
