"""Headers on every answer and well-formed XML (issue 21, item 7): ``X-Content-Type-Options: nosniff``
everywhere (errors, static files, downloads), a framing rule and a referrer rule on HTML (the dashboard,
a session report, which keeps its own policy too), and papywizard.xml well-formed whatever the label."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
import requests
from flask.testing import FlaskClient

from rigcore.checks import xml_text
from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import batch, scaled, serve, wait_job

integration = pytest.mark.integration
TOKEN = "headers-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTROL = "".join(chr(c) for c in range(32)) + "\ufffe\uffff"


def assert_html_rules(headers: requests.structures.CaseInsensitiveDict[str] | dict[str, str]) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"


def test_xml_text_keeps_only_what_xml_allows() -> None:
    assert xml_text(f"a{CONTROL}b\té") == "a\t\n\rb\té"
    ET.fromstring(f"<t>{xml_text('x' + CONTROL + '&<>'.replace('&', '&amp;').replace('<', '&lt;'))}</t>")


@integration
def test_every_answer_says_nosniff_and_html_cannot_be_framed(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    service = start_service(api={"token": TOKEN})
    with serve(service) as url:
        page = requests.get(f"{url}/", timeout=scaled(10))
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert_html_rules(page.headers)
        answers = [
            requests.get(f"{url}/static/dashboard.css", timeout=scaled(10)),  # served without the token
            requests.get(f"{url}/healthz", timeout=scaled(10)),
            requests.get(f"{url}/status", timeout=scaled(10)),  # 401
            requests.get(f"{url}/status", headers=AUTH, timeout=scaled(10)),
            requests.get(f"{url}/nope", headers=AUTH, timeout=scaled(10)),  # 404
            requests.get(
                f"{url}/status", headers={**AUTH, "Host": "evil.example"}, timeout=scaled(10)
            ),  # 421
            requests.post(f"{url}/process-request", data="x", headers=AUTH, timeout=scaled(10)),  # 415
            requests.get(f"{url}/sessions?offset=abc", headers=AUTH, timeout=scaled(10)),  # 400
        ]
        assert [a.status_code for a in answers] == [200, 200, 401, 200, 404, 421, 415, 400]
        for answer in answers:
            assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.url
            assert "Referrer-Policy" not in answer.headers  # HTML only


@integration
def test_the_report_keeps_its_own_policy_and_gains_frame_ancestors_and_downloads_say_nosniff(
    client: FlaskClient, service: CaptureService
) -> None:
    job = client.post("/process-request?wait=false", json=batch(0, 0, seconds=0.3))
    done = wait_job(client, job.get_json()["job_id"], 30)
    session_id = done["session"]["session_id"]
    report = client.get(f"/sessions/{session_id}/report")
    assert report.status_code == 200 and report.mimetype == "text/html"
    assert_html_rules(dict(report.headers))
    assert b"default-src 'none'" in report.data  # its own policy, in the page, unchanged
    for path in (f"/sessions/{session_id}.zip", f"/sessions/{session_id}", f"/sessions/{session_id}/nope"):
        resp = client.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        resp.close()


@integration
def test_a_scan_label_with_control_characters_gives_well_formed_xml(
    client: FlaskClient, service: CaptureService
) -> None:
    label = f"ridge{CONTROL}line"
    body = {
        "cameras": ["cameradevice_swir_1"],
        "duration_second": 0.2,
        "poses": [{"pan_deg_x100": 0, "tilt_deg_x100": 0}],
        "label": label,
    }
    resp = client.post("/scans?wait=true", json=body)
    assert resp.status_code in (200, 202), resp.get_json()
    scan_id = resp.get_json()["scan_id"]
    xml = client.get(f"/scans/{scan_id}/papywizard.xml")
    assert xml.status_code == 200 and xml.headers["X-Content-Type-Options"] == "nosniff"
    root = ET.fromstring(xml.data)  # raises on ill-formed XML
    title = root.find("header/general/title")
    assert title is not None and title.text == "ridge\t\n\rline".replace("\r", "\n")
