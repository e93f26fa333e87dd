"""The path rules shared by config.json at start and ``PUT /config`` (rigcore.config_policy): where
``save_dir``, ``images_data_dir`` and ``history_file`` may point, and the one list of the files and
folders the service owns (:func:`owned_files`) that none of them may name, enter or hold, with the
folders served without the token (:data:`OPEN_FOLDERS`). Plain paths and strings only: rigcore.config
(the checks at start) and rigcore.config_policy (the refusals) both build on this module, and the
stores take their fixed names from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIRS = ("save_dir", "images_data_dir")
PATH_KEYS = (*DATA_DIRS, "history_file")

# (HTTP status, dotted key, what is wrong)
Problem = tuple[int, str, str]

# -- what the service owns: the one list -----------------------------------------------------------
# Beside config.json (beside the service's base folder when it runs without one).
PRESETS_FILE = "presets.json"  # service.presets.store
SCHEDULES_FILE = "schedules.json"  # service.schedules.rules
# Beside history_file (service.history.store): "<stem>.journal.jsonl", and the archives in "<stem>/"
# ("<name>.archive/" for a name without a suffix).
HISTORY_JOURNAL_SUFFIX = ".journal.jsonl"
# Under images_data_dir: the session catalog (sessions.catalog_db) and SQLite's files beside it, and
# the folders of the upload queue (sessions.upload_queue), the scans (sessions.scan_manifest) and the
# frames spilled while recording (rigcore.config.ResolvedPaths.spill_dir).
CATALOG_FILE = "catalog.sqlite"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
UPLOADS_DIR = "uploads"
SCANS_DIR = "scans"
SPILL_DIR = "spill"
IMAGES_DATA_FOLDERS = {
    UPLOADS_DIR: "the upload queue and its journals",
    SCANS_DIR: "the scan manifests",
    SPILL_DIR: "the frames spilled while recording",
}
# Folders whose files are answered without the token (api: Flask's static folder, at /static/, and
# the templates its pages are rendered from). tests/test_owned_files.py checks the app serves no other.
PROJECT_DIR = Path(__file__).resolve().parent.parent
OPEN_FOLDERS = (PROJECT_DIR / "api" / "static", PROJECT_DIR / "api" / "templates")


@dataclass(frozen=True)
class Owned:
    """A file or folder the service writes: ``store`` is the setting (one of :data:`PATH_KEYS`) or the
    fixed file it belongs to; ``main`` marks the path the setting names itself."""

    path: Path
    what: str
    store: str
    folder: bool = False
    main: bool = False


def history_journal(history_file: Path) -> Path:
    return history_file.with_name(f"{history_file.stem}{HISTORY_JOURNAL_SUFFIX}")


def history_archive_dir(history_file: Path) -> Path:
    name = history_file.stem if history_file.suffix else f"{history_file.name}.archive"
    return history_file.with_name(name)


def owned_files(config_file: Path, paths: Mapping[str, Path]) -> list[Owned]:
    """Every file and folder the service writes at a fixed name, for config.json at ``config_file``
    and ``paths`` (each of :data:`PATH_KEYS`, resolved)."""
    beside = config_file.parent
    history, images = paths["history_file"], paths["images_data_dir"]
    out = [
        Owned(config_file, f"{config_file.name} (the configuration)", "config.json"),
        Owned(beside / PRESETS_FILE, f"{PRESETS_FILE} (the presets)", "presets"),
        Owned(beside / SCHEDULES_FILE, f"{SCHEDULES_FILE} (the schedules)", "schedules"),
        Owned(history, "history_file (the request history)", "history_file", main=True),
        Owned(history_journal(history), "the journal of history_file", "history_file"),
        Owned(history_archive_dir(history), "the archives of history_file", "history_file", folder=True),
        Owned(paths["save_dir"], "save_dir (the sessions)", "save_dir", folder=True, main=True),
        Owned(images, "images_data_dir", "images_data_dir", folder=True, main=True),
        Owned(images / CATALOG_FILE, f"the session catalog ({CATALOG_FILE})", "images_data_dir"),
    ]
    out += [
        Owned(images / f"{CATALOG_FILE}{end}", "a file of the session catalog", "images_data_dir")
        for end in SQLITE_COMPANIONS
    ]
    out += [
        Owned(images / name, what, "images_data_dir", folder=True)
        for name, what in IMAGES_DATA_FOLDERS.items()
    ]
    return out


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value)
    return (path if path.is_absolute() else base / path).resolve()


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def allowed_roots(storage_roots: Iterable[str], config_file: Path) -> list[Path]:
    """The folder of config.json and each usable storage_roots folder, resolved."""
    roots = [config_file.parent]
    for root in storage_roots:
        try:
            roots.append(resolve_path(root, config_file.parent))
        except (OSError, RuntimeError, ValueError):
            continue  # reported at start by start_warnings; an unusable root admits nothing
    return roots


def resolved_paths(values: Mapping[str, str], base: Path) -> tuple[dict[str, Path], list[Problem]]:
    """``values`` (each of :data:`PATH_KEYS` to its setting) resolved from ``base``."""
    resolved: dict[str, Path] = {}
    problems: list[Problem] = []
    for key in PATH_KEYS:
        try:
            resolved[key] = resolve_path(values[key], base)
        except (OSError, RuntimeError, ValueError) as exc:  # a NUL byte, a symlink loop
            problems.append((400, key, f"not a usable path: {exc}"))
    return resolved, problems


def clashes(
    resolved: Mapping[str, Path], config_file: Path, in_force: Mapping[str, Path] | None = None
) -> list[tuple[str, str]]:
    """(key, why) for each way these paths would have the service write where it must not: a path
    (or its history's journal and archives) that names a file another store owns, lies inside a
    folder another store owns or one served without the token, or would hold one of those.
    ``in_force``: the paths written to until the next start, owned too (but a setting's own folder
    in force, which it may move under)."""
    fresh = owned_files(config_file, resolved)
    old = owned_files(config_file, in_force) if in_force is not None else []
    out: list[tuple[str, str]] = []
    for key in PATH_KEYS:
        others = [o for o in fresh if o.store != key]
        others += [_in_force(o) for o in old if not (o.store == key and o.main)]
        for mine in (o for o in fresh if o.store == key):
            out += [(key, why) for other in others if (why := _clash(mine, other)) is not None]
            out += [(key, why) for folder in OPEN_FOLDERS if (why := _served(mine, folder)) is not None]
    return list(dict.fromkeys(out))  # each (key, why) once, in order


def _in_force(owned: Owned) -> Owned:
    return Owned(owned.path, f"{owned.what} in force until the restart", owned.store, owned.folder)


def _clash(mine: Owned, other: Owned) -> str | None:
    whose = "" if mine.main else f"{mine.what}: "
    if mine.path == other.path:
        return f"{whose}names {other.what}; two stores would overwrite each other"
    if other.folder and inside(mine.path, other.path):
        return f"{whose}lies inside {other.what}, a folder the service writes itself"
    if mine.folder and inside(other.path, mine.path):
        return f"{whose}would hold {other.what}; the service writes into this folder"
    return None


def _served(mine: Owned, folder: Path) -> str | None:
    whose = "" if mine.main else f"{mine.what}: "
    where = f"{folder}, a folder served without the token (/static/ and the dashboard)"
    if inside(mine.path, folder):
        return f"{whose}lies inside {where}"
    if mine.folder and inside(folder, mine.path):
        return f"{whose}would hold {where}"
    return None


def start_problems(values: Mapping[str, str], config_file: Path) -> list[str]:
    """What stops the start: the paths of the operator's config.json clash with a file the service
    owns, with each other, or with a folder served without the token (:func:`clashes`). Refused, not
    warned, because the harm is done at once and cannot be undone: the stores overwrite each other,
    or the history and the frames are readable by anyone who can reach the service."""
    resolved, problems = resolved_paths(values, config_file.parent)
    if problems:
        return []  # an unusable path: start_warnings names it, and the store's open fails on it
    return [f"{key}: {why}" for key, why in clashes(resolved, config_file)]


def start_warnings(values: Mapping[str, str], storage_roots: Iterable[str], config_file: Path) -> list[str]:
    """What PUT /config would refuse in the operator's own config.json but the start accepts: logged,
    not fatal. ``values`` maps each of :data:`PATH_KEYS` to its setting."""
    storage_roots = tuple(storage_roots)
    resolved, problems = resolved_paths(values, config_file.parent)
    warnings = [f"{key}: {message}" for _, key, message in problems]
    warnings += [
        f"storage_roots: {root!r} is not a usable path; ignored" for root in storage_roots if "\0" in root
    ]
    roots = allowed_roots(storage_roots, config_file)
    for key, path in resolved.items():
        if not any(inside(path, root) for root in roots):
            warnings.append(f"{key}: {path} is outside the folder of config.json and storage_roots")
    return warnings
