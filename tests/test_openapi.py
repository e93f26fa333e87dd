"""schemathesis against the live service: no 5xx, every answer matches /openapi.json, and every
operation refuses (4xx) every request the document forbids.

The document is generated from the request and answer models (api/openapi_gen.py). One run sends
every operation positive requests (valid by the document: answered as documented) and negative ones
(a field of the wrong type, out of its limits, a key too many or missing, a body of the wrong shape,
a parameter that is not a number: refused), against a confined configuration (short recordings, a
small queue, narrow axes) so that the batches and scans it generates stay cheap. ``PUT /config`` has a
run of its own against a service with a config.json (:data:`EXCLUDED` says why).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api.dashboard_openapi import OPENAPI_PATHS as DASHBOARD_PATHS
from api.exports import OPENAPI_PATHS as EXPORT_PATHS
from api.openapi import spec
from api.openapi_parts import HTTP_METHODS
from rigcore.config import Config
from service.batches.validation import MAX_COMMANDS
from service.capture import CaptureService
from service.scans.spec import MAX_POSES
from service.status import JobStatus
from simulator.rig import SimRig
from tests.conftest import scaled, serve

API_DIR = Path(__file__).resolve().parent.parent / "api"
MAX_HAND_WRITTEN_SCHEMAS = 20

RESPONSE_CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
)
ALL_CHECKS = f"{RESPONSE_CHECKS},negative_data_rejection"
# Operations the run over every operation leaves out, and why. None shuts the service down or deletes
# everything; PUT /config only changes what the others run under, so it is checked alone.
EXCLUDED = {
    "PUT /config": "changes the configuration the other operations run under (a recording of an hour, "
    "another broker): checked in a run of its own, against a service with a config.json",
}


def confined() -> dict[str, Any]:
    """Overrides that keep whatever schemathesis generates cheap: recordings of at most a second, a
    queue of two, settles that give up soon, pan and tilt within +-10 degrees (grids stay small)."""
    commands = Config().to_json()["positioning_commands"]
    for name in ("set_pan_position_degree", "set_tilt_position_degree"):
        commands[name] = {**commands[name], "min": -1000, "max": 1000}
    return {
        "recording": {"max_duration_s": 1.0},
        "api": {"queue_size": 2},
        "settle": {"timeout_s": scaled(5.0)},
        "positioning_commands": commands,
    }


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


def operations(url: str) -> list[str]:
    """Every operation the live service documents (blueprints add theirs when registered)."""
    paths = requests.get(f"{url}/openapi.json", timeout=scaled(10)).json()["paths"]
    return [
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method in item
        if method in HTTP_METHODS
    ]


@pytest.fixture
def confined_url(sim: SimRig, start_service: Callable[..., CaptureService]) -> Iterator[str]:
    with serve(start_service(**confined())) as url:
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


def all_tested(output: str, url: str, left_out: int) -> None:
    """Every operation of the live document but ``left_out`` was selected and tested (a renamed path
    would otherwise pass by testing nothing). schemathesis leaves out GET /openapi.json, the document
    it loaded, by itself."""
    found = re.search(r"Selected: (\d+)/(\d+)", output)
    assert found is not None, output[-3000:]
    selected, loaded = int(found[1]), int(found[2])
    assert loaded == len(operations(url)) - 1 and selected == loaded - left_out, output[-3000:]
    assert f"Tested: {selected}" in output, output[-3000:]


def positive_and_negative(url: str, cwd: Path, *selection: str) -> str:
    """Valid and invalid requests to the operations ``selection`` picks, every check on."""
    phases = ("--phases", "examples,coverage,fuzzing", "--max-examples", "40")
    return schemathesis(url, cwd, *selection, "--mode", "all", "--checks", ALL_CHECKS, *phases)


@pytest.mark.integration
def test_schemathesis_positive_and_negative_data_against_every_operation(
    confined_url: str, tmp_path: Path
) -> None:
    excluded = (option for name in EXCLUDED for option in ("--exclude-name", name))
    output = positive_and_negative(confined_url, tmp_path, *excluded)
    all_tested(output, confined_url, len(EXCLUDED))


@pytest.mark.integration
def test_schemathesis_put_config_against_a_config_file(
    sim: SimRig, start_configured: Callable[..., CaptureService], tmp_path: Path
) -> None:
    with serve(start_configured(**confined())) as url:
        included = (option for name in EXCLUDED for option in ("--include-name", name))
        output = positive_and_negative(url, tmp_path, *included)
        all_tested(output, url, len(operations(url)) - 1 - len(EXCLUDED))
