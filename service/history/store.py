"""History: every request received, with when, from whom and what came of it (docs/operations/history.md).

Recording a change costs the same with ten entries or a hundred thousand, because nothing that grows
with the history is rewritten:

- ``history.journal.jsonl`` is the record of truth for the recent entries: one JSON line per add or
  update, fsynced before the call returns, replayed at start (a kill loses nothing acknowledged).
- ``history.json`` is the file people open: ``{"requests": [...]}`` holding the recent entries only,
  rewritten atomically after every change. It is derived from the journal: a damaged one is moved
  aside and rebuilt, never silently reset.
- ``history/history-YYYY-MM-NNNN.json`` are the archives. When history.json passes ``RECENT_MAX``
  entries (or ``RECENT_MAX_BYTES``), its oldest finished entries move out until ``RECENT_KEEP`` remain:
  appended to the month's last archive while it holds fewer than ``ARCHIVE_MAX``, else to a new one
  (one month per file), each archive rewritten atomically; the journal is then compacted to the
  entries still recent. ``history/index.jsonl`` lists each archive's ids, so :meth:`HistoryStore.get`
  reads one archive to find an old entry, and a start reads none (but to repair one after a kill).

A job still queued or running is never archived, so the entries a restart must look at are all recent.
Each recent entry's JSON text is kept, so a change encodes only the entry that changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigcore.atomic import read_json_or_quarantine, write_bytes_atomic
from rigcore.config_paths import history_archive_dir, history_journal
from service.history.archive import Archives
from service.history.bounds import bounded_entry
from service.history.files import (
    append_lines,
    aside_path,
    document,
    encode_entry,
    json_line,
    month_of,
    normalized,
    read_lines,
    to_bytes,
)
from service.status import UNFINISHED

log = logging.getLogger(__name__)

RECENT_MAX = 100  # entries in history.json before the oldest move to the archives
RECENT_KEEP = 50  # entries left in history.json when they do
RECENT_MAX_BYTES = 4 << 20  # the same in bytes, for batches with large arguments
RECENT_KEEP_BYTES = 1 << 20
ARCHIVE_MAX = 500  # entries per archive file
JOURNAL_MAX_BYTES = 16 << 20  # compact the journal when it passes this between two archivings
EXCERPT_CHARS = 2000  # characters of a refused request's body kept in history


@dataclass(frozen=True)
class Refusal:
    """A request the API refused, as history records it (JobQueue.record_rejected)."""

    raw: bytes | None  # the body; None when it was not read (a 413)
    client: dict[str, Any]  # api.contract client_info: address and bounded headers
    status: int  # the HTTP status answered
    error: dict[str, Any]  # the (bounded) error answer
    declared_bytes: int | None = None  # Content-Length, when the body was not read


def refused_request(raw: bytes | None, declared_bytes: int | None = None) -> dict[str, Any]:
    """What history keeps of a refused request's body: its size, SHA-256 and first characters.

    Never the whole body, so a refused request costs history at most a few kB. ``raw`` is None when
    the body was not read (413): only its declared size is known then.
    """
    if raw is None:
        return {"request_bytes": declared_bytes, "request_sha256": None, "request_excerpt": None}
    text = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")  # a character is at most 4 bytes
    cut = len(text) > EXCERPT_CHARS or len(raw) > EXCERPT_CHARS * 4
    return {
        "request_bytes": len(raw),
        "request_sha256": hashlib.sha256(raw).hexdigest(),
        "request_excerpt": text[:EXCERPT_CHARS] + ("…" if cut else ""),
    }


class HistoryStore:
    """The history: ``add``, ``update``, ``get``, ``entries``, ``page``, ``unfinished``; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Their names come from the one list of owned files (rigcore.config_paths).
        self.journal_path = history_journal(path)
        self.archive_dir = history_archive_dir(path)
        self.warning: str | None = None
        self._archives = Archives(path.stem, self.archive_dir, self._warn, lambda: ARCHIVE_MAX)
        self.index_path = self._archives.index_path
        self._lock = threading.RLock()
        self._recent: dict[str, dict[str, Any]] = {}  # in the order received
        self._texts: dict[str, bytes] = {}  # each recent entry, encoded as history.json has it
        self._bytes = 0
        self._journal_bytes = 0
        with self._lock:
            self._open()

    # -- start ---------------------------------------------------------------------------------------
    def _open(self) -> None:
        """Archives from the index, recent entries from the journal (or, the first time, history.json)."""
        notes: list[str] = []
        self._archives.load_index(notes)
        shown, damaged = self._read_shown(notes)
        had_journal = self.journal_path.exists()
        if had_journal:
            self._replay(notes)
        adopted = self._adopt(shown)
        if had_journal and adopted:
            notes.append(f"{adopted} entries found only in {self.path.name} were added to the journal")
        if damaged:
            restored = f"rebuilt it from {self.journal_path.name} ({len(self._recent)} recent entries)"
            notes.insert(0, damaged.replace("started afresh", restored) if had_journal else damaged)
        self._rotate()
        self._compact()
        self._write_recent()
        self.warning = "; ".join(notes) or None

    def _warn(self, warning: str) -> None:
        self.warning = warning

    def _read_shown(self, notes: list[str]) -> tuple[list[dict[str, Any]], str | None]:
        """The entries history.json shows (older layouts too); a damaged file is moved aside first."""
        data, damaged = read_json_or_quarantine(self.path)
        if isinstance(data, dict) and isinstance(data.get("requests"), list):
            return [e for e in data["requests"] if isinstance(e, dict)], damaged
        if isinstance(data, list):  # an older layout: a bare list of entries
            return [e for e in data if isinstance(e, dict)], damaged
        if data is not None:
            notes.append(f"{self.path.name} had an unexpected layout; kept its content under 'legacy'")
            return [{"id": "legacy", "legacy": data}], damaged
        return [], damaged

    def _replay(self, notes: list[str]) -> None:
        """Rebuild the recent entries from the journal; updates to archived entries reach their archive."""
        ops, bad, torn = read_lines(self.journal_path)
        if torn:
            log.warning(
                "%s ended with a torn line (a kill mid-write); that change was never acknowledged",
                self.journal_path.name,
            )
        if bad:
            aside = aside_path(self.journal_path)
            shutil.copy2(self.journal_path, aside)
            notes.append(
                f"{bad} unreadable lines in {self.journal_path.name} were skipped; "
                f"a copy is kept as {aside.name}"
            )
        late: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for op in ops:
            self._replay_one(op, late)
        for position, updates in late.items():
            self._archives.update(position, updates)
        for entry_id in self._recent:
            self._encode_recent(entry_id)

    def _replay_one(self, op: Any, late: dict[int, list[tuple[str, dict[str, Any]]]]) -> None:
        if not isinstance(op, dict):
            return
        if op.get("op") == "add" and isinstance(op.get("entry"), dict):
            entry_id = str(op["entry"].get("id"))
            if self._archives.position(entry_id) is None:  # else archived before the journal was compacted
                self._recent[entry_id] = op["entry"]
        elif op.get("op") == "update" and isinstance(op.get("fields"), dict):
            entry_id = str(op.get("id"))
            if entry_id in self._recent:
                self._recent[entry_id].update(op["fields"])
            elif (position := self._archives.position(entry_id)) is not None:
                late.setdefault(position, []).append((entry_id, op["fields"]))

    def _adopt(self, shown: list[dict[str, Any]]) -> int:
        """Entries history.json shows that neither the journal nor the archives hold: a history.json
        from before the journal existed. They are recorded, never dropped."""
        fresh: dict[str, dict[str, Any]] = {}
        for number, entry in enumerate(shown):
            entry_id = str(entry["id"]) if "id" in entry else f"entry-{number + 1}"
            if self._known(entry_id):
                continue  # the journal's version is the true one
            while entry_id in fresh:  # the same id twice in an old file: both are kept
                entry_id += "~"
            fresh[entry_id] = normalized({**entry, "id": entry_id})
        for entry_id, entry in fresh.items():
            self._recent[entry_id] = entry
            self._encode_recent(entry_id)
        return len(fresh)

    # -- changes ------------------------------------------------------------------------------------
    def add(self, entry: dict[str, Any]) -> None:
        self.add_many([entry])

    def add_many(self, entries: Iterable[dict[str, Any]]) -> None:
        """Record new entries with one journal write (the bulk path: imports, the benchmark's set-up).

        Raises ValueError for an id already recorded and OSError when the journal cannot be written:
        nothing is recorded then.
        """
        with self._lock:
            fresh = [normalized(bounded_entry(e)) for e in entries]
            ids = [str(e["id"]) for e in fresh]
            taken = [i for i in ids if self._known(i)]
            if taken or len(set(ids)) != len(ids):
                raise ValueError(f"history already has an entry {(taken or ids)[0]}")
            self._journal_bytes = append_lines(
                self.journal_path, (json_line({"op": "add", "entry": e}) for e in fresh)
            )
            for entry_id, entry in zip(ids, fresh, strict=True):
                self._recent[entry_id] = entry
                self._encode_recent(entry_id)
            self._after_change()

    def update(self, entry_id: str, **fields: Any) -> None:
        """Change fields of an entry (KeyError if there is none; OSError: the journal cannot be written)."""
        with self._lock:
            if not self._known(entry_id):
                raise KeyError(entry_id)
            changes = normalized(bounded_entry(fields))
            self._journal_bytes = append_lines(
                self.journal_path, [json_line({"op": "update", "id": entry_id, "fields": changes})]
            )
            if entry_id in self._recent:
                self._recent[entry_id].update(changes)
                self._encode_recent(entry_id)
            else:  # rare: an old entry changed after it was archived
                position = self._archives.position(entry_id)
                assert position is not None, entry_id
                self._tidy(lambda: self._archives.update(position, [(entry_id, changes)]))
            self._after_change()

    def _known(self, entry_id: str) -> bool:
        return entry_id in self._recent or self._archives.position(entry_id) is not None

    def _after_change(self) -> None:
        self._tidy(self._tidy_files)

    def _tidy_files(self) -> None:
        self._rotate()
        if self._journal_bytes > JOURNAL_MAX_BYTES:
            self._compact()
        self._write_recent()

    def _tidy(self, action: Callable[[], None]) -> None:
        """Once a change is in the journal it is recorded: what follows only tidies the files (an
        archive, history.json), and a failure there is reported (``warning``) and made good at the
        next change or start (replay), never raised."""
        try:
            action()
        except OSError as exc:
            self.warning = (
                f"{self.path.name} or an archive could not be rewritten ({exc}); "
                f"{self.journal_path.name} holds every change"
            )
            log.exception("history files could not be rewritten")

    def _encode_recent(self, entry_id: str) -> None:
        text = encode_entry(self._recent[entry_id])
        self._bytes += len(text) - len(self._texts.get(entry_id, b""))
        self._texts[entry_id] = text

    def _write_recent(self) -> None:
        archived = self._archives.count()
        where = {"entries": archived, "folder": self.archive_dir.name} if archived else None
        write_bytes_atomic(self.path, document(self._texts.values(), where))

    def _compact(self) -> None:
        """Rewrite the journal as one add per recent entry (archived entries need no journal)."""
        lines = [to_bytes(json_line({"op": "add", "entry": e}) + "\n") for e in self._recent.values()]
        write_bytes_atomic(self.journal_path, lines)
        self._journal_bytes = sum(len(line) for line in lines)

    # -- archiving -------------------------------------------------------------------------------------
    def _rotate(self) -> None:
        if len(self._recent) <= RECENT_MAX and self._bytes <= RECENT_MAX_BYTES:
            return
        moving = self._oldest_finished()
        if not moving:
            return
        months = [month_of(self._recent[i]) for i in moving]
        start = 0
        for end in range(1, len(moving) + 1):
            if end == len(moving) or months[end] != months[start]:
                self._archive(moving[start:end], months[start])
                start = end
        self._compact()

    def _oldest_finished(self) -> list[str]:
        """The oldest entries beyond what history.json keeps, leaving out jobs not finished."""
        count, size, moving = len(self._recent), self._bytes, []
        for entry_id, entry in self._recent.items():
            if (count <= RECENT_KEEP and size <= RECENT_KEEP_BYTES) or count <= 1:
                break
            if entry.get("status") in UNFINISHED:
                continue
            moving.append(entry_id)
            count -= 1
            size -= len(self._texts[entry_id])
        return moving

    def _archive(self, ids: list[str], month: str) -> None:
        self._archives.add(ids, month, self._texts.__getitem__, self._forget)

    def _forget(self, ids: list[str]) -> None:
        """Entries now archived leave the recent ones."""
        for entry_id in ids:
            del self._recent[entry_id]
            self._bytes -= len(self._texts.pop(entry_id))

    # -- reading ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return self._archives.count() + len(self._recent)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._texts.get(entry_id)
            if text is not None:
                found: dict[str, Any] = json.loads(text)
                return found
            return self._archives.get(entry_id)

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (all without a limit: reads every archive), oldest first."""
        with self._lock:
            total = len(self)
            return self._slice(0 if limit is None else max(total - limit, 0), total)

    def page(self, limit: int, offset: int = 0) -> dict[str, Any]:
        """A page counted from the newest: ``offset`` entries skipped, then up to ``limit`` older ones,
        oldest first within the page (as in history.json). ``next_offset`` asks for the page before."""
        with self._lock:
            total = len(self)
            end = max(total - max(offset, 0), 0)
            start = max(end - max(limit, 0), 0)
            return {
                "requests": self._slice(start, end),
                "total": total,
                "offset": offset,
                "limit": limit,
                "next_offset": total - start if start > 0 else None,
            }

    def unfinished(self) -> list[dict[str, Any]]:
        """Entries of jobs still queued or running (never archived, so only recent ones are read)."""
        with self._lock:
            return [
                json.loads(self._texts[i]) for i, e in self._recent.items() if e.get("status") in UNFINISHED
            ]

    def _slice(self, start: int, end: int) -> list[dict[str, Any]]:
        """Entries ``start``..``end`` counted over the archives, in order, then the recent entries."""
        out, first = self._archives.slice(start, end)
        if first >= end:
            return out
        texts = list(self._texts.values())[max(start - first, 0) : max(end - first, 0)]
        out.extend(json.loads(t) for t in texts)
        return out
