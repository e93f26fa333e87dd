"""The path rules shared by config.json at start and ``PUT /config`` (rigcore.config_policy): where
``save_dir``, ``images_data_dir`` and ``history_file`` may point, and which of them would have the
service write or serve its own files. Plain paths and strings only: rigcore.config (the warnings at
start) and rigcore.config_policy (the refusals) both build on this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

DATA_DIRS = ("save_dir", "images_data_dir")
PATH_KEYS = (*DATA_DIRS, "history_file")

# (HTTP status, dotted key, what is wrong)
Problem = tuple[int, str, str]


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


def collisions(resolved: dict[str, Path], config_file: Path, in_force: list[Path]) -> list[tuple[str, str]]:
    """(key, why) for each way these paths would have the service overwrite or serve its own files."""
    out: list[tuple[str, str]] = []
    history = resolved["history_file"]
    if history == config_file:
        out.append(("history_file", "names config.json; the request history would overwrite it"))
    for key in DATA_DIRS:
        if inside(config_file, resolved[key]):
            out.append((key, "would contain config.json; the service writes into this folder and serves it"))
        if inside(history, resolved[key]):
            out.append(("history_file", f"is inside {key}, a folder the service writes into and serves"))
            out.append((key, "would contain history_file"))
    if any(inside(history, folder) for folder in in_force):
        out.append(("history_file", "is inside the save_dir or images_data_dir in force until the restart"))
    return out


def start_warnings(values: Mapping[str, str], storage_roots: Iterable[str], config_file: Path) -> list[str]:
    """What PUT /config would refuse in the operator's own config.json: logged at start, not fatal.
    ``values`` maps each of :data:`PATH_KEYS` to its setting."""
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
    if len(resolved) == len(PATH_KEYS):
        warnings += [f"{key}: {why}" for key, why in collisions(resolved, config_file, [])]
    return warnings
