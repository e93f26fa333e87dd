"""tests/solo.py: under two xdist workers, a solo test never overlaps another test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TIMED = """
import time
from pathlib import Path

import pytest

LOG = Path({log!r})


def timed(name, seconds):
    start = time.monotonic()
    time.sleep(seconds)
    with LOG.open("a") as f:
        f.write(f"{{name}} {{start}} {{time.monotonic()}}\\n")
"""


def write_tests(folder: Path, log: Path) -> None:
    head = TIMED.format(log=str(log))
    (folder / "test_a.py").write_text(
        head + "\n@pytest.mark.solo\ndef test_alone():\n    timed('solo', 0.5)\n"
        "\ndef test_after():\n    timed('a2', 0.1)\n"
    )
    # Whichever file a worker takes first, the other is still running when test_a's turn comes.
    for name, count in (("b", 4), ("c", 12)):
        body = "".join(f"\ndef test_{name}{i}():\n    timed('{name}{i}', 0.15)\n" for i in range(count))
        (folder / f"test_{name}.py").write_text(head + body)
    (folder / "pytest.ini").write_text("[pytest]\n")


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows: tests/solo.py does nothing there")
def test_a_solo_test_runs_while_the_other_worker_runs_nothing(tmp_path: Path) -> None:
    folder, log = tmp_path / "suite", tmp_path / "times.log"
    folder.mkdir()
    write_tests(folder, log)
    ini = str(folder / "pytest.ini")
    command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile", "-p", "tests.solo"]
    result = subprocess.run(
        [*command, "-p", "no:cacheprovider", "-c", ini, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spans = {
        name: (float(a), float(b))
        for name, a, b in (line.split() for line in log.read_text().split("\n") if line)
    }
    assert len(spans) == 18
    solo_start, solo_end = spans.pop("solo")
    overlapping = [name for name, (start, end) in spans.items() if start < solo_end and end > solo_start]
    assert overlapping == [], f"ran beside the solo test: {overlapping}"
