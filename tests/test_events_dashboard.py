"""The Live view's Events panel in a real browser (Chromium via Playwright, as tests/test_browser.py):
the ring's state, the Event button with its before/after fields, the event in the list once saved,
its session a link to the gallery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.capture import CaptureService
from tests.conftest import serve
from tests.test_browser import browser, ms, open_page, shoot, sync_api

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # rates and timings: alone (tests/solo.py)
__all__ = ["browser", "shoot"]  # the fixtures of tests/test_browser.py, used here


def test_the_event_button_saves_an_event_listed_with_its_session(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    service = start_service("mqtt", events={"enabled": True, "pre_max_s": 2, "post_default_s": 1})
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_page(browser, url)
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        expect(page.locator("#events-ring")).to_contain_text("the ring holds", timeout=ms(10))
        expect(page.locator("#events-empty")).to_be_visible()
        page.wait_for_timeout(ms(1.5))  # the ring fills
        page.fill("#ev-pre", "-1")
        page.click("#ev-trigger")
        expect(page.locator("#event-errors")).to_contain_text("Before: give a number of seconds")
        page.fill("#ev-pre", "1")
        page.fill("#ev-post", "1")
        page.fill("#ev-label", "from the dashboard")
        page.click("#ev-trigger")
        row = page.locator("#events-table tbody tr").first
        expect(row).to_contain_text("from the dashboard", timeout=ms(5))
        expect(row.locator(".badge")).to_have_text("saved", timeout=ms(20))
        expect(row.locator("td").last.locator("a")).to_have_count(1, timeout=ms(5))
        shoot(page, "dashboard-events")
        page.close()
        assert not errors, errors
    [event] = service.events.listing()["events"]
    assert event["status"] == "saved" and event["label"] == "from the dashboard"
