"""The archives of the history (service.history.store): ``history/history-YYYY-MM-NNNN.json``, one month
per file, at most ``ARCHIVE_MAX`` (service.history.store) entries each, and ``history/index.jsonl`` listing
each archive's ids so that an old entry is found by reading one archive."""

from __future__ import annotations

import copy
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigcore.atomic import write_bytes_atomic
from service.history.files import (
    TAIL,
    append_lines,
    document,
    encode_entry,
    file_size,
    json_line,
    read_lines,
    to_bytes,
)

log = logging.getLogger(__name__)

ARCHIVES_CACHED = 2  # archives kept parsed in memory for get() and paging


@dataclass
class ArchiveFile:
    name: str
    month: str
    count: int  # entries in the file: what paging counts
    size: int  # the file's bytes when last indexed: a last archive of another size is read again


class Archives:
    """The archive files and their index (not thread-safe: HistoryStore holds its lock)."""

    def __init__(
        self, stem: str, folder: Path, warn: Callable[[str], None], capacity: Callable[[], int]
    ) -> None:
        self.stem = stem
        self.folder = folder
        self.index_path = folder / "index.jsonl"
        self._warn = warn  # an archive that cannot be read: the history's warning
        self._capacity = capacity  # entries per archive file (read at each use)
        self.files: list[ArchiveFile] = []
        self._positions: dict[str, int] = {}  # file name → position in files
        self._archived: dict[str, int] = {}  # id → position in files
        self._months: dict[str, int] = {}  # month → archive files for it so far
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()

    # -- the index -------------------------------------------------------------------------------------
    def load_index(self, notes: list[str]) -> None:
        lines, bad, torn = read_lines(self.index_path)
        if bad:
            notes.append(f"{bad} unreadable lines in {self.index_path}; their archives were indexed again")
        for line in lines:
            if isinstance(line, dict) and isinstance(line.get("file"), str):
                ids = [str(i) for i in line.get("ids") or []]
                self._register(line["file"], ids, line.get("count", len(ids)), line.get("bytes", -1))
        found = sorted(p.name for p in self.folder.glob(f"{self.stem}-*.json"))
        unindexed = [name for name in found if name not in self._positions]
        # A kill between writing an archive and its index line leaves an archive the index does not
        # know, or a last archive longer than indexed (the only one ever extended): read those again.
        last = self.files[-1] if self.files else None
        if last is not None and file_size(self.folder / last.name) != last.size:
            unindexed.insert(0, last.name)
        if torn or bad or unindexed:
            for name in unindexed:
                self._index_file(name, notes)
            self._rewrite_index()
        on_disk = set(found)
        missing = [a.name for a in self.files if a.name not in on_disk]
        if missing:
            notes.append(f"archives listed in {self.index_path.name} are missing: {', '.join(missing[:5])}")

    def _index_file(self, name: str, notes: list[str]) -> None:
        path = self.folder / name
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
            position = self._positions[name] = len(self.files)
            month, _, number = name[len(self.stem) + 1 : -len(".json")].rpartition("-")
            self.files.append(ArchiveFile(name, month, count, -1))
            self._months[month] = max(self._months.get(month, 0), int(number) if number.isdigit() else 0)
        archive = self.files[position]
        archive.count, archive.size = count, size if isinstance(size, int) else -1
        for entry_id in ids:
            self._archived.setdefault(entry_id, position)
        self._cache.pop(position, None)

    def _index_line(self, archive: ArchiveFile, ids: list[str]) -> None:
        line = {"file": archive.name, "count": archive.count, "ids": ids, "bytes": archive.size}
        append_lines(self.index_path, [json_line(line)])

    def _rewrite_index(self) -> None:
        ids: list[list[str]] = [[] for _ in self.files]
        for entry_id, position in self._archived.items():
            ids[position].append(entry_id)
        lines = (
            json_line({"file": a.name, "count": a.count, "ids": i, "bytes": a.size}) + "\n"
            for a, i in zip(self.files, ids, strict=True)
        )
        write_bytes_atomic(self.index_path, (to_bytes(line) for line in lines))

    # -- lookup ----------------------------------------------------------------------------------------
    def position(self, entry_id: str) -> int | None:
        """The archive holding ``entry_id`` (None: not archived)."""
        return self._archived.get(entry_id)

    def count(self) -> int:
        return sum(a.count for a in self.files)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        position = self._archived.get(entry_id)
        if position is None:
            return None
        for entry in self.part(position):
            if str(entry.get("id")) == entry_id:
                return copy.deepcopy(entry)
        return None

    def slice(self, start: int, end: int) -> tuple[list[dict[str, Any]], int]:
        """Entries ``start``..``end`` counted over the archives, in order; and how many they hold."""
        out: list[dict[str, Any]] = []
        first = 0
        for position, archive in enumerate(self.files):
            if first >= end:
                return out, first
            if first + archive.count > start:
                part = self.part(position)
                out.extend(copy.deepcopy(part[max(start - first, 0) : end - first]))
            first += archive.count
        return out, first

    def part(self, position: int) -> list[dict[str, Any]]:
        """An archive's entries, parsed (a few kept in memory)."""
        if position in self._cache:
            self._cache.move_to_end(position)
            return self._cache[position]
        name = self.files[position].name
        entries: list[dict[str, Any]] = []
        try:
            entries = json.loads((self.folder / name).read_text(encoding="utf-8"))["requests"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warning = f"archive {name} could not be read ({exc})"
            self._warn(warning)
            log.warning(warning)
        self._cache[position] = entries
        while len(self._cache) > ARCHIVES_CACHED:
            self._cache.popitem(last=False)
        return entries

    # -- writing ---------------------------------------------------------------------------------------
    def add(
        self,
        ids: list[str],
        month: str,
        text_of: Callable[[str], bytes],
        moved: Callable[[list[str]], None],
    ) -> None:
        """Move entries of one month to the archives: appended to the last archive while it is of that
        month and has room, else to new ones. Each file is written atomically, then its index line; a
        kill between the two is repaired at start (the file is read again), and until the journal is
        compacted it still holds those entries, which replay then skips as archived. ``moved`` is
        called with each chunk once it is archived."""
        while ids:
            last = self.files[-1] if self.files else None
            capacity = self._capacity()
            room = capacity - last.count if last is not None and last.month == month else 0
            size = room if room > 0 else capacity
            chunk, ids = ids[:size], ids[size:]
            texts = [text_of(i) for i in chunk]
            if last is None or room <= 0 or not self._extend(last, texts):
                last = self._new_archive(month, texts)
            self._register(last.name, chunk, last.count, last.size)
            self._index_line(last, chunk)
            moved(chunk)

    def _new_archive(self, month: str, texts: list[bytes]) -> ArchiveFile:
        number = self._months.get(month, 0) + 1
        while (self.folder / f"{self.stem}-{month}-{number:04d}.json").exists():
            number += 1
        name = f"{self.stem}-{month}-{number:04d}.json"
        chunks = list(document(texts))
        write_bytes_atomic(self.folder / name, chunks)
        self._register(name, [], len(texts), sum(len(c) for c in chunks))
        return self.files[-1]

    def _extend(self, archive: ArchiveFile, texts: list[bytes]) -> bool:
        """Rewrite ``archive`` with ``texts`` added at its end, without parsing it; False if the file
        is not as this store wrote it (edited by hand, say): a new archive is begun instead."""
        path = self.folder / archive.name
        try:
            old = path.read_bytes()
        except OSError:
            return False
        if not old.endswith(TAIL):
            return False
        chunks = [old[: -len(TAIL)], *(b",\n" + t for t in texts), TAIL]
        write_bytes_atomic(path, chunks)
        archive.count += len(texts)
        archive.size = sum(len(c) for c in chunks)
        return True

    def update(self, position: int, updates: list[tuple[str, dict[str, Any]]]) -> None:
        """Change fields of archived entries (rare: an old entry changed after it was archived)."""
        entries = [copy.deepcopy(e) for e in self.part(position)]
        by_id = {str(e.get("id")): e for e in entries}
        for entry_id, fields in updates:
            if entry_id in by_id:
                by_id[entry_id].update(fields)
        if entries == self.part(position):
            return
        archive = self.files[position]
        chunks = list(document(encode_entry(e) for e in entries))
        write_bytes_atomic(self.folder / archive.name, chunks)
        archive.size = sum(len(c) for c in chunks)
        self._index_line(archive, [])
        self._cache[position] = entries
