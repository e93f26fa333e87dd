"""History: every request received, with when, from whom and what came of it (README "### History").

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

import copy
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigcore.atomic import read_json_or_quarantine, write_bytes_atomic

log = logging.getLogger(__name__)

RECENT_MAX = 100  # entries in history.json before the oldest move to the archives
RECENT_KEEP = 50  # entries left in history.json when they do
RECENT_MAX_BYTES = 4 << 20  # the same in bytes, for batches with large arguments
RECENT_KEEP_BYTES = 1 << 20
ARCHIVE_MAX = 500  # entries per archive file
JOURNAL_MAX_BYTES = 16 << 20  # compact the journal when it passes this between two archivings
ARCHIVES_CACHED = 2  # archives kept parsed in memory for get() and paging
UNFINISHED = ("queued", "running")  # a job whose entry will change again: never archived
EXCERPT_CHARS = 2000  # characters of a refused request's body kept in history


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


def _normalized(value: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy holding only JSON types (what a reader of the files gets back)."""
    out: dict[str, Any] = json.loads(_line(value))
    return out


def _line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _encode(entry: dict[str, Any]) -> bytes:
    """An entry as history.json shows it: indented by 2, nested in the "requests" list."""
    text = json.dumps(entry, indent=2, ensure_ascii=False, default=str)
    return _to_bytes("    " + text.replace("\n", "\n    "))


def _document(texts: Iterable[bytes], archived: dict[str, Any] | None = None) -> Iterator[bytes]:
    """``{"requests": [...]}`` from encoded entries, laid out as ``json.dump(indent=2)`` would, in
    pieces (written one after the other: no copy of the whole)."""
    before = b'{\n  "requests": [\n'
    for text in texts:
        yield before
        yield text
        before = b",\n"
    yield b'{\n  "requests": []' if before != b",\n" else b"\n  ]"
    if archived:
        yield b',\n  "archived": ' + json.dumps(archived, indent=2).replace("\n", "\n  ").encode()
    yield b"\n}\n"


def _to_bytes(text: str) -> bytes:
    # A lone surrogate (JSON "\ud800" reads as one) is written back as its JSON escape: still valid.
    return text.encode("utf-8", "backslashreplace")


def _append_lines(path: Path, lines: Iterable[str]) -> int:
    """Append lines and fsync; a failed append is cut off so no torn line stays. Returns the new size."""
    data = b"".join(_to_bytes(line) + b"\n" for line in lines)
    with open(path, "ab") as fh:
        start = fh.tell()
        try:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            try:
                fh.truncate(start)
            except OSError:
                pass
            raise
        return start + len(data)


