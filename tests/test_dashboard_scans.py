"""Jobs and History in a real browser (Chromium, the fixtures of tests/test_browser.py): a scan shows
as a scan — its progress, and per pose its target, status and session, each session a link of its
own (never ``20261206-102157-49520261206-102159-495…`` run together) — and a batch's sessions are
listed one per line. People read degrees, camera short names and local ISO times."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from service.capture import CaptureService
from tests.conftest import batch, scaled, serve
from tests.test_browser import browser, ms, open_page, shoot, sync_api  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


def test_jobs_and_history_show_a_scan_as_a_scan_with_a_link_per_pose(
    start_service: Callable[..., CaptureService],
    browser: Any,  # noqa: F811 (the fixture of tests/test_browser.py)
    shoot: Callable[..., Path],  # noqa: F811
) -> None:
    service = start_service("mqtt")
    client = create_app(service).test_client()
    # A batch with two recordings (two sessions), then a scan of two poses.
    two = batch(pan=0, tilt=0, seconds=0.5, cameras=("cameradevice_lwir_1",))
    two["requests"].append(dict(two["requests"][-1]))
    done = client.post("/process-request", json=two).get_json()
    assert done["status"] == "succeeded" and len(done["sessions"]) == 2, done
    scan_body = {
        "cameras": ["cameradevice_lwir_1"],
        "duration_second": 0.5,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": -500}, {"pan_deg_x100": 1000, "tilt_deg_x100": -500}],
        "label": "two poses",
    }
    scan = client.post("/scans?wait=true", json=scan_body).get_json()
    assert scan["status"] == "succeeded", scan
    pose_sessions = [p["session_id"] for p in scan["poses"]]
    batch_sessions = [s["session_id"] for s in done["sessions"]]
    assert service.aftercare.wait_idle(scaled(30))

    # The API: a scan job says it is one, with each pose's session (GET /jobs and history alike).
    job = client.get(f"/jobs/{scan['job_id']}").get_json()
    assert job["kind"] == "scan" and job["scan"]["scan_id"] == scan["scan_id"]
    assert job["scan"]["progress"] == {"done": 2, "total": 2}
    assert [p["session_id"] for p in job["scan"]["poses"]] == pose_sessions
    assert client.get(f"/jobs/{done['job_id']}").get_json()["kind"] == "batch"

    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_page(browser, url)
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        page.click("nav a[data-view='jobs']")
        row = page.locator(f"#jobs-table tr[data-job='{scan['job_id']}']")
        expect(row).to_have_attribute("data-kind", "scan", timeout=ms(5))
        expect(row).to_contain_text("scan two poses")
        expect(row).to_contain_text("2 of 2 poses done")
        check_poses(row, pose_sessions)
        assert ISO_SECONDS.match(row.locator("td").nth(1).inner_text()), row.locator("td").nth(1).inner_text()
        check_sessions(page.locator(f"#jobs-table tr[data-job='{done['job_id']}']"), batch_sessions)
        shoot(page, "dashboard-jobs-scan")

        page.click("nav a[data-view='history']")
        entry = page.locator(f"#history-table tr[data-entry='{scan['job_id']}']")
        expect(entry).to_have_attribute("data-kind", "scan", timeout=ms(5))
        expect(entry).to_contain_text("2 of 2 poses done")
        check_poses(entry, pose_sessions)
        assert ISO_SECONDS.match(entry.locator("td").nth(1).inner_text())
        check_sessions(page.locator(f"#history-table tr[data-entry='{done['job_id']}']"), batch_sessions)

        # A pose's link opens its session in the gallery; the scan's link opens the scan.
        entry.locator("li[data-pose='1'] a[href='#sessions']").click()
        card = page.locator(f".session[data-session='{pose_sessions[1]}']")
        expect(card).to_be_visible(timeout=ms(5))
        expect(card).to_have_class("session highlight")
        expect(card.locator(".cam .label strong")).to_have_text(["lwir_1"])  # the short name
        page.click("nav a[data-view='jobs']")
        page.locator(f"#jobs-table tr[data-job='{scan['job_id']}'] a.scan-link").click()
        expect(page.locator("#scan-id")).to_have_text(scan["scan_id"], timeout=ms(5))
        expect(page.locator("#scan-tiles .tile .n")).to_have_text(["#1", "#2"])  # poses counted from 1
        page.close()
        assert not errors, errors


def check_poses(row: Any, sessions: list[str]) -> None:
    """One line per pose: "pose N", its target in degrees, its status and its own session link."""
    expect = sync_api.expect
    poses = row.locator("ul.poses li")
    expect(poses).to_have_count(len(sessions))
    for i, session in enumerate(sessions):
        line = row.locator(f"ul.poses li[data-pose='{i}']")
        expect(line).to_contain_text(f"pose {i + 1}")
        expect(line).to_contain_text(f"pan {i * 10}.00° · tilt -5.00°")
        expect(line.locator(".badge")).to_have_text("done")
        expect(line.locator("a[href='#sessions']")).to_have_text(session)  # one link, one id


def check_sessions(row: Any, sessions: list[str]) -> None:
    """A batch's sessions: one link each, on lines of their own."""
    links = row.locator("ul.job-sessions li a")
    sync_api.expect(links).to_have_text(sessions)
    text = row.locator("ul.job-sessions").inner_text()
    assert text.split("\n") == sessions, text  # never run together
