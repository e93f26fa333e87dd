"""The history store (service/history/store.py): journal replay after a kill, archiving that keeps every entry
reachable, history.json valid JSON after every change, damaged files moved aside. Pure: no broker."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from service.history import store as history_module
from service.history.store import HistoryStore, refused_request


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Archive early: history.json keeps 5 to 12 entries, archives hold at most 7."""
    monkeypatch.setattr(history_module, "RECENT_MAX", 12)
    monkeypatch.setattr(history_module, "RECENT_KEEP", 5)
    monkeypatch.setattr(history_module, "ARCHIVE_MAX", 7)


def job(n: int, status: str = "queued", step: float = 4 * 86400) -> dict[str, Any]:
    return {
        "id": f"job-{n:05d}",
        "received_at": 1_700_000_000.0 + n * step,  # four days apart by default: archives span months
        "client": {"address": "127.0.0.1", "user_agent": "test"},
        "request": {"requests": [{"device_id": "acikgoz_pantilt", "args": {"pan_position_deg_x100": n}}]},
        "status": status,
        "results": [],
    }


def run_job(store: HistoryStore, n: int, step: float = 4 * 86400) -> None:
    """A job's life as the service records it: add, then three updates."""
    store.add(job(n, step=step))
    store.update(f"job-{n:05d}", status="running", started_at=1.0)
    store.update(f"job-{n:05d}", sessions=[{"session_id": f"s{n}", "status": "complete"}])
    store.update(f"job-{n:05d}", status="succeeded", finished_at=2.0, results=[{"status": "ok"}])


def shown(path: Path) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["requests"]
    return requests


def every_id(store: HistoryStore, page_size: int) -> list[str]:
    """All ids by paging from the newest, as GET /history does."""
    ids: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = store.page(page_size, offset)
        ids = [e["id"] for e in page["requests"]] + ids
        offset = page["next_offset"]
    return ids


def test_a_killed_store_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    for n in range(5):
        run_job(store, n)
    store.add(job(5))
    store.update("job-00005", status="running")
    # A kill: the object is dropped without any closing, and the last append was torn mid-line.
    del store
    with open(tmp_path / "history.journal.jsonl", "ab") as fh:
        fh.write(b'{"op": "update", "id": "job-00005", "fie')
    (tmp_path / "history.json").unlink()  # even history.json is gone: the journal is the truth

    again = HistoryStore(path)
    assert [e["id"] for e in again.entries()] == [f"job-{n:05d}" for n in range(6)]
    assert again.get("job-00003")["status"] == "succeeded"  # type: ignore[index]
    assert again.get("job-00003")["sessions"][0]["session_id"] == "s3"  # type: ignore[index]
    assert [e["id"] for e in again.unfinished()] == ["job-00005"]
    assert [e["id"] for e in shown(path)] == [f"job-{n:05d}" for n in range(6)]
    again.update("job-00005", status="interrupted")  # the torn line did not break the next append
    assert HistoryStore(path).get("job-00005")["status"] == "interrupted"  # type: ignore[index]


def test_archiving_keeps_every_entry_reachable_and_history_json_valid_after_each_change(
    tmp_path: Path, small: None
) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    for n in range(60):
        run_job(store, n)
        assert len(shown(path)) <= history_module.RECENT_MAX  # parses after every change, stays small
    ids = [f"job-{n:05d}" for n in range(60)]
    assert len(store) == 60
    assert every_id(store, 9) == ids
    assert [e["id"] for e in store.entries()] == ids
    assert [e["id"] for e in store.entries(4)] == ids[-4:]
    assert all(store.get(i)["status"] == "succeeded" for i in ids)  # type: ignore[index]

    archives = sorted((tmp_path / "history").glob("history-*.json"))
    archived = [e["id"] for a in archives for e in json.loads(a.read_text())["requests"]]
    assert len(archives) >= 8 and all(len(json.loads(a.read_text())["requests"]) <= 7 for a in archives)
    for archive in archives:  # one month per file, named after it
        months = {time.strftime("%Y-%m", time.localtime(e["received_at"])) for e in shown(archive)}
        assert [archive.name[len("history-") : len("history-YYYY-MM")]] == list(months)
    assert sorted(archived + [e["id"] for e in shown(path)]) == ids  # each entry in exactly one file
    assert json.loads(path.read_text())["archived"] == {"entries": len(archived), "folder": "history"}
    # The journal holds only what is not archived yet.
    journal = (tmp_path / "history.journal.jsonl").read_text().splitlines()
    assert len(journal) < 4 * history_module.RECENT_MAX

    reopened = HistoryStore(path)
    assert every_id(reopened, 25) == ids and reopened.warning is None
    assert reopened.get("job-00002")["results"] == [{"status": "ok"}]  # type: ignore[index]


def test_unfinished_jobs_are_never_archived(tmp_path: Path, small: None) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    store.add(job(0))
    store.update("job-00000", status="running")
    for n in range(1, 40):
        run_job(store, n)
    assert "job-00000" in [e["id"] for e in shown(path)]
    assert [e["id"] for e in HistoryStore(path).unfinished()] == ["job-00000"]


