"""Flask threads reading while the loop writes: a live threaded server, readers hammering the read
endpoints while posters queue small batches (and cancel some), bounded in count and time.

Every answer must be below 500 and strict JSON; every job view must have one shape, with phase "done"
exactly when the status is final, and a job once seen finished must stay finished. At the end every
job is finished and history.json has it with the same outcome.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import batch, scaled, serve

pytestmark = pytest.mark.integration

FINAL = {"succeeded", "failed", "cancelled"}
READERS = 4
POSTERS = 2
JOBS_PER_POSTER = 5  # 10 jobs: well inside the default queue (20), about 10 s of work for the rig


class Findings:
    """What the threads saw wrong, and the first job shape seen (all threads compare with it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.problems: list[str] = []
        self.job_keys: frozenset[str] | None = None
        self.job_ids: list[str] = []
        self.reads = 0

    def add(self, problem: str) -> None:
        with self._lock:
            self.problems.append(problem)

    def add_job(self, job_id: str) -> None:
        with self._lock:
            self.job_ids.append(job_id)

    def known_jobs(self) -> list[str]:
        with self._lock:
            return list(self.job_ids)

    def count_read(self) -> None:
        with self._lock:
            self.reads += 1

    def check_job(self, view: dict[str, Any], where: str) -> None:
        with self._lock:
            keys = frozenset(view)
            self.job_keys = self.job_keys or keys
            same = keys == self.job_keys
        if not same:
            self.add(f"{where}: job keys {sorted(keys)} differ from {sorted(self.job_keys or ())}")
        if (view.get("phase") == "done") != (view.get("status") in FINAL):
            self.add(f"{where}: phase {view.get('phase')!r} with status {view.get('status')!r}")


def strict_json(resp: requests.Response) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(resp.text, parse_constant=refuse)


def get(session: requests.Session, url: str, found: Findings) -> Any:
    resp = session.get(url, timeout=scaled(10))
    if resp.status_code >= 500:
        found.add(f"GET {url}: {resp.status_code} {resp.text[:300]}")
        return None
    try:
        return strict_json(resp)
    except ValueError as exc:
        found.add(f"GET {url}: not JSON ({exc}): {resp.text[:300]}")
        return None


def read_once(session: requests.Session, base: str, found: Findings, seen_done: dict[str, str]) -> None:
    """One round over the read endpoints; ``seen_done`` is this thread's finished jobs and outcomes."""
    jobs = get(session, f"{base}/jobs", found)
    views = list(jobs["jobs"]) if jobs else []
    ids = found.known_jobs()
    if ids:
        one = get(session, f"{base}/jobs/{random.choice(ids)}", found)
        views += [one] if one else []
    for view in views:
        found.check_job(view, "job view")
        before = seen_done.get(view["job_id"])
        if before is not None and view["status"] != before:
            found.add(f"job {view['job_id']} was {before}, later read as {view['status']}")
        if view["status"] in FINAL:
            seen_done[view["job_id"]] = view["status"]
    status = get(session, f"{base}/status", found)
    if status is not None and not isinstance(status.get("queue_length"), int):
        found.add(f"/status queue_length is {status.get('queue_length')!r}")
    history = get(session, f"{base}/history?limit=50", found)
    if history is not None and not isinstance(history.get("requests"), list):
        found.add(f"/history has no requests list: {str(history)[:200]}")


def reader(base: str, found: Findings, stop: threading.Event) -> None:
    seen_done: dict[str, str] = {}
    with requests.Session() as session:
        while not stop.is_set():
            try:
                read_once(session, base, found, seen_done)
            except (requests.RequestException, KeyError, TypeError) as exc:
                found.add(f"reader: {type(exc).__name__}: {exc}")
            found.count_read()
            time.sleep(0.01)  # two shared cores: leave the loop and the posters some CPU


def small_batch(n: int) -> dict[str, Any]:
    """A little pan move; every other one also records 0.3 s of one camera."""
    body = batch(pan=100 * (n % 7), tilt=None, seconds=0.3, cameras=("cameradevice_swir_1",))
    if n % 2:
        body["requests"] = body["requests"][:1]
    return body


def poster(base: str, found: Findings, first: int) -> None:
    with requests.Session() as session:
        for n in range(first, first + JOBS_PER_POSTER):
            resp = session.post(f"{base}/process-request?wait=false", json=small_batch(n), timeout=scaled(10))
            if resp.status_code != 202:
                found.add(f"POST: {resp.status_code} {resp.text[:300]}")
                continue
            job_id = strict_json(resp)["job_id"]
            found.add_job(job_id)
            if n % 3 == 0:  # cancel some: queued ones end at once, running ones at the next step
                cancel = session.delete(f"{base}/jobs/{job_id}", timeout=scaled(10))
                if cancel.status_code not in (202, 409):
                    found.add(f"DELETE {job_id}: {cancel.status_code} {cancel.text[:300]}")
            time.sleep(0.2)


def wait_all_done(base: str, job_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + scaled(timeout)
    views: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        views = {j: requests.get(f"{base}/jobs/{j}", timeout=scaled(10)).json() for j in job_ids}
        if all(v.get("phase") == "done" for v in views.values()):
            return views
        time.sleep(0.2)
    raise AssertionError(
        f"jobs not done in {timeout} s: {[v for v in views.values() if v.get('phase') != 'done']}"
    )


def run_threads(target: Callable[..., None], args_list: list[tuple[Any, ...]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=args, daemon=True) for args in args_list]
    for thread in threads:
        thread.start()
    return threads


def test_readers_see_consistent_jobs_while_jobs_are_posted_run_and_cancelled(
    sim: SimRig, service: CaptureService
) -> None:
    found, stop = Findings(), threading.Event()
    with serve(service) as base:
        readers = run_threads(reader, [(base, found, stop)] * READERS)
        posters = run_threads(poster, [(base, found, p * JOBS_PER_POSTER) for p in range(POSTERS)])
        for thread in posters:
            thread.join(scaled(30))
        try:
            views = wait_all_done(base, found.known_jobs(), timeout=60)
        finally:
            stop.set()
            for thread in readers:
                thread.join(scaled(15))
        history = {e["id"]: e for e in requests.get(f"{base}/history", timeout=scaled(10)).json()["requests"]}

    assert not any(t.is_alive() for t in posters + readers), "a test thread hung"
    assert found.problems == [], "\n".join(found.problems[:20])
    assert len(found.job_ids) == POSTERS * JOBS_PER_POSTER
    assert found.reads >= READERS, "the readers hardly ran"
    for job_id, view in views.items():
        assert view["status"] in FINAL, view
        assert job_id in history, f"{job_id} is not in history"
        assert history[job_id]["status"] == view["status"], (history[job_id], view)
    assert any(v["status"] == "cancelled" for v in views.values()), "no cancel took effect"
    assert any(v["status"] == "succeeded" for v in views.values()), [v["status"] for v in views.values()]
