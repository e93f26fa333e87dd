"""schemathesis against the live service: no 5xx, every answer matches /openapi.json, and the main
endpoints refuse (4xx) every request the document forbids.

The document is generated from the request and answer models (api/openapi_gen.py); the request side
is checked by a second, bounded run over the endpoints that take a body, in both modes: positive
requests (valid by the document) must be answered as documented, negative ones (a field of the
wrong type, out of its limits, a key too many or missing, a body of the wrong shape) refused.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.dashboard_openapi import OPENAPI_PATHS as DASHBOARD_PATHS
from api.exports import OPENAPI_PATHS as EXPORT_PATHS
from api.openapi import spec
from service.batches.validation import MAX_COMMANDS
from service.capture import CaptureService
from service.scans.spec import MAX_POSES
from service.status import JobStatus
from simulator.rig import SimRig
from tests.conftest import serve

API_DIR = Path(__file__).resolve().parent.parent / "api"
MAX_HAND_WRITTEN_SCHEMAS = 20

RESPONSE_CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
)
# The operations whose request bodies and parameters the second run checks.
CHECKED_REQUESTS = (
    "POST /process-request",
    "POST /scans",
    "POST /schedules",
    "PUT /presets/{name}",
    "PUT /config",
)


def document() -> dict[str, Any]:
    return spec({**DASHBOARD_PATHS, **EXPORT_PATHS})


def test_limits_and_enums_in_the_document_are_the_codes() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["Batch"]["properties"]["requests"]["maxItems"] == MAX_COMMANDS
    assert schemas["ScanRequest"]["properties"]["poses"]["maxItems"] == MAX_POSES
    assert schemas["JobStatus"]["enum"] == [s.value for s in JobStatus]
    assert schemas["Config"]["properties"]["api"] == {"$ref": "#/components/schemas/ApiConfig"}


def test_every_ref_names_a_component_and_no_json_schema_2020_keyword_is_left() -> None:
    doc = document()
    names = set(doc["components"]["schemas"])
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            assert "$defs" not in node and "const" not in node and node.get("type") != "null", node
            if "$ref" in node:
                assert node["$ref"].removeprefix("#/components/schemas/") in names, node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def test_few_schemas_are_written_by_hand() -> None:
    # The document comes from models: a dict literal with a "type" key in api/ is a schema by hand.
    count = 0
    for path in API_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "type" for k in node.keys
            ):
                count += 1
    assert count <= MAX_HAND_WRITTEN_SCHEMAS


@pytest.fixture
def live_url(sim: SimRig, service: CaptureService) -> Iterator[str]:
    with serve(service) as url:
        yield url


def schemathesis(url: str, cwd: Path, *options: str, timeout: float = 400) -> str:
    """Run schemathesis on the live service's document; its output, asserted to pass."""
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is in requirements-dev.txt"
    common = ["--workers", "1", "--request-timeout", "60", "--seed", "1", "--suppress-health-check", "all"]
    result = subprocess.run(
        [exe, "run", f"{url}/openapi.json", *options, *common],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


@pytest.mark.integration
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_url: str, tmp_path: Path) -> None:
    schemathesis(
        live_url,
        tmp_path,
        "--checks",
        RESPONSE_CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
    )


@pytest.mark.integration
def test_schemathesis_requests_the_document_forbids_are_refused(live_url: str, tmp_path: Path) -> None:
    output = schemathesis(
        live_url,
        tmp_path,
        *(option for name in CHECKED_REQUESTS for option in ("--include-name", name)),
        "--mode",
        "all",
        "--checks",
        f"{RESPONSE_CHECKS},negative_data_rejection",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "10",
    )
    # Each of them was selected and tested (a renamed path would otherwise pass by testing nothing).
    count = len(CHECKED_REQUESTS)
    assert f"{count} selected" in output and f"Tested: {count}" in output, output