def _read_lines(path: Path) -> tuple[list[Any], int, bool]:
    """The JSON lines of ``path``: (values, unreadable complete lines, torn last line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0, False
    lines = data.split(b"\n")
    torn = lines.pop() != b""  # a kill mid-append: that change was never acknowledged
    values, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except ValueError:
            bad += 1
    return values, bad, torn


def _month(entry: dict[str, Any]) -> str:
    when = entry.get("received_at")
    if isinstance(when, int | float) and not isinstance(when, bool):
        try:
            return time.strftime("%Y-%m", time.localtime(when))
        except (OverflowError, OSError, ValueError):
            pass
    return "undated"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _aside(path: Path) -> Path:
    return path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")


_TAIL = b"\n  ]\n}\n"  # how _document ends a file without "archived": where an archive is extended


@dataclass
class _Archive:
    name: str
    month: str
    count: int  # entries in the file: what paging counts
    size: int  # the file's bytes when last indexed: a last archive of another size is read again


class HistoryStore:
    """The history: ``add``, ``update``, ``get``, ``entries``, ``page``, ``unfinished``; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path.with_name(f"{path.stem}.journal.jsonl")
        self.archive_dir = path.with_name(path.stem if path.suffix else f"{path.name}.archive")
        self.index_path = self.archive_dir / "index.jsonl"
        self.warning: str | None = None
        self._lock = threading.RLock()
        self._recent: dict[str, dict[str, Any]] = {}  # in the order received
        self._texts: dict[str, bytes] = {}  # each recent entry, encoded as history.json has it
        self._bytes = 0
        self._archives: list[_Archive] = []
        self._positions: dict[str, int] = {}  # file name → position in _archives
        self._archived: dict[str, int] = {}  # id → position in _archives
        self._months: dict[str, int] = {}  # month → archive files for it so far
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._journal_bytes = 0
        with self._lock:
            self._open()

    # -- start ---------------------------------------------------------------------------------------
    def _open(self) -> None:
        """Archives from the index, recent entries from the journal (or, the first time, history.json)."""
        notes: list[str] = []
        self._load_index(notes)
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

    def _load_index(self, notes: list[str]) -> None:
        lines, bad, torn = _read_lines(self.index_path)
        if bad:
            notes.append(f"{bad} unreadable lines in {self.index_path}; their archives were indexed again")
        for line in lines:
            if isinstance(line, dict) and isinstance(line.get("file"), str):
                ids = [str(i) for i in line.get("ids") or []]
                self._register(line["file"], ids, line.get("count", len(ids)), line.get("bytes", -1))
        found = sorted(p.name for p in self.archive_dir.glob(f"{self.path.stem}-*.json"))
        unindexed = [name for name in found if name not in self._positions]
        # A kill between writing an archive and its index line leaves an archive the index does not
        # know, or a last archive longer than indexed (the only one ever extended): read those again.
        last = self._archives[-1] if self._archives else None
        if last is not None and _size(self.archive_dir / last.name) != last.size:
            unindexed.insert(0, last.name)
        if torn or bad or unindexed:
            for name in unindexed:
                self._index_file(name, notes)
            self._rewrite_index()
        on_disk = set(found)
        missing = [a.name for a in self._archives if a.name not in on_disk]
        if missing:
            notes.append(f"archives listed in {self.index_path.name} are missing: {', '.join(missing[:5])}")

    def _index_file(self, name: str, notes: list[str]) -> None:
        path = self.archive_dir / name
        try:
            data = path.read_bytes()
            ids = [str(e["id"]) for e in json.loads(data)["requests"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            notes.append(f"archive {name} could not be read ({exc}); left as it is")
            return
        self._register(name, ids, len(ids), len(data))

    def _register(self, name: str, ids: list[str], count: Any, size: Any) -> None:
        """Note an archive, or more of one: ``ids`` (what get() looks up), ``count`` entries in all
        (what paging counts), ``size`` its bytes. An index line for a known archive extends it."""
        if not isinstance(count, int) or count <= 0:
            return
        position = self._positions.get(name)
        if position is None:
            position = self._positions[name] = len(self._archives)
            month, _, number = name[len(self.path.stem) + 1 : -len(".json")].rpartition("-")
            self._archives.append(_Archive(name, month, count, -1))
            self._months[month] = max(self._months.get(month, 0), int(number) if number.isdigit() else 0)
        archive = self._archives[position]
        archive.count, archive.size = count, size if isinstance(size, int) else -1
        for entry_id in ids:
            self._archived.setdefault(entry_id, position)
        self._cache.pop(position, None)

    def _index_line(self, archive: _Archive, ids: list[str]) -> None:
        line = {"file": archive.name, "count": archive.count, "ids": ids, "bytes": archive.size}
        _append_lines(self.index_path, [_line(line)])

    def _rewrite_index(self) -> None:
        ids: list[list[str]] = [[] for _ in self._archives]
        for entry_id, position in self._archived.items():
            ids[position].append(entry_id)
        lines = (
            _line({"file": a.name, "count": a.count, "ids": i, "bytes": a.size}) + "\n"
            for a, i in zip(self._archives, ids, strict=True)
        )
        write_bytes_atomic(self.index_path, (_to_bytes(line) for line in lines))

    def _replay(self, notes: list[str]) -> None:
        """Rebuild the recent entries from the journal; updates to archived entries reach their archive."""
        ops, bad, torn = _read_lines(self.journal_path)
        if torn:
            log.warning(
                "%s ended with a torn line (a kill mid-write); that change was never acknowledged",
                self.journal_path.name,
            )
        if bad:
            aside = _aside(self.journal_path)
            shutil.copy2(self.journal_path, aside)
            notes.append(
                f"{bad} unreadable lines in {self.journal_path.name} were skipped; "
                f"a copy is kept as {aside.name}"
            )
        late: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for op in ops:
            self._replay_one(op, late)
        for position, updates in late.items():
            self._update_archive(position, updates)
        for entry_id in self._recent:
            self._encode_recent(entry_id)

    def _replay_one(self, op: Any, late: dict[int, list[tuple[str, dict[str, Any]]]]) -> None:
        if not isinstance(op, dict):
            return
        if op.get("op") == "add" and isinstance(op.get("entry"), dict):
            entry_id = str(op["entry"].get("id"))
            if entry_id not in self._archived:  # else archived before the journal was compacted
                self._recent[entry_id] = op["entry"]
        elif op.get("op") == "update" and isinstance(op.get("fields"), dict):
            entry_id = str(op.get("id"))
            if entry_id in self._recent:
                self._recent[entry_id].update(op["fields"])
            elif entry_id in self._archived:
                late.setdefault(self._archived[entry_id], []).append((entry_id, op["fields"]))

    def _adopt(self, shown: list[dict[str, Any]]) -> int:
        """Entries history.json shows that neither the journal nor the archives hold: a history.json
        from before the journal existed. They are recorded, never dropped."""
        fresh: dict[str, dict[str, Any]] = {}
        for number, entry in enumerate(shown):
            entry_id = str(entry["id"]) if "id" in entry else f"entry-{number + 1}"
            if entry_id in self._recent or entry_id in self._archived:
                continue  # the journal's version is the true one
            while entry_id in fresh:  # the same id twice in an old file: both are kept
                entry_id += "~"
            fresh[entry_id] = _normalized({**entry, "id": entry_id})
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
            fresh = [_normalized(e) for e in entries]
            ids = [str(e["id"]) for e in fresh]
            taken = [i for i in ids if i in self._recent or i in self._archived]
            if taken or len(set(ids)) != len(ids):
                raise ValueError(f"history already has an entry {(taken or ids)[0]}")
            self._journal_bytes = _append_lines(
                self.journal_path, (_line({"op": "add", "entry": e}) for e in fresh)
            )
            for entry_id, entry in zip(ids, fresh, strict=True):
                self._recent[entry_id] = entry
                self._encode_recent(entry_id)
            self._after_change()

    def update(self, entry_id: str, **fields: Any) -> None:
        """Change fields of an entry (KeyError if there is none; OSError: the journal cannot be written)."""
        with self._lock:
            if entry_id not in self._recent and entry_id not in self._archived:
                raise KeyError(entry_id)
            changes = _normalized(fields)
            self._journal_bytes = _append_lines(
                self.journal_path, [_line({"op": "update", "id": entry_id, "fields": changes})]
            )
            if entry_id in self._recent:
                self._recent[entry_id].update(changes)
                self._encode_recent(entry_id)
            else:  # rare: an old entry changed after it was archived
                position = self._archived[entry_id]
                self._tidy(lambda: self._update_archive(position, [(entry_id, changes)]))
            self._after_change()

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
        text = _encode(self._recent[entry_id])
        self._bytes += len(text) - len(self._texts.get(entry_id, b""))
        self._texts[entry_id] = text

    def _write_recent(self) -> None:
        archived = self._archived_count()
        where = {"entries": archived, "folder": self.archive_dir.name} if archived else None
        write_bytes_atomic(self.path, _document(self._texts.values(), where))

    def _compact(self) -> None:
        """Rewrite the journal as one add per recent entry (archived entries need no journal)."""
        lines = [_to_bytes(_line({"op": "add", "entry": e}) + "\n") for e in self._recent.values()]
        write_bytes_atomic(self.journal_path, lines)
        self._journal_bytes = sum(len(line) for line in lines)

    # -- archiving -------------------------------------------------------------------------------------
    def _rotate(self) -> None:
        if len(self._recent) <= RECENT_MAX and self._bytes <= RECENT_MAX_BYTES:
            return
        moving = self._oldest_finished()
        if not moving:
            return
        months = [_month(self._recent[i]) for i in moving]
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
        """Move entries of one month to the archives: appended to the last archive while it is of that
        month and has room, else to new ones. Each file is written atomically, then its index line; a
        kill between the two is repaired at start (the file is read again), and until the journal is
        compacted it still holds those entries, which replay then skips as archived."""
        while ids:
            last = self._archives[-1] if self._archives else None
            room = ARCHIVE_MAX - last.count if last is not None and last.month == month else 0
            size = room if room > 0 else ARCHIVE_MAX
            chunk, ids = ids[:size], ids[size:]
            texts = [self._texts[i] for i in chunk]
            if last is None or room <= 0 or not self._extend(last, texts):
                last = self._new_archive(month, texts)
            self._register(last.name, chunk, last.count, last.size)
            self._index_line(last, chunk)
            for entry_id in chunk:
                del self._recent[entry_id]
                self._bytes -= len(self._texts.pop(entry_id))

    def _new_archive(self, month: str, texts: list[bytes]) -> _Archive:
        number = self._months.get(month, 0) + 1
        while (self.archive_dir / f"{self.path.stem}-{month}-{number:04d}.json").exists():
            number += 1
        name = f"{self.path.stem}-{month}-{number:04d}.json"
        chunks = list(_document(texts))
        write_bytes_atomic(self.archive_dir / name, chunks)
        self._register(name, [], len(texts), sum(len(c) for c in chunks))
        return self._archives[-1]

    def _extend(self, archive: _Archive, texts: list[bytes]) -> bool:
        """Rewrite ``archive`` with ``texts`` added at its end, without parsing it; False if the file
        is not as this store wrote it (edited by hand, say): a new archive is begun instead."""
        path = self.archive_dir / archive.name
        try:
            old = path.read_bytes()
        except OSError:
            return False
        if not old.endswith(_TAIL):
            return False
        chunks = [old[: -len(_TAIL)], *(b",\n" + t for t in texts), _TAIL]
        write_bytes_atomic(path, chunks)
        archive.count += len(texts)
        archive.size = sum(len(c) for c in chunks)
        return True

    def _update_archive(self, position: int, updates: list[tuple[str, dict[str, Any]]]) -> None:
        entries = [copy.deepcopy(e) for e in self._part(position)]
        by_id = {str(e.get("id")): e for e in entries}
        for entry_id, fields in updates:
            if entry_id in by_id:
                by_id[entry_id].update(fields)
        if entries == self._part(position):
            return
        archive = self._archives[position]
        chunks = list(_document(_encode(e) for e in entries))
        write_bytes_atomic(self.archive_dir / archive.name, chunks)
        archive.size = sum(len(c) for c in chunks)
        self._index_line(archive, [])
        self._cache[position] = entries

    def _part(self, position: int) -> list[dict[str, Any]]:
        """An archive's entries, parsed (a few kept in memory)."""
        if position in self._cache:
            self._cache.move_to_end(position)
            return self._cache[position]
        name = self._archives[position].name
        entries: list[dict[str, Any]] = []
        try:
            entries = json.loads((self.archive_dir / name).read_text(encoding="utf-8"))["requests"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.warning = f"archive {name} could not be read ({exc})"
            log.warning(self.warning)
        self._cache[position] = entries
        while len(self._cache) > ARCHIVES_CACHED:
            self._cache.popitem(last=False)
        return entries

    # -- reading ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return self._archived_count() + len(self._recent)

    def _archived_count(self) -> int:
        return sum(a.count for a in self._archives)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._texts.get(entry_id)
            if text is not None:
                found: dict[str, Any] = json.loads(text)
                return found
            position = self._archived.get(entry_id)
            if position is None:
                return None
            for entry in self._part(position):
                if str(entry.get("id")) == entry_id:
                    return copy.deepcopy(entry)
            return None

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
        out: list[dict[str, Any]] = []
        first = 0
        for position, archive in enumerate(self._archives):
            if first >= end:
                return out
            if first + archive.count > start:
                part = self._part(position)
                out.extend(copy.deepcopy(part[max(start - first, 0) : end - first]))
            first += archive.count
        texts = list(self._texts.values())[max(start - first, 0) : max(end - first, 0)]
        out.extend(json.loads(t) for t in texts)
        return out
