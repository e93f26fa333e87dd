"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the service on
the simulated rig, served by a real HTTP server on loopback.

Each view is screenshotted into the test's tmp_path; with ``RIGCAPTURE_SCREENSHOTS=docs`` the
screenshots are also copied there (that is how the docs pages' pictures are made).
"""

from __future__ import annotations

import importlib.resources
import io
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from service.capture import CaptureService
from tests.conftest import batch, scaled, serve

pytestmark = [pytest.mark.integration, pytest.mark.solo]  # Chromium takes the machine (tests/solo.py)

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
MODULES = Path(__file__).resolve().parent.parent / "api" / "static" / "js"

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


def open_dashboard(browser: Any, url: str, accept_dialogs: bool = False) -> tuple[Any, list[str]]:
    """``open_page``, once the dashboard is ready; ``accept_dialogs``: its confirm() dialogs answered OK."""
    page, errors = open_page(browser, url)
    if accept_dialogs:
        page.on("dialog", lambda dialog: dialog.accept())
    page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
    return page, errors


def test_dashboard_live_move_capture_gallery(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    service = start_service("mqtt")
    cameras = list(service.config.cameras)
    with serve(service) as url:
        page, errors = open_dashboard(browser, url)
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
        page, errors = open_dashboard(browser, url)
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


def test_dashboard_scan_grid_runs_as_tiles_that_open_sessions(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    """Scans: a bad plan's message, then a 2×1 grid composed on the page; its tiles (laid out by pan
    and tilt) turn done as it runs, and a done tile opens its session in the gallery."""
    service = start_service("mqtt")
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_dashboard(browser, url)
        # Every module of api/static/js was loaded, each through its versioned URL (the import map).
        loaded = page.evaluate(
            "performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/static/js/'))"
        )
        assert all("?v=" in name for name in loaded), loaded
        names = {name.split("/")[-1].split("?")[0] for name in loaded}
        assert names == {p.name for p in MODULES.glob("*.js")}, names
        page.click("nav a[data-view='scans']")
        expect(page.locator("#view-scans")).to_be_visible()
        compose_a_refused_plan(page, service)
        start_a_grid_scan(page)
        scan = follow_the_scan(page, service, shoot)
        check_the_list_composer(page)

        # The address names the scan shown: a reload shows it again.
        assert page.url.endswith(f"#scans/{scan['scan_id']}")
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        expect(page.locator("#scan-tiles .tile.done")).to_have_count(2, timeout=ms(5))

        # A done tile opens its session in the gallery.
        session_id = scan["poses"][1]["session_id"]
        assert page.get_attribute("#scan-tiles .tile[data-index='1']", "data-session") == session_id
        page.click("#scan-tiles .tile[data-index='1']")
        card = page.locator(f".session[data-session='{session_id}']")
        expect(card).to_be_visible(timeout=ms(5))
        expect(card).to_have_class("session highlight")
        expect(card).to_contain_text("pan 10.00° · tilt -5.00°")
        page.close()
        # The refused plan's 400 is logged by the browser as a failed load; nothing else may fail.
        assert [e for e in errors if "status of 400" not in e] == [], errors


def compose_a_refused_plan(page: Any, service: CaptureService) -> None:
    """A pan beyond the configured range: the service's message is shown, and nothing ran."""
    page.fill("#s-pan-from", "0")
    page.fill("#s-pan-to", "500")
    page.fill("#s-pan-step", "250")
    page.fill("#s-tilt-from", "-5")
    page.fill("#s-tilt-to", "-5")
    page.fill("#s-duration", "1")
    page.check("#s-cam-cameradevice_lwir_1")
    page.click("#s-start")
    scan_errors = page.locator("#scan-errors")
    sync_api.expect(scan_errors).to_contain_text("The service refused the scan: invalid scan:", timeout=ms(5))
    sync_api.expect(scan_errors).to_contain_text("pan_deg_x100")
    assert service.scans.views() == []


