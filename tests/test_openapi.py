"""schemathesis against the live service: no 5xx, and every answer matches /openapi.json."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.capture import CaptureService
from simulator.rig import SimRig
from tests.conftest import serve

pytestmark = pytest.mark.integration


@pytest.fixture
def live_url(sim: SimRig, service: CaptureService) -> Iterator[str]:
    with serve(service) as url:
        yield url


def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_url: str, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is in requirements-dev.txt"
    result = subprocess.run(
        [
            exe,
            "run",
            f"{live_url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--seed",
            "1",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
