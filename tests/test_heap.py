"""rigcore.heap: the glibc heap settings are applied in a fresh process, and left alone when the
environment already chooses. Each case runs in its own interpreter: mallopt is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROBE = "from rigcore.heap import keep_heap_warm; print(keep_heap_warm())"


def run_probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings")
def test_applied_in_a_fresh_process() -> None:
    assert run_probe() == "True"


@pytest.mark.parametrize("name", ["MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"])
def test_left_alone_when_the_environment_chooses(name: str) -> None:
    value = "1048576" if name.startswith("MALLOC") else "glibc.malloc.trim_threshold=1048576"
    assert run_probe(**{name: value}) == "False"
