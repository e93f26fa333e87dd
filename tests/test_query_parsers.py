"""No 5xx from input (issue 21, item 6): the query parsers (``?limit=``, ``?offset=``, the sessions'
filters, ``?since=``/``?until=``, ``?max=``/``?size=``) take any text and answer 200 or a 4xx naming the
parameter, never an exception; and the issue's reproductions (a huge offset, a cron that never fires,
a grid over axes without limits) are 4xx or answered.

The parsers are pure (hypothesis, no broker); the HTTP properties drive a started service through
Flask's test client and are marked integration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app
from api.contract import MAX_QUERY_INT, query_int
from api.errors import Refused
from rigcore.config import Config
from service.capture import CaptureService
from sessions.catalog import FilterError, query_from_params
from sessions.catalog_filters import FILTER_PARAMS
from simulator.rig import SimRig
from tests.conftest import batch, until

integration = pytest.mark.integration
FAST = settings(max_examples=300, deadline=None)
OVER_HTTP = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Numbers as text, at the edges where parsers break: beyond 64 bits, beyond a float, signs, exponents.
EDGE_NUMBERS = st.sampled_from(
    [
        "9223372036854775808",
        "-9223372036854775809",
        "1" + "0" * 400,
        "-" + "9" * 5000,
        "1e308",
        "1e309",
        "-1e400",
        "nan",
        "inf",
        "-inf",
        "0x10",
        "1_000",
        " 12 ",
        "+3",
        "",
        "٣",  # an Arabic-Indic digit: int() takes it, a query number is ASCII
        "\x00",
    ]
)
QUERY_TEXT = EDGE_NUMBERS | st.integers().map(str) | st.floats().map(repr) | st.text(max_size=30)
app = Flask(__name__)


def parse_int(raw: str, low: int, high: int) -> int | None:
    with app.test_request_context(query_string={"n": raw}):
        try:
            return query_int("n", 7, low, high)
        except Refused:
            return None


@FAST
@given(QUERY_TEXT, st.integers(-(2**70), 2**70), st.integers(0, 2**70))
def test_a_query_number_is_clamped_into_its_range_or_refused(raw: str, low: int, span: int) -> None:
    high = low + span
    value = parse_int(raw, low, high)
    if value is None:
        assert raw.strip(), "an empty value is the default, never a refusal"
    else:
        assert value == 7 or low <= value <= high


def test_a_query_number_reads_what_it_should() -> None:
    assert parse_int("9223372036854775808", 0, MAX_QUERY_INT) == MAX_QUERY_INT
    assert parse_int("-" + "9" * 5000, -5, 5) == -5
    assert parse_int(" 12 ", 0, 100) == 12 and parse_int("+3", 0, 100) == 3 and parse_int("", 0, 9) == 7
    assert (
        parse_int("000", 1, 9) == 1 and parse_int("-0", -3, 3) == 0 and parse_int("0" * 40 + "5", 0, 9) == 5
    )
    for bad in ("1e3", "1.5", "abc", "0x10", "1_000", "٣", "nan"):
        assert parse_int(bad, 0, 100) is None, bad


@FAST
@given(st.dictionaries(st.sampled_from(FILTER_PARAMS), QUERY_TEXT, max_size=6))
def test_session_filters_are_a_query_or_a_filter_error_and_sqlite_binds_them(params: dict[str, str]) -> None:
    try:
        query = query_from_params(params)
    except FilterError as exc:
        assert exc.param in FILTER_PARAMS
        return
    where, values = query.where(camera_bit=0)
    with sqlite3.connect(":memory:") as conn:  # an int beyond 64 bits would raise OverflowError here
        conn.execute("SELECT " + ", ".join("?" for _ in values) if values else "SELECT 1", values)
    assert where.count("?") == len(values)


# -- over HTTP -------------------------------------------------------------------------------------
def wait_catalog_ready(client: FlaskClient, timeout: float = 20.0) -> None:
    until(
        lambda: client.get("/sessions").get_json().get("catalog") == "ready",
        timeout,
        "the session catalog to finish building",
    )


@integration
@OVER_HTTP
@given(
    st.sampled_from(["/sessions", "/history", "/cameras/cameradevice_swir_1/live.jpg"]),
    st.dictionaries(st.sampled_from(["limit", "offset", "max", *FILTER_PARAMS]), QUERY_TEXT, max_size=4),
)
def test_no_query_string_gets_a_server_error(client: FlaskClient, path: str, params: dict[str, str]) -> None:
    wait_catalog_ready(client)  # while it builds, a filtered listing is a documented 503 (Retry-After)
    resp = client.get(path, query_string=params)
    assert resp.status_code < 500, (path, params, resp.get_json())
    if resp.status_code == 400:
        assert resp.get_json()["details"][0]["field"] in params


@integration
def test_the_issues_reproductions_are_answered_not_crashed(
    client: FlaskClient, service: CaptureService
) -> None:
    huge = "9223372036854775808"
    wait_catalog_ready(client)  # while it builds, a filtered listing is a documented 503
    for path in (f"/sessions?offset={huge}", f"/sessions?offset={huge}&camera=x", f"/history?offset={huge}"):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_json())
        assert resp.get_json()["offset"] == MAX_QUERY_INT
    resp = client.get("/sessions?limit=ten")
    assert resp.status_code == 400 and "limit" in resp.get_json()["error"]
    never = client.post("/schedules", json={"batch": batch(), "cron": "0 0 30 2 *"})
    assert never.status_code == 400 and "never fires" in never.get_json()["error"]


@integration
def test_a_grid_over_axes_without_limits_is_refused_not_crashed(
    sim: SimRig, start_service: Callable[..., CaptureService]
) -> None:
    commands: dict[str, Any] = Config().to_json()["positioning_commands"]
    for name in ("set_pan_position_degree", "set_tilt_position_degree"):
        commands[name] = {**commands[name], "min": None, "max": None}
    client = create_app(start_service(positioning_commands=commands)).test_client()
    axis = {"from": -(10**300), "to": 10**300, "step": 1}
    body = {
        "cameras": ["cameradevice_swir_1"],
        "duration_second": 1,
        "grid": {"pan_deg_x100": axis, "tilt_deg_x100": axis, "order": "rows"},
    }
    resp = client.post("/scans", json=body)
    assert resp.status_code == 400 and "poses" in resp.get_json()["error"], resp.get_json()
    assert len(resp.data) < 5_000
