"""The dashboard's Fleet view and the Sessions view's node filter, in a real browser (Debian's
Chromium through Playwright, as tests/test_browser.py), on a node with a shared catalog in which a
second node, rig-b, has written its heartbeat and a session of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from service.capture import CaptureService
from sessions.catalog_backend import NodeBeat
from sessions.catalog_pg import PgCatalog
from tests.conftest import batch, serve
from tests.test_browser import browser, ms, open_page, shoot  # noqa: F401  (fixtures)
from tests.test_catalog_backends import make_row

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # Chromium takes the machine (tests/solo.py)

expect = pytest.importorskip("playwright.sync_api").expect


def test_fleet_view_and_the_node_filter(
    browser: Any,  # noqa: F811
    shoot: Callable[..., Path],  # noqa: F811
    start_service: Callable[..., CaptureService],
    make_database: Callable[[], str],
) -> None:
    url_db = make_database()
    service = start_service(node={"id": "rig-a"}, catalog={"url": url_db, "heartbeat_s": 0.5})
    client = create_app(service).test_client()
    assert (
        client.post(
            "/process-request", json=batch(0, 0, seconds=0.5, cameras=("cameradevice_lwir_1",))
        ).status_code
        == 200
    )
    other = PgCatalog(url_db)
    try:
        remote = make_row("rig-b", 7, upload_state=None, location=None)
        other.put_rows([remote])
        other.beat(NodeBeat("rig-b", "http://rig-b.invalid:5000", "0.1.0", 3600.0, 1.0, {"job": None}))
        with serve(service) as url:
            page, errors = open_page(browser, f"{url}/#fleet")
            rows = page.locator("#fleet-table tbody tr")
            expect(rows).to_have_count(2, timeout=ms(10))
            expect(page.locator("#fleet-table tr[data-node='rig-a']")).to_contain_text("online")
            expect(page.locator("#fleet-table tr[data-node='rig-b'] a")).to_have_attribute(
                "href", "http://rig-b.invalid:5000/"
            )
            expect(page.locator("#fleet-summary")).to_contain_text("2 of 2 nodes online")
            shoot(page, "fleet")

            page.click("nav a[data-view='sessions']")
            expect(page.locator("#sf-node option")).to_have_count(3, timeout=ms(10))
            page.select_option("#sf-node", "all")
            page.click("#sf-apply")
            expect(page.locator("#sessions .session")).to_have_count(2, timeout=ms(10))
            card = page.locator(f"#sessions .session[data-session='{remote.session_id}']")
            expect(card).to_contain_text("on rig-b")
            expect(card.locator("a")).to_have_attribute(
                "href", f"http://rig-b.invalid:5000/sessions/{remote.session_id}/report"
            )
            shoot(page, "fleet-sessions")
            assert not errors, errors
    finally:
        other.close()
