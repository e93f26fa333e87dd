"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the service on
the simulated rig, served by a real HTTP server on loopback.

Each view is screenshotted into the test's tmp_path; with ``RIGCAPTURE_SCREENSHOTS=docs`` the
screenshots are also copied there (that is how the README's pictures are made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.capture import CaptureService
from tests.conftest import scaled, serve

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 950}

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium; .ci/run does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")


def ms(seconds: float) -> float:
    return scaled(seconds) * 1000


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shoot(tmp_path: Path) -> Callable[[Any, str], Path]:
    extra = os.environ.get("RIGCAPTURE_SCREENSHOTS")

    def shoot(page: Any, name: str, full_page: bool = False) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 10_000, f"screenshot {name} looks empty"
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return shoot


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.goto(url)
    return page, errors


def test_dashboard_live_move_capture_gallery(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    service = start_service("mqtt")
    cameras = list(service.config.cameras)
    with serve(service) as url:
        page, errors = open_page(browser, url)
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        check_live_view(page, cameras)
        move_and_check_the_form(page)
        session_id = capture_from_the_form(page, cameras)
        shoot(page, "dashboard-live")
        check_the_gallery(page, session_id, shoot)
        check_jobs_and_history(page, session_id, shoot)
        page.close()
        assert not errors, errors


def check_live_view(page: Any, cameras: list[str]) -> None:
    """Live: the pose, the connections, and a thumbnail from every camera."""
    expect = sync_api.expect
    expect(page.locator("#pose-pan")).to_have_text("0.00°", timeout=ms(10))
    expect(page.locator("#pill-broker")).to_have_text("broker connected")
    expect(page.locator("#pill-streams")).to_have_text("stream connected")
    for cam in cameras:
        expect(page.locator(f".camera[data-camera='{cam}'] img")).to_be_visible(timeout=ms(10))
    page.wait_for_function(
        "n => [...document.querySelectorAll('.camera img')].filter(i => i.naturalWidth > 0).length === n",
        arg=len(cameras),
        timeout=ms(5),
    )
    expect(page.locator(".camera .foot").first).to_contain_text("fps")


def move_and_check_the_form(page: Any) -> None:
    """Move only: the live pose follows the rig. Then the form's own checks, before anything is sent."""
    expect = sync_api.expect
    page.fill("#f-pan", "30")
    page.fill("#f-tilt", "5")
    page.click("#f-move")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=ms(20))
    expect(page.locator("#pose-pan")).to_have_text("30.00°", timeout=ms(5))
    expect(page.locator("#pose-tilt")).to_have_text("5.00°")
    expect(page.locator("#pose-motion")).to_have_text("settled", timeout=ms(5))

    # The form says what is wrong in plain words; the pan range is the configured command's.
    page.fill("#f-pan", "500")
    page.fill("#f-duration", "0")
    page.click("#f-capture")
    errors_box = page.locator("#form-errors")
    expect(errors_box).to_contain_text("Pan 500° is outside -180° … 180°.")
    expect(errors_box).to_contain_text("Duration must be more than 0 seconds.")


def capture_from_the_form(page: Any, cameras: list[str]) -> str:
    """Capture from the form, following every phase the page shows; returns the session id."""
    expect = sync_api.expect
    page.evaluate(
        """() => {
            window.phasesSeen = [];
            const el = document.getElementById('job-detail');
            new MutationObserver(() => {
                const p = el.dataset.phase;
                if (p && window.phasesSeen[window.phasesSeen.length - 1] !== p) window.phasesSeen.push(p);
            }).observe(el, {attributes: true, attributeFilter: ['data-phase']});
        }"""
    )
    page.fill("#f-pan", "45")
    page.fill("#f-tilt", "-10")
    page.fill("#f-duration", "1")
    for cam in cameras:
        box = page.locator(f"#f-cam-{cam}")
        if "vnir" in cam:
            box.uncheck()
        else:
            box.check()
    move_job = page.inner_text("#job-id")
    page.click("#f-capture")
    expect(page.locator("#form-errors")).to_be_hidden()
    expect(page.locator("#job-id")).not_to_have_text(move_job, timeout=ms(5))  # the new job is followed
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=ms(30))
    expect(page.locator("#job-phases li.current")).to_have_text("done")
    seen = page.evaluate("window.phasesSeen")
    assert "recording" in seen and seen[-1] == "done", seen
    rows = page.locator("#job-summary tbody tr")
    expect(rows).to_have_count(3)
    for text in rows.all_inner_texts():
        assert int(text.split()[1]) > 0, text
    expect(page.locator("#pose-pan")).to_have_text("45.00°")
    session_id: str = page.inner_text("#job-session-link")
    return session_id


