"""One JSON file holding one typed document (a pydantic model), written atomically.

The owner of a small state file (presets.json, schedules.json) keeps its items in memory and calls
:meth:`JsonStore.save` with the whole document under :attr:`JsonStore.lock` before it changes
memory: if the file cannot be written, nothing changes. :meth:`JsonStore.load` reads the file once at
start; a file that does not parse, or parses but does not fit the model, is moved aside and
:attr:`JsonStore.warning` says where (rigcore.atomic), never silently reset.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from rigcore.atomic import read_json_or_quarantine, set_aside, write_json_atomic

Model = TypeVar("Model", bound=BaseModel)


class JsonStore(Generic[Model]):
    def __init__(self, path: Path, model: type[Model]) -> None:
        self.path = path
        self.model = model
        self.lock = threading.Lock()  # held by the owner around read-modify-save
        self.warning: str | None = None  # set by load() when the file was damaged and moved aside

    def load(self) -> Model | None:
        """The document on disk; None when there is none or it was damaged (then ``warning`` says so)."""
        data, self.warning = read_json_or_quarantine(self.path)
        if data is None:
            return None
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            self.warning = set_aside(self.path, f"{exc.error_count()} invalid values")
            return None

    def save(self, document: Model) -> None:
        """Write the whole document atomically (the old file or the new one, never half)."""
        write_json_atomic(self.path, document.model_dump(mode="json"))


class FileBacked(Generic[Model]):
    """Base of a store kept in one :class:`JsonStore` file: loads it at start, says where it is and
    whether it was set aside. Subclasses build their in-memory items from :attr:`loaded`."""

    def __init__(self, path: Path, model: type[Model]) -> None:
        self._file = JsonStore(path, model)
        self.loaded: Model | None = self._file.load()

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def warning(self) -> str | None:
        """Why the file was set aside at start (damaged), or None."""
        return self._file.warning