def start_a_grid_scan(page: Any) -> None:
    """2 pans × 1 tilt, rows order, one camera, 1 s a pose: the body sent is the issue's shape."""
    page.fill("#s-pan-to", "10")
    page.fill("#s-pan-step", "10")
    page.select_option("#s-order", "rows")
    page.fill("#s-label", "two poses")
    sync_api.expect(page.locator("#s-count")).to_have_text("2 × 1 = 2 poses")
    with page.expect_request(lambda r: r.url.endswith("/scans") and r.method == "POST") as sent:
        page.click("#s-start")
    assert sent.value.post_data_json == {
        "cameras": ["cameradevice_lwir_1"],
        "duration_second": 1,
        "grid": {
            "pan_deg_x100": {"from": 0, "to": 1000, "step": 1000},
            "tilt_deg_x100": {"from": -500, "to": -500, "step": 500},
            "order": "rows",
        },
        "on_pose_failure": "abort",
        "retries": 0,
        "label": "two poses",
    }
    sync_api.expect(page.locator("#scan-errors")).to_be_hidden()


def follow_the_scan(page: Any, service: CaptureService, shoot: Callable[..., Path]) -> dict[str, Any]:
    """The tiles turn done; they are laid out by pan (columns) and tilt (rows). Returns the scan."""
    expect = sync_api.expect
    expect(page.locator("#scan-tiles .tile")).to_have_count(2, timeout=ms(5))
    expect(page.locator("#scan-status")).to_have_text("succeeded", timeout=ms(40))
    expect(page.locator("#scan-tiles .tile.done")).to_have_count(2)
    expect(page.locator("#scan-progress")).to_have_text("2 of 2 poses done")
    for index, column in ((0, "2"), (1, "3")):  # column 1 holds the tilt labels
        tile = page.locator(f"#scan-tiles .tile[data-index='{index}']")
        assert tile.evaluate("el => el.style.gridColumn").split(" ")[0] == column
    expect(page.locator("#scan-tiles .axis.pan")).to_have_text(["0.00°", "10.00°"])
    expect(page.locator("#scan-tiles .axis.tilt")).to_have_text(["-5.00°"])
    scan: dict[str, Any] = service.scans.views()[0]
    assert page.inner_text("#scan-id") == scan["scan_id"]
    assert page.get_attribute("#scan-xml", "href") == f"/scans/{scan['scan_id']}/papywizard.xml"
    expect(page.locator("#scan-cancel")).to_be_hidden()
    expect(page.locator("#scan-resume")).to_be_hidden()  # nothing left to resume
    expect(page.locator(f"#scans-table tr[data-scan='{scan['scan_id']}']")).to_contain_text("2 / 2")
    shoot(page, "dashboard-scans", full_page=True)
    return scan


def check_the_list_composer(page: Any) -> None:
    """The list composer: "pan tilt" lines and preset names; a line that is neither is named."""
    page.check("#s-kind-list")
    page.fill("#s-poses", "-10 0\n10, 2.5\ngate\n")
    sync_api.expect(page.locator("#s-count")).to_have_text("3 poses")
    page.fill("#s-poses", "-10 0\n10 0 5\n")
    page.click("#s-start")
    sync_api.expect(page.locator("#scan-errors")).to_contain_text('Line 2 ("10 0 5")')


