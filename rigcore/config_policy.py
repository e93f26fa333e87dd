"""What ``PUT /config`` may change: the pure rules. ``service.config_reloader.ConfigReloader.update``
applies them.

- The body is a patch merged into the configuration in force (:func:`merge_patch`): objects merge key
  by key, lists and scalars replace, ``null`` sets null where the model allows it and removes an
  entry of ``cameras`` or ``positioning_commands``. The result is validated like config.json at
  start (unknown key or wrong type: 400 naming the dotted key).
- A value sent back as ``GET /config`` shows it (``***``, a URL with ``***`` for its credentials)
  means "unchanged" (:func:`restore_redacted`).
- Keys that widen access (:data:`FILE_ONLY_KEYS`) change only in config.json itself: 403.
- A stored credential is not carried to a new destination (``mqtt.password`` to another broker): 403.
- ``save_dir``, ``images_data_dir`` and ``history_file`` stay inside the folder of config.json or a
  ``storage_roots`` folder, and never name, enter or hold a file or folder the service owns (the one
  list: :func:`rigcore.config_paths.owned_files`) or a folder served without the token
  (:data:`rigcore.config_paths.OPEN_FOLDERS`): 403 (400 when not a path).

At start the operator's config.json is taken as written as to where the paths lie (outside the
folders: a warning, :func:`rigcore.config_paths.start_warnings`), but paths that clash with an owned
file or a served folder stop the start (:func:`rigcore.config_paths.start_problems`, Config.load).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rigcore.checks import clip
from rigcore.config import REDACTED, Config, ResolvedPaths, validation_details
from rigcore.config_limits import changed_numbers, over_limits
from rigcore.config_paths import (
    PATH_KEYS,
    Problem,
    allowed_roots,
    clashes,
    inside,
    resolved_paths,
)
from rigcore.config_tls import TLS_FILE_KEYS

# Keys that decide who may reach the service, and from where, or where it may write: a caller of
# the API must not be able to widen its own access. (api.allowed_hosts: the DNS-rebinding guard.)
# storage.remote: where sessions are copied to, and its credentials.
# foxglove.allow_unauthenticated: the live Foxglove server beyond loopback while api.token is set.
# catalog.url, node.url: where this node writes the fleet's catalog (with its password), and the
# address other nodes send people to (rigcore.config_fleet).
FILE_ONLY_KEYS = (
    "api.token",
    "api.host",
    "api.port",
    "api.allowed_hosts",
    "storage_roots",
    "storage.remote",
    "foxglove.allow_unauthenticated",
    "catalog.url",
    "node.url",
    *TLS_FILE_KEYS,  # the served key and certificate, and whom MQTT and the streams trust
)
# Objects keyed by the operator's names: there ``null`` removes the entry.
MAP_KEYS = frozenset({"cameras", "positioning_commands"})
# A stored credential goes only where it went before; moving it needs the credential sent in full.
CREDENTIAL_DESTINATIONS = {"mqtt.password": ("mqtt.host", "mqtt.port")}
# Keys whose value GET /config may show redacted (list indices left out: streams.url).
REDACTABLE_KEYS = frozenset(
    {
        "api.token",
        "mqtt.password",
        "invoke_url",
        "streams.url",
        "storage.remote.access_key",
        "storage.remote.secret_key",
        "catalog.url",
        "node.url",
    }
)
# Keys of ``storage`` in force from the next job on (the others need a restart).
STORAGE_LIVE_KEYS = frozenset({"min_free_mb"})

Detail = dict[str, str]


class ConfigRefused(Exception):
    """PUT /config refused, nothing saved: ``status`` 400 (malformed), 403 (not allowed over the
    API) or 409 (config.json on disk does not load); ``details`` name each key."""

    def __init__(self, status: int, message: str, details: list[Detail] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


@dataclass(frozen=True)
class Place:
    """Where config.json is, what relative paths start from, and the paths in force (written to
    until the next start, whatever config.json says by then)."""

    config_file: Path
    base_dir: Path
    in_force: ResolvedPaths
    # Files the service keeps beside history_file; unused: rigcore.config_paths.owned_files derives
    # them (and every other owned file) from in_force. Kept for callers that still pass them.
    owned: tuple[Path, ...] = ()


def plan_change(current: Config, patch: Any, place: Place) -> Config:
    """The configuration ``patch`` makes of ``current``, or ConfigRefused saying why not."""
    if not isinstance(patch, dict):
        raise ConfigRefused(
            400, f"the configuration must be a JSON object, got {type(patch).__name__}; nothing saved"
        )
    restored = restore_redacted(patch, current)
    new = _validated(merge_patch(current.to_json(), restored))
    problems = [
        *file_only_changes(current, new),
        *moved_credentials(current, new, patch),
        *path_problems(current, new, place),
        *limit_problems(current, new),
    ]
    if problems:
        # Any key the API may not change makes it 403; only malformed values make it 400.
        status = 403 if any(p[0] == 403 for p in problems) else 400
        details = [{"field": key, "message": message} for _, key, message in problems]
        raise _refusal(status, "refused" if status == 403 else "invalid configuration", details)
    return new


def limit_problems(current: Config, new: Config) -> list[Problem]:
    """Numbers the change sets beyond their bound (rigcore.config_limits); unchanged ones stay."""
    old_data, new_data = current.to_json(), new.to_json()
    changed = changed_numbers(old_data, new_data)
    return [(400, key, message) for key, message in over_limits(new_data, changed)]


def merge_patch(base: dict[str, Any], patch: dict[str, Any], path: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if value is None and path in MAP_KEYS:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value, f"{path}.{key}" if path else key)
        else:
            out[key] = value
    return out


def restore_redacted(patch: dict[str, Any], current: Config) -> dict[str, Any]:
    """``patch`` with each value shown redacted by GET /config put back as it is in force."""
    kept: dict[tuple[str, str], str | None] = {}
    _redactions(current.to_json(), current.to_json(redact=True), "", kept)
    problems: list[Detail] = []
    restored = _restore(patch, "", "", kept, problems)
    if problems:
        raise _refusal(400, "invalid configuration", problems)
    out: dict[str, Any] = restored
    return out


def _redactions(full: Any, shown: Any, path: str, kept: dict[tuple[str, str], str | None]) -> None:
    """Map (key, shown value) → value in force for every value GET /config redacts; None where two
    different values look the same redacted (then neither is guessed)."""
    if isinstance(full, dict) and isinstance(shown, dict):
        for key, value in full.items():
            _redactions(value, shown.get(key), f"{path}.{key}" if path else key, kept)
    elif isinstance(full, list) and isinstance(shown, list):
        for value, seen in zip(full, shown, strict=True):
            _redactions(value, seen, path, kept)
    elif isinstance(full, str) and isinstance(shown, str) and full != shown:
        kept[(path, shown)] = full if kept.get((path, shown), full) == full else None


def _restore(
    value: Any, path: str, where: str, kept: dict[tuple[str, str], str | None], problems: list[Detail]
) -> Any:
    if isinstance(value, dict):
        return {
            k: _restore(v, f"{path}.{k}" if path else k, f"{where}.{k}" if where else k, kept, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_restore(v, path, f"{where}.{i}", kept, problems) for i, v in enumerate(value)]
    if isinstance(value, str):
        original = kept.get((path, value))
        if original is not None:
            return original
        if path in REDACTABLE_KEYS and REDACTED in value:
            problems.append(
                {
                    "field": where,
                    "message": f"{REDACTED!r} stands for a value GET /config hides, and this is not one "
                    "in force here (same key, same URL); send the value in full",
                }
            )
    return value


def _validated(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # The dotted key may hold a client's key of any size: clipped, as every echo (rigcore.checks).
        details = [{**d, "field": clip(d["field"])} for d in validation_details(exc)]
        raise _refusal(400, "invalid configuration", details) from exc


def _refusal(status: int, what: str, details: list[Detail]) -> ConfigRefused:
    text = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return ConfigRefused(status, f"{what}: {text}; nothing saved", details)


def _lookup(data: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def file_only_changes(current: Config, new: Config) -> list[Problem]:
    old, fresh = current.to_json(), new.to_json()
    return [
        (403, key, "can be changed only in config.json itself, not over the API")
        for key in FILE_ONLY_KEYS
        if _lookup(old, key) != _lookup(fresh, key)
    ]


def moved_credentials(current: Config, new: Config, patch: dict[str, Any]) -> list[Problem]:
    old, fresh = current.to_json(), new.to_json()
    problems: list[Problem] = []
    for secret, destination in CREDENTIAL_DESTINATIONS.items():
        stored = _lookup(old, secret)[1]
        sent = _lookup(patch, secret)[1]
        moved = [key for key in destination if _lookup(old, key) != _lookup(fresh, key)]
        if stored and _lookup(fresh, secret)[1] == stored and moved and sent in (None, REDACTED):
            problems.append(
                (
                    403,
                    secret,
                    f"the stored value is not sent to a new {' / '.join(moved)}: send {secret} in full "
                    "with the change, or make it in config.json",
                )
            )
    return problems


def _path_values(config: Config) -> dict[str, str]:
    return {key: getattr(config, key) for key in PATH_KEYS}


def path_problems(current: Config, new: Config, place: Place) -> list[Problem]:
    """save_dir, images_data_dir, history_file: those that change must stay inside the allowed
    folders, and together they must not make the service write or serve its own files."""
    changed = [key for key in PATH_KEYS if getattr(current, key) != getattr(new, key)]
    if not changed:
        return []
    resolved, problems = resolved_paths(_path_values(new), place.base_dir)
    if problems:
        return problems
    roots = allowed_roots(new.storage_roots, place.config_file)
    for key in changed:
        if not any(inside(resolved[key], root) for root in roots):
            problems.append(
                (
                    403,
                    key,
                    f"{resolved[key]} is outside the folder of config.json ({place.config_file.parent}) and "
                    "every storage_roots folder; set it in config.json itself",
                )
            )
    if problems:
        return problems
    # The one list of owned files (rigcore.config_paths.owned_files), for the new paths and those in force.
    in_force = {key: getattr(place.in_force, key).resolve() for key in PATH_KEYS}
    problems += [(403, k, m) for k, m in clashes(resolved, place.config_file, in_force) if k in changed]
    if "history_file" in changed:
        problems += _not_a_history_file(resolved["history_file"])
    return problems


def _not_a_history_file(path: Path) -> list[Problem]:
    """An existing file is taken as history_file only if it is one: at the next start the service
    would rewrite (or, unparsable, move aside) whatever file it names."""
    if path.is_dir():
        return [(400, "history_file", f"{path} is a folder, not a file")]
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, list) or (isinstance(data, dict) and isinstance(data.get("requests"), list)):
        return []
    why = f"{path} exists and is not a request history; the service would overwrite it"
    return [(403, "history_file", why)]


def read_file_only(config_file: Path) -> dict[str, Any]:
    """The file-only keys as config.json on disk has them (defaults filled in), or 409: a PUT never
    overwrites a config.json that does not load (the operator may be editing it)."""
    try:
        on_disk = Config.model_validate(json.loads(config_file.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        raise ConfigRefused(
            409, f"{config_file.name} on disk does not load ({exc}); fix it first; nothing saved"
        ) from exc
    data = on_disk.to_json()
    return {key: value for key in FILE_ONLY_KEYS for found, value in [_lookup(data, key)] if found}


def with_file_only(data: dict[str, Any], file_only: dict[str, Any]) -> dict[str, Any]:
    """``data`` to write, its file-only keys as on disk: config.json owns them, so neither a
    ``--host``/``--port`` given at start nor the value in force overwrites an edit made there."""
    for dotted, value in file_only.items():
        *parents, last = dotted.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[last] = value
    return data


def change_report(old: Config, new: Config) -> dict[str, list[str]]:
    """Which top-level keys change, and which of them need a restart to take effect."""
    old_data, new_data = old.to_json(), new.to_json()
    changed = sorted(k for k in new_data if new_data[k] != old_data.get(k))
    live = {
        "command_transport",
        "invoke_url",
        "http",
        "positioning_commands",
        "settle",
        "recording",
        "extra_devices",
        "foxglove",  # the live server restarts with it (service.live), nothing else does
        "events",  # the ring resizes, re-arms or disarms at once (service.events.desk)
    }
    restart = [k for k in changed if k not in live and k not in ("api", "storage")]
    if "api" in changed:
        api_changed = {k for k in new_data["api"] if new_data["api"][k] != old_data["api"].get(k)}
        restart += [f"api.{k}" for k in sorted(api_changed)]
    if "storage" in changed:
        # storage.min_free_mb is read by each recording (service.disk_guard); other keys need a restart.
        old_storage = old_data.get("storage", {})
        storage_changed = {k for k in new_data["storage"] if new_data["storage"][k] != old_storage.get(k)}
        restart += [f"storage.{k}" for k in sorted(storage_changed) if k not in STORAGE_LIVE_KEYS]
    # The writer threads are made once, at start.
    for key in ("writer_threads", "catchup_threads"):
        if new_data["recording"].get(key) != old_data["recording"].get(key):
            restart.append(f"recording.{key}")
    # cameras.<id>.display is read by each preview, thumbnail and live view: no restart for it alone.
    if "cameras" in restart and _without_display(old_data["cameras"]) == _without_display(
        new_data["cameras"]
    ):
        restart.remove("cameras")
    return {"changed": changed, "restart_required": restart}


def _without_display(cameras: dict[str, Any]) -> dict[str, Any]:
    return {cam: {k: v for k, v in spec.items() if k != "display"} for cam, spec in cameras.items()}