def test_an_archived_entry_can_still_change(tmp_path: Path, small: None) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    for n in range(30):
        run_job(store, n)
    assert "job-00001" not in [e["id"] for e in shown(path)]
    store.update("job-00001", note="seen later")
    assert store.get("job-00001")["note"] == "seen later"  # type: ignore[index]
    assert HistoryStore(path).get("job-00001")["note"] == "seen later"  # type: ignore[index]
    with pytest.raises(KeyError):
        store.update("job-99999", status="x")
    with pytest.raises(ValueError, match="already"):
        store.add(job(1))


@pytest.mark.parametrize("step", [4 * 86400, 60], ids=["new archive", "archive extended"])
def test_an_archive_missing_from_the_index_is_found_again(tmp_path: Path, small: None, step: float) -> None:
    # A kill between writing an archive (a new one, or the last one extended, as entries a minute apart
    # fill one month's archive) and appending its index line: the index lacks that line.
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    for n in range(30):
        run_job(store, n, step)
    index = tmp_path / "history" / "index.jsonl"
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(lines[:-1]) + lines[-1][:15])  # the last line lost, and torn
    again = HistoryStore(path)
    assert every_id(again, 8) == [f"job-{n:05d}" for n in range(30)]  # each once: none lost, none twice
    assert all(again.get(f"job-{n:05d}") is not None for n in range(30))
    if step == 60:
        assert [len(shown(a)) for a in sorted((tmp_path / "history").glob("history-*.json"))] == [7, 7, 7, 3]


def test_a_damaged_history_json_is_moved_aside_and_rebuilt_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    for n in range(3):
        run_job(store, n)
    path.write_text('{"requests": [{"id": "job-0')  # torn by someone's editor, say
    again = HistoryStore(path)
    assert again.warning is not None and "damaged" in again.warning and "rebuilt" in again.warning
    (aside,) = tmp_path.glob("history.json.damaged-*")
    assert aside.read_text() == '{"requests": [{"id": "job-0'
    assert [e["id"] for e in shown(path)] == ["job-00000", "job-00001", "job-00002"]


def test_without_a_journal_a_damaged_history_json_is_reported_as_lost(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text("[not json")
    store = HistoryStore(path)
    assert store.warning is not None and "started afresh" in store.warning
    assert list(tmp_path.glob("history.json.damaged-*")) and shown(path) == []


def test_unreadable_journal_lines_are_reported_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    run_job(store, 0)
    journal = tmp_path / "history.journal.jsonl"
    journal.write_text(journal.read_text() + "garbage\n")
    run_job(store, 1)
    again = HistoryStore(path)
    assert again.warning is not None and "1 unreadable lines" in again.warning
    assert list(tmp_path.glob("history.journal.jsonl.damaged-*"))
    assert [e["id"] for e in again.entries()] == ["job-00000", "job-00001"]


def test_a_history_json_from_before_the_journal_is_taken_over(tmp_path: Path, small: None) -> None:
    path = tmp_path / "history.json"
    old = [job(n, status="succeeded") for n in range(40)]
    path.write_text(json.dumps({"requests": old}))
    store = HistoryStore(path)
    assert store.warning is None
    assert every_id(store, 11) == [e["id"] for e in old]
    assert len(shown(path)) <= history_module.RECENT_MAX
    bare = tmp_path / "bare" / "history.json"  # the older layout still: a bare list
    bare.parent.mkdir()
    bare.write_text(json.dumps([job(1), {"no id": True}]))
    assert [e["id"] for e in HistoryStore(bare).entries()] == ["job-00001", "entry-2"]


def test_a_failed_journal_write_records_nothing(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    run_job(store, 0)
    journal = tmp_path / "history.journal.jsonl"
    journal.rename(tmp_path / "kept")
    journal.mkdir()  # the journal cannot be opened now: a real OSError
    with pytest.raises(OSError):
        store.add(job(1))
    with pytest.raises(OSError):
        store.update("job-00000", status="changed")
    assert store.get("job-00001") is None and store.get("job-00000")["status"] == "succeeded"  # type: ignore[index]
    journal.rmdir()
    (tmp_path / "kept").rename(journal)
    store.add(job(1))
    assert [e["id"] for e in HistoryStore(path).entries()] == ["job-00000", "job-00001"]


def test_entries_with_odd_text_stay_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    store.add({"id": "odd", "text": 'lone \ud800 surrogate, NUL \x00, quote " and ünïcödé'})
    raw = path.read_bytes().decode("utf-8")  # strict UTF-8
    assert json.loads(raw)["requests"][0]["text"] == 'lone \ud800 surrogate, NUL \x00, quote " and ünïcödé'
    assert HistoryStore(path).get("odd")["text"].startswith("lone \ud800")  # type: ignore[index]


def test_a_refused_body_is_kept_bounded() -> None:
    raw = json.dumps({"requests": [{"camera_ids": ["x" * 10] * 60_000}]}).encode()
    kept = refused_request(raw)
    assert kept["request_bytes"] == len(raw)
    assert kept["request_sha256"] == hashlib.sha256(raw).hexdigest()
    assert (
        len(kept["request_excerpt"]) == history_module.EXCERPT_CHARS + 1
        and kept["request_excerpt"][-1] == "…"
    )
    assert refused_request(b'{"a": 1}')["request_excerpt"] == '{"a": 1}'
    assert refused_request(None, 5_000_000) == {
        "request_bytes": 5_000_000,
        "request_sha256": None,
        "request_excerpt": None,
    }
