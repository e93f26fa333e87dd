"""``history.json``: every request received, with when, from whom and what came of it.

One in-memory list guarded by a lock, rewritten atomically on every change (docs/protocol.md §6). A damaged
file found at start is moved aside, reported, and a fresh history begun — never silently reset.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from rigcore.atomic import read_json_or_quarantine, write_json_atomic


class HistoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.warning: str | None = None
        data, warning = read_json_or_quarantine(path)
        self.warning = warning
        entries: list[dict[str, Any]] = []
        if isinstance(data, dict) and isinstance(data.get("requests"), list):
            entries = [e for e in data["requests"] if isinstance(e, dict)]
        elif isinstance(data, list):  # an older layout: a bare list of entries
            entries = [e for e in data if isinstance(e, dict)]
        elif data is not None:
            self.warning = f"{path.name} had an unexpected layout; kept its content under 'legacy'"
            entries = [{"id": "legacy", "legacy": data}]
        self._entries = entries
        self._index = {str(e.get("id")): i for i, e in enumerate(entries)}
        if warning or not path.exists():
            self._write()

    def _write(self) -> None:
        write_json_atomic(self.path, {"requests": self._entries})

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry_id = str(entry["id"])
            if entry_id in self._index:
                raise ValueError(f"history already has an entry {entry_id}")
            self._index[entry_id] = len(self._entries)
            self._entries.append(copy.deepcopy(entry))
            self._write()

    def update(self, entry_id: str, **fields: Any) -> None:
        with self._lock:
            idx = self._index.get(entry_id)
            if idx is None:
                raise KeyError(entry_id)
            self._entries[idx].update(copy.deepcopy(fields))
            self._write()

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            chosen = self._entries if limit is None else self._entries[-limit:]
            return copy.deepcopy(chosen)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        with self._lock:
            idx = self._index.get(entry_id)
            return copy.deepcopy(self._entries[idx]) if idx is not None else None
