"""The dashboard's session card and frame viewer show capture times, in a real browser (Debian's
Chromium driven by Playwright, as tests/test_browser.py): a session in the capture-time format
(tests/session_v3.py) put into the save folder of a service on the simulated rig."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.capture import CaptureService
from tests import session_v3
from tests.conftest import serve

# Skips this module where tests/test_browser.py skips (no Chromium, no Playwright).
from tests.test_browser import browser, ms, open_dashboard, sync_api

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # Chromium takes the machine (tests/solo.py)
__all__ = ["browser"]  # the fixture of tests/test_browser.py, used here

ISO_SPAN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} → \d\d:\d\d:\d\d\.\d{3}$")


def test_a_session_card_shows_time_sources_delays_and_the_window(
    service: CaptureService, browser: Any
) -> None:
    expect = sync_api.expect
    session_id = session_v3.manifest_doc()["session_id"]
    session_v3.write_session(service.paths.save_dir / session_id)
    session_v3.old_session(service.paths.save_dir / "20000101-000000-002")
    service.catalog.refresh()
    with serve(service) as url:
        page, errors = open_dashboard(browser, url)
        page.click("nav a[data-view='sessions']")
        card = page.locator(f".session[data-session='{session_id}']")
        expect(card).to_be_visible(timeout=ms(10))
        window = card.locator(".meta .window").inner_text()
        assert ISO_SPAN.match(window), window
        swir = card.locator(f".cam[data-camera='{session_v3.SWIR}'] .capture")
        expect(swir).to_have_text("stamp · delay 0.400 / 0.430 / 0.450 s")
        expect(swir).not_to_have_class(re.compile(r"\bwarn\b"))
        lwir = card.locator(f".cam[data-camera='{session_v3.LWIR}'] .capture")
        expect(lwir).to_have_text("arrival · delay 1.300 / 1.380 / 1.410 s · late frames not confirmed")
        expect(lwir).to_have_class(re.compile(r"\bwarn\b"))
        assert "no timestamp_ns" in (lwir.get_attribute("title") or "")
        # A session saved before capture times: nothing to show, and no empty line either.
        old = page.locator(".session[data-session='20000101-000000-002']")
        expect(old).to_be_visible()
        expect(old.locator(".capture")).to_have_count(0)
        # The frame sets pair by capture time and say so; a frame shows when it was captured, and how.
        card.locator("button.sets").click()
        expect(page.locator("#viewer-caption")).to_contain_text("captured ", timeout=ms(5))
        expect(page.locator("#viewer-caption")).to_contain_text("spread 0.00 ms")
        expect(page.locator("#viewer-title")).to_contain_text(f"set 1 of {session_v3.FRAMES}")
        page.keyboard.press("Escape")
        card.locator(f".cam[data-camera='{session_v3.LWIR}'] .strip button").first.click()
        expect(page.locator("#viewer-caption")).to_contain_text("(arrival)", timeout=ms(5))
        page.close()
        assert not errors, errors