def check_the_gallery(page: Any, session_id: str, shoot: Callable[..., Path]) -> None:
    """Gallery: the new session, its thumbnails, a frame full size."""
    expect = sync_api.expect
    page.click("#job-session-link")
    card = page.locator(f".session[data-session='{session_id}']")
    expect(card).to_be_visible(timeout=ms(5))
    expect(card.locator(".cam")).to_have_count(3)
    expect(card.locator(".strip img.loaded")).to_have_count(24, timeout=ms(10))  # 8 per camera
    expect(card).to_contain_text("pan 45.00° · tilt -10.00°")
    shoot(page, "dashboard-sessions")
    card.locator(".cam[data-camera='cameradevice_lwir_1'] .strip button").nth(2).click()
    expect(page.locator("#viewer")).to_be_visible()
    page.wait_for_function("() => document.getElementById('viewer-img').naturalWidth > 0", timeout=ms(5))
    expect(page.locator("#viewer-title")).to_contain_text(session_id)
    expect(page.locator("#viewer-caption")).to_contain_text("pan 45.00°")
    shoot(page, "dashboard-frame")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-caption")).to_contain_text("cameradevice_lwir_1/")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()


def check_jobs_and_history(page: Any, session_id: str, shoot: Callable[..., Path]) -> None:
    """Jobs and history list both jobs, their commands described in words."""
    expect = sync_api.expect
    page.click("nav a[data-view='jobs']")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2, timeout=ms(5))
    expect(page.locator("#jobs-table")).to_contain_text(session_id)
    expect(page.locator("#jobs-table")).to_contain_text("pan 45.00° → tilt -10.00°")
    shoot(page, "dashboard-jobs")
    page.click("nav a[data-view='history']")
    expect(page.locator("#history-table tbody tr")).to_have_count(2, timeout=ms(5))
    expect(page.locator("#history-table")).to_contain_text("record 1 s")
    shoot(page, "dashboard-history")


def test_the_form_uses_the_configured_pan_command(
    start_service: Callable[..., CaptureService], browser: Any
) -> None:
    # A pan command with another name and argument, and no tilt command: the tilt input is hidden and
    # the batch the page sends uses what GET /cameras says. (The simulated rig knows only the standard
    # names, so the job itself fails; what matters is what the page sent.)
    service = start_service(
        "mqtt",
        settle={"timeout_s": 1.0},
        positioning_commands={
            "goto_pan": {"arg": "pan_deg", "field": "pan_deg_x100", "min": -9000, "max": 9000},
        },
    )
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_page(browser, url)
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        expect(page.locator("#f-tilt")).to_be_hidden()
        expect(page.locator("#f-pan")).to_be_visible()
        assert page.get_attribute("#f-pan", "max") == "90"
        page.fill("#f-pan", "120")
        page.click("#f-move")
        expect(page.locator("#form-errors")).to_contain_text("Pan 120° is outside -90° … 90°.")
        page.fill("#f-pan", "12.5")
        with page.expect_request(lambda r: "/process-request" in r.url and r.method == "POST") as sent:
            page.click("#f-move")
        assert sent.value.post_data_json == {
            "requests": [
                {
                    "target_id": "entity",
                    "device_id": "acikgoz_pantilt",
                    "command_id": "goto_pan",
                    "args": {"pan_deg": 1250},
                }
            ]
        }
        page.click("nav a[data-view='jobs']")
        expect(page.locator("#jobs-table")).to_contain_text("pan 12.50°", timeout=ms(10))
        page.close()
        assert not errors, errors


def test_dashboard_asks_for_the_token_and_keeps_it(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    service = start_service("mqtt", api={"token": "s3cret-token"})
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_page(browser, url)
        modal = page.locator("#token-modal")
        expect(modal).to_be_visible(timeout=ms(10))
        page.fill("#token-input", "wrong")
        page.click("#token-save")
        expect(modal).to_be_visible(timeout=ms(5))
        expect(page.locator("#token-reason")).to_contain_text("refused")
        shoot(page, "dashboard-token")
        page.fill("#token-input", "s3cret-token")
        page.click("#token-save")
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        expect(page.locator("#pose-pan")).to_have_text("0.00°", timeout=ms(10))
        expect(page.locator(".camera img").first).to_be_visible(timeout=ms(10))
        assert page.evaluate("localStorage.getItem('rigcapture.token')") == "s3cret-token"

        # A reload uses the kept token without asking.
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        expect(modal).to_be_hidden()
        page.close()
        # The wrong token's 401s are logged by the browser as failed loads; nothing else may fail.
        assert all("401" in e for e in errors), errors