def test_dashboard_scan_list_cancel_and_resume(
    start_service: Callable[..., CaptureService], browser: Any
) -> None:
    """A list of poses (one a preset) that is no full pan × tilt lattice is shown in pose order;
    Cancel stops it, Resume runs the poses not done under the same scan id."""
    service = start_service("mqtt")
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_dashboard(browser, url)
        made = page.request.put(f"{url}/presets/ridge", data={"pan_deg_x100": 500, "tilt_deg_x100": 500})
        assert made.status == 201, made.text()
        page.click("nav a[data-view='scans']")
        page.check("#s-kind-list")
        expect(page.locator("#s-preset option")).to_have_text(["ridge"], timeout=ms(5))
        page.fill("#s-poses", "0 0\n10 0\n")
        page.click("#s-add-preset")
        expect(page.locator("#s-poses")).to_have_value("0 0\n10 0\nridge\n")
        page.fill("#s-duration", "1")
        page.check("#s-cam-cameradevice_swir_1")
        page.click("#s-start")
        tiles = page.locator("#scan-tiles .tile")
        expect(tiles).to_have_count(3, timeout=ms(5))
        expect(page.locator("#scan-tiles")).to_have_class("tiles flow")
        expect(tiles.nth(2)).to_contain_text("ridge")

        # Cancel while the first pose runs: the pose being recorded is kept, the rest skipped.
        expect(page.locator("#scan-tiles .tile.running")).to_have_count(1, timeout=ms(10))
        page.click("#scan-cancel")
        expect(page.locator("#scan-status")).to_have_text("cancelled", timeout=ms(20))
        expect(page.locator("#scan-tiles .tile.skipped")).not_to_have_count(0)
        expect(page.locator("#scan-cancel")).to_be_hidden()
        scan_id = page.inner_text("#scan-id")

        page.click("#scan-resume")
        expect(page.locator("#scan-status")).to_have_text("succeeded", timeout=ms(40))
        expect(page.locator("#scan-tiles .tile.done")).to_have_count(3)
        assert page.inner_text("#scan-id") == scan_id
        scans = service.scans.views()
        assert [s["scan_id"] for s in scans] == [scan_id] and scans[0]["status"] == "succeeded"
        page.close()
        assert not errors, errors


def test_dashboard_presets_save_current_go_and_delete(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    """Presets on the Live view: save the rig's pose under a name, move away, go back with one click
    (a goto_preset batch followed in the Job panel), delete it."""
    service = start_service("mqtt")
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_dashboard(browser, url, accept_dialogs=True)
        expect(page.locator("#presets-note")).to_contain_text("No presets yet", timeout=ms(5))
        page.fill("#f-pan", "20")
        page.fill("#f-tilt", "5")
        page.click("#f-move")
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=ms(20))
        expect(page.locator("#pose-pan")).to_have_text("20.00°", timeout=ms(5))

        page.fill("#preset-name", "bad name!")
        page.click("#preset-save")
        expect(page.locator("#preset-errors")).to_contain_text("A preset name is")
        page.fill("#preset-name", "gate")
        page.click("#preset-save")
        go = page.locator(".preset[data-preset='gate'] button.go")
        expect(go).to_be_visible(timeout=ms(5))
        expect(page.locator("#preset-errors")).to_be_hidden()
        preset = service.presets.get("gate")
        assert preset is not None and (preset.pan_deg_x100, preset.tilt_deg_x100) == (2000, 500)

        page.fill("#f-pan", "-15")
        page.fill("#f-tilt", "0")
        move_job = page.inner_text("#job-id")
        page.click("#f-move")
        expect(page.locator("#job-id")).not_to_have_text(move_job, timeout=ms(5))
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=ms(20))
        expect(page.locator("#pose-pan")).to_have_text("-15.00°", timeout=ms(5))
        move_job = page.inner_text("#job-id")
        with page.expect_request(lambda r: "/process-request" in r.url and r.method == "POST") as sent:
            go.click()
        assert sent.value.post_data_json == {
            "requests": [
                {
                    "target_id": "entity",
                    "device_id": "acikgoz_pantilt",
                    "command_id": "goto_preset",
                    "args": {"preset": "gate"},
                }
            ]
        }
        expect(page.locator("#job-id")).not_to_have_text(move_job, timeout=ms(5))  # the new job is followed
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=ms(20))
        expect(page.locator("#pose-pan")).to_have_text("20.00°", timeout=ms(5))
        expect(page.locator("#pose-tilt")).to_have_text("5.00°")
        shoot(page, "dashboard-presets")

        page.click(".preset[data-preset='gate'] button.del")
        expect(page.locator(".preset")).to_have_count(0, timeout=ms(5))
        assert service.presets.get("gate") is None
        page.close()
        assert not errors, errors


