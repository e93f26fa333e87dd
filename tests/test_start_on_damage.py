"""The service starts whatever bytes its own files hold: presets, schedules, the history and its
journal, the catalog, the upload records and journals. Damaged files are set aside or skipped with a
warning, never fatal, never silently overwritten."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from api import create_app
from service.capture import CaptureService
from sessions.upload_queue import journal_path, record_path
from tests.conftest import batch

pytestmark = pytest.mark.integration

NOT_UTF8 = b"\xff\xfe\x80\x81 not utf-8 \xc3\x28"
DEEP = b"[" * 50_000 + b"\n"


def damage(tmp_path: Path, seed: int) -> dict[str, bytes]:
    """Write damaged bytes into every file the service owns; return what was written where."""
    rng = random.Random(seed)
    noise = bytes(rng.randrange(256) for _ in range(300))
    images = tmp_path / "images_data"
    files = {
        tmp_path / "presets.json": NOT_UTF8,
        tmp_path / "schedules.json": noise,
        tmp_path / "history.json": DEEP,
        tmp_path / "history.journal.jsonl": NOT_UTF8 + b"\n" + DEEP + noise,
        images / "catalog.sqlite": noise * 10,
        record_path(images, "session", "20260101-000000-000"): NOT_UTF8,
        journal_path(images, "session", "20260101-000000-000"): DEEP + noise,
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {str(p.relative_to(tmp_path)): d for p, d in files.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_the_service_starts_on_damaged_files_and_says_so(
    tmp_path: Path, seed: int, start_service: Callable[..., CaptureService]
) -> None:
    written = damage(tmp_path, seed)
    service = start_service("mqtt")
    client = create_app(service).test_client()
    assert client.get("/healthz").status_code == 200
    status = client.get("/status").get_json()
    assert status["history_warning"] and "damaged" in status["history_warning"]
    assert service.presets.warning and service.schedules.warning
    assert client.get("/presets").status_code == 200 and client.get("/schedules").status_code == 200
    assert client.get("/sessions").status_code == 200
    # Nothing was lost: each set-aside file keeps its bytes beside the fresh one.
    for name in ("presets.json", "schedules.json", "history.json"):
        asides = list(tmp_path.glob(f"{name}.damaged-*"))
        assert len(asides) == 1 and asides[0].read_bytes() == written[name], name
    # And the service works: a batch runs and is recorded in the fresh history.
    answer = client.post("/process-request", json=batch(seconds=0.5))
    assert answer.status_code == 200 and answer.get_json()["status"] == "succeeded", answer.get_json()
    assert client.get(f"/jobs/{answer.get_json()['job_id']}").status_code == 200
