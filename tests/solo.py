"""Two workers, and the tests that must run alone (a pytest plugin, registered in tests/conftest.py).

The suite can run on two pytest-xdist workers (``pytest -n 2 --dist loadfile``), one per core of the
machine CI runs on; by default it runs in one process (docs/architecture.md, Tests, says why). Most
tests wait on a rig, a broker or a timer and leave a core idle. Some must not share the machine:

* tests that judge what the service kept at a frame rate, or how fast something answered: a second
  test on the same cores is load a real rig does not add, and the simulated rig skips frames to a
  reader that falls behind (a camera's newest frame replaces the one not yet sent), so a session
  comes out ``partial``;
* tests that take the machine themselves: Chromium, mypy and hypothesis.

A module marks them with ``pytestmark = [..., pytest.mark.solo]`` (or a test with
``@pytest.mark.solo``). A solo test runs while the other worker runs nothing: it waits for the test
running there to end, and the other worker waits for it before starting its next test. Its whole
protocol is covered: setup (a module's fixtures are set up in its first test's setup), call, teardown.

How: two lock files in a folder of the run's own (named by xdist's run id, in the temp folder).
``run.lock`` is held shared by each running test and exclusively by a solo one; ``gate.lock`` is
taken first by every test, briefly, and held by a solo test throughout, so that a waiting solo test
is not overtaken by the other worker's next tests. A worker keeps the machine across consecutive
solo tests (a solo module runs as one stretch), so the other worker waits once per stretch.
Without xdist (``-n 0``) or without ``fcntl`` (Windows) tests run as they come, one at a time anyway.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

try:
    import fcntl
except ImportError:  # Windows: no flock, and no parallel runs to guard either
    fcntl = None  # type: ignore[assignment]  # the hook returns at once then


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "solo: runs while the other xdist worker runs nothing (rates, timings, heavy tools)"
    )


class _Machine:
    """This worker's hold on the two lock files: shared around each test, or the whole machine
    (exclusive) from a solo test on, kept while the tests that follow are solo too (a solo module
    then waits for the other worker once, not once per test)."""

    def __init__(self, folder: Path) -> None:
        self._gate = open(folder / "solo-gate.lock", "a+")  # noqa: SIM115  (held across tests)
        self._run = open(folder / "solo-run.lock", "a+")  # noqa: SIM115
        self.alone = False

    def take_alone(self) -> None:
        if not self.alone:
            _flock(self._gate, fcntl.LOCK_EX)  # the other worker starts no new test from now on
            _flock(self._run, fcntl.LOCK_EX)  # and the test it runs has ended
            self.alone = True

    def release(self) -> None:
        if self.alone:
            _flock(self._run, fcntl.LOCK_UN)
            _flock(self._gate, fcntl.LOCK_UN)
            self.alone = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        self.release()
        _flock(self._gate, fcntl.LOCK_EX)  # waits while a solo test holds the machine
        _flock(self._run, fcntl.LOCK_SH)
        _flock(self._gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            _flock(self._run, fcntl.LOCK_UN)


def _flock(file: IO[Any], operation: int) -> None:
    fcntl.flock(file.fileno(), operation)


def _solo(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("solo") is not None


_machine: list[_Machine] = []  # this worker's, made at its first test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    if fcntl is None or not run_id:
        return (yield)
    if not _machine:
        folder = Path(tempfile.gettempdir()) / f"rigcapture-tests-{run_id}"
        folder.mkdir(exist_ok=True)
        _machine.append(_Machine(folder))
    machine = _machine[0]
    if not _solo(item):
        with machine.shared():
            return (yield)
    machine.take_alone()
    try:
        return (yield)
    finally:
        if not _solo(nextitem):
            machine.release()