def test_dashboard_schedules_list_create_and_delete(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    """Schedules: the list from GET /schedules (one made through the API, one through the form), a
    refused schedule's message, delete; and a clear message when the service has no schedules API."""
    service = start_service("mqtt")
    expect = sync_api.expect
    with serve(service) as url:
        page, errors = open_dashboard(browser, url, accept_dialogs=True)
        probe = page.request.get(f"{url}/schedules")
        if probe.status == 404:
            pytest.skip("GET /schedules is missing from the service (the schedules API has not landed)")
        scan = {
            "cameras": ["cameradevice_lwir_1"],
            "duration_second": 1,
            "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}],
        }
        made = page.request.post(
            f"{url}/schedules", data={"scan": scan, "every_s": 3600, "label": "hourly survey"}
        )
        assert made.status == 201, made.text()
        made_id = made.json()["schedule_id"]

        page.click("nav a[data-view='schedules']")
        row = page.locator(f"#schedules-table tr[data-schedule='{made_id}']")
        expect(row).to_contain_text("hourly survey", timeout=ms(5))
        expect(row).to_contain_text("every 1 h")
        expect(row).to_contain_text("never")  # no run yet
        expect(page.locator("#schedules-error")).to_be_hidden()

        # A batch on a cron expression, from the form's example batch; first a bad expression.
        page.check("#sc-kind-batch")
        expect(page.locator("#sc-body")).to_have_value(re.compile('"requests"'))
        page.fill("#sc-label", "nightly")
        page.fill("#sc-cron", "not a cron")
        page.click("#sc-create")
        expect(page.locator("#schedule-errors")).to_contain_text("cron", timeout=ms(5))
        page.fill("#sc-cron", "0 3 * * *")
        page.click("#sc-create")
        expect(page.locator("#schedule-created")).to_contain_text("created", timeout=ms(5))
        expect(page.locator("#schedules-table tbody tr")).to_have_count(2, timeout=ms(5))
        expect(page.locator("#schedules-table")).to_contain_text("0 3 * * *")
        shoot(page, "dashboard-schedules")

        row.locator("button.del").click()
        expect(page.locator("#schedules-table tbody tr")).to_have_count(1, timeout=ms(5))
        left = [s.schedule_id for s in service.schedules.all()]
        assert len(left) == 1 and made_id not in left, left

        # A service without the schedules API: the view says so instead of showing an empty list.
        page.route("**/schedules", lambda route: route.fulfill(status=404, json={"error": "not found"}))
        page.click("nav a[data-view='live']")
        page.click("nav a[data-view='schedules']")
        expect(page.locator("#schedules-error")).to_contain_text("no schedules API", timeout=ms(5))
        page.close()
        # The refused cron's 400 and the faked 404 are logged as failed loads; nothing else may fail.
        assert [e for e in errors if "status of 400" not in e and "status of 404" not in e] == [], errors


def test_dashboard_sessions_filters_sets_and_links_with_a_token(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    """Sessions view: the filters narrow the list (N of T), a bad filter's message is shown, "sets"
    steps through frame sets with one image per camera, and the report opens in a tab although the
    service needs a token (fetched with it, shown from a blob URL)."""
    token = "s3cret-token"
    swir, rgb, lwir = "cameradevice_swir_1", "cameradevice_rgb_1", "cameradevice_lwir_1"
    service = start_service("mqtt", api={"token": token})
    client = create_app(service).test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert service.catalog.wait_ready(scaled(30))
    recorded: dict[tuple[str, ...], str] = {}
    for pan, cams in ((-3000, (swir, rgb)), (3000, (lwir,))):
        accepted = client.post(
            "/process-request?wait=false", json=batch(pan=pan, tilt=0, seconds=1, cameras=cams), headers=auth
        )
        assert accepted.status_code == 202, accepted.get_json()
        job = wait_job_with(client, accepted.get_json()["job_id"], auth)
        assert job["status"] == "succeeded", job
        recorded[cams] = job["session"]["session_id"]
    assert service.aftercare.wait_idle(scaled(30))
    pair = recorded[(swir, rgb)]
    with serve(service) as url:
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.add_init_script(f"localStorage.setItem('rigcapture.token', {token!r})")
        page.goto(f"{url}/#sessions")
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        filter_the_sessions(page, recorded[(lwir,)], pair, shoot)
        step_through_sets_and_open_the_report(page, pair, (swir, rgb), shoot)
        page.close()
        assert not errors, errors


def filter_the_sessions(page: Any, lwir_session: str, pair: str, shoot: Callable[..., Path]) -> None:
    expect = sync_api.expect
    lwir = "cameradevice_lwir_1"
    expect(page.locator("#sessions .session")).to_have_count(2, timeout=ms(10))
    expect(page.locator("#sessions-count")).to_contain_text("2 of 2 sessions")
    # No object store configured: no upload badge.
    expect(page.locator("#sessions .badge.upload")).to_have_count(0)

    page.select_option("#sf-camera", lwir)
    page.click("#sf-apply")
    expect(page.locator("#sessions .session")).to_have_count(1, timeout=ms(5))
    expect(page.locator("#sessions-count")).to_contain_text("1 of 1 session matching")
    expect(page.locator(f".session[data-session='{lwir_session}']")).to_be_visible()
    page.click("#sf-clear")
    page.fill("#sf-pan-max", "-10")  # degrees in the page, -1000 in the query
    with page.expect_request(lambda r: "pan_max=-1000" in r.url):
        page.click("#sf-apply")
    expect(page.locator("#sessions .session")).to_have_count(1, timeout=ms(5))
    expect(page.locator(f".session[data-session='{pair}']")).to_be_visible()
    page.fill("#sf-pan-min", "10")
    page.click("#sf-apply")
    expect(page.locator("#sessions-filter-error")).to_contain_text("pan_min", timeout=ms(5))
    page.fill("#sf-pan-min", "")
    page.click("#sf-apply")
    expect(page.locator("#sessions-filter-error")).to_be_hidden(timeout=ms(5))
    shoot(page, "dashboard-sessions-filters")


def step_through_sets_and_open_the_report(
    page: Any, pair: str, cameras: tuple[str, str], shoot: Callable[..., Path]
) -> None:
    expect = sync_api.expect
    card = page.locator(f".session[data-session='{pair}']")
    card.locator("button.sets").click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-title")).to_contain_text(re.compile(r"set 1 of \d+"), timeout=ms(10))
    figures = page.locator("#viewer-sets figure")
    expect(figures).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer-sets img')].every((i) => i.naturalWidth > 0)",
        timeout=ms(10),
    )
    expect(page.locator("#viewer-caption")).to_contain_text("spread")
    first = page.eval_on_selector_all("#viewer-sets img", "els => els.map((e) => e.dataset.file)")
    assert {f.split("/")[0] for f in first} == set(cameras), first
    shoot(page, "dashboard-sets")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-title")).to_contain_text("set 2 of")
    page.wait_for_function(
        "(first) => [...document.querySelectorAll('#viewer-sets img')].every("
        "(i) => i.naturalWidth > 0 && !first.includes(i.dataset.file))",
        arg=first,
        timeout=ms(10),
    )
    page.click("#viewer-prev")
    expect(page.locator("#viewer-title")).to_contain_text("set 1 of")

    # The report, fetched with the token, opens in a new tab.
    with page.expect_popup() as popup_info:
        page.locator("#viewer-links a.report").click()
    report = popup_info.value
    report.wait_for_url(re.compile(r"^blob:"), timeout=ms(15))
    expect(report.locator("body")).to_contain_text(pair, timeout=ms(10))
    report.close()
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    assert card.locator("a.mcap").get_attribute("href") == f"/sessions/{pair}.mcap"
    assert card.locator("a.zip").get_attribute("href") == f"/sessions/{pair}.zip"
    # With the token, a download is fetched with it: streamed into the file a save dialog gives (the
    # dialog is stood in for here: headless Chromium shows none)…
    page.evaluate(
        """() => {
        window.showSaveFilePicker = async ({ suggestedName }) => ({
          createWritable: async () => {
            const chunks = [];
            return new WritableStream({
              write(chunk) { chunks.push(chunk); },
              close() {
                window.savedFile = { name: suggestedName, bytes: chunks.map((c) => Array.from(c)).flat() };
              },
            });
          },
        });
      }"""
    )
    card.locator("a.zip").click()
    page.wait_for_function("() => window.savedFile", timeout=ms(15))
    saved = page.evaluate("window.savedFile")
    assert saved["name"] == f"{pair}.zip"
    with zipfile.ZipFile(io.BytesIO(bytes(saved["bytes"]))) as zf:
        assert zf.testzip() is None and any(n.endswith("session.json") for n in zf.namelist())
    # … or, where the browser has no such dialog, handed to it from memory as a download.
    page.evaluate("() => { delete window.showSaveFilePicker; }")
    with page.expect_download(timeout=ms(15)) as download_info:
        card.locator("a.mcap").click()
    download = download_info.value
    assert download.suggested_filename == f"{pair}.mcap"
    assert Path(download.path()).read_bytes()[:8] == b"\x89MCAP0\r\n"


def wait_job_with(client: Any, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """GET /jobs/<id> (with the token) until the job is done."""
    deadline = time.monotonic() + scaled(60)
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=headers).get_json()
        if job.get("phase") == "done":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish; last seen {job}")


def test_dashboard_sessions_show_upload_states_and_the_storage(
    start_service: Callable[..., CaptureService], browser: Any
) -> None:
    """The upload badge, the "partial" note, the disk and the upload queue as the page shows them; the
    service's answers are faked in the browser (an object store would take a server of its own)."""
    service = start_service("mqtt")
    expect = sync_api.expect
    fake = {
        "session_id": "20260101-100000-001",
        "status": "complete",
        "manifest": True,
        "record_started_at": 1_780_000_000.0,
        "record_ended_at": 1_780_000_001.0,
        "cameras": {},
        "upload_state": "failed",
    }

    def sessions(route: Any) -> None:
        body = {
            "sessions": [fake],
            "total": 1,
            "offset": 0,
            "limit": 10,
            "catalog": "building",
            "partial": True,
        }
        route.fulfill(json=body)

    def status(route: Any) -> None:
        body = route.fetch().json()
        body["disk"] = {
            "folder": "/data",
            "free_mb": 900.0,
            "total_mb": 100000.0,
            "min_free_mb": 1000,
            "warning": "/data has 900.0 MB free, below the 1000 MB reserve (storage.min_free_mb)",
        }
        body["uploads"] = {
            "enabled": True,
            "target": "s3://bucket/rig/",
            "activity": "waiting",
            "sessions_pending": 3,
            "scans_pending": 0,
            "bytes_pending": 2_500_000_000,
            "rate_mb_s": 0.0,
            "last_error": {"message": "the store cannot be reached", "item": "20260101-100000-001"},
        }
        route.fulfill(json=body)

    with serve(service) as url:
        page, errors = open_page(browser, url)
        page.route(re.compile(r".*/sessions\?.*"), sessions)
        page.route(re.compile(r".*/status$"), status)
        page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
        page.click("nav a[data-view='sessions']")
        badge = page.locator(".session .badge.upload")
        expect(badge).to_have_text("upload failed", timeout=ms(5))
        expect(badge).to_have_class(re.compile(r"\bbad\b"))
        expect(page.locator("#sessions-partial")).to_be_visible()
        expect(page.locator("#sessions-disk")).to_contain_text("900 MB free", timeout=ms(5))
        expect(page.locator("#sessions-disk-warning")).to_contain_text("below the 1000 MB reserve")
        expect(page.locator("#sessions-uploads")).to_contain_text("3 sessions pending (2.50 GB)")
        expect(page.locator("#sessions-uploads")).to_contain_text("the store cannot be reached")
        page.close()
        assert not errors, errors


# -- accessibility and a narrow screen, on every view ------------------------------------------------
VIEWS = ("live", "jobs", "history", "sessions", "fleet", "scans", "schedules")
NARROW = {"width": 768, "height": 1024}


def axe_script() -> str:
    """axe-core, as the axe-playwright-python package ships it (the engine only; run from here)."""
    pytest.importorskip("axe_playwright_python", reason="pip install -r requirements-dev.txt")
    return (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def serious_violations(page: Any, script: str) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=script)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_view_passes_axe_and_fits_a_768_px_screen(
    start_service: Callable[..., CaptureService], browser: Any, shoot: Callable[..., Path]
) -> None:
    """Each view with something in it (a capture, a scan, a schedule): no serious or critical axe-core
    violation, and nothing wider than a 768 px screen (no sideways scrolling of the page)."""
    service = start_service("mqtt")
    client = create_app(service).test_client()
    done = client.post("/process-request", json=batch(seconds=0.5)).get_json()
    assert done["status"] == "succeeded", done
    scan = {
        "cameras": ["cameradevice_lwir_1"],
        "duration_second": 0.5,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}, {"pan_deg_x100": 1000, "tilt_deg_x100": 0}],
    }
    scanned = client.post("/scans?wait=true", json=scan).get_json()
    assert scanned["status"] == "succeeded", scanned
    assert (
        client.post("/schedules", json={"scan": scan, "every_s": 3600, "label": "hourly"}).status_code == 201
    )
    assert service.aftercare.wait_idle(scaled(30))
    script = axe_script()
    found: dict[str, list[str]] = {}
    with serve(service) as url:
        for viewport in (VIEWPORT, NARROW):
            page = browser.new_page(viewport=viewport)
            page.goto(f"{url}/#live")
            page.wait_for_selector("body[data-ready='1']", timeout=ms(10))
            for view in VIEWS:
                show_view(page, view, scanned["scan_id"])
                where = f"{view} at {viewport['width']} px"
                if violations := serious_violations(page, script):
                    found[where] = violations
                wide = page.evaluate("() => document.documentElement.scrollWidth")
                if wide > viewport["width"]:
                    found[f"{where}: width"] = [f"the page is {wide} px wide"]
                if viewport is NARROW:
                    shoot(page, f"dashboard-narrow-{view}", full_page=True)
            page.close()
    assert found == {}, found


def show_view(page: Any, view: str, scan_id: str) -> None:
    """Open a view and wait for what it lists (the scan shown, in Scans)."""
    expect = sync_api.expect
    page.click(f"nav a[data-view='{view}']")
    expect(page.locator(f"#view-{view}")).to_be_visible()
    waits = {
        "live": ".camera img",
        "jobs": "#jobs-table tbody tr",
        "history": "#history-table tbody tr",
        "sessions": "#sessions .session",
        "schedules": "#schedules-table tbody tr",
    }
    if view == "scans":
        page.click(f"#scans-table tr[data-scan='{scan_id}'] a")
        expect(page.locator("#scan-tiles .tile.done")).to_have_count(2, timeout=ms(10))
    elif view in waits:
        expect(page.locator(waits[view]).first).to_be_visible(timeout=ms(10))
    else:
        page.wait_for_timeout(300)  # Fleet: one answer of GET /fleet
