"""The configuration in force, and ``PUT /config``: merge, check (rigcore.config_policy, then the
checks the service's parts add: :meth:`ConfigReloader.add_check`), save to config.json atomically,
then put the new configuration in force from the next job.

config.json's mode: 0600 when it holds a secret (``api.token``, ``mqtt.password``, the object store's
keys, a password in a URL: whatever GET /config shows as ``***``), else the mode it had (a new file:
the umask's). Each change is logged: the keys changed, those that need a restart.
"""

from __future__ import annotations

import logging
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rigcore.atomic import PRIVATE, write_json_atomic
from rigcore.config import Config, ResolvedPaths
from rigcore.config_policy import Place, change_report, plan_change, read_file_only, with_file_only
from rigcore.rig import RigLayout

log = logging.getLogger("rigcapture.config")


# A part's veto on a new configuration (merged and validated, not yet saved): raises ConfigRefused.
ConfigCheck = Callable[[Config], None]


@dataclass(frozen=True)
class InForce:
    config: Config
    layout: RigLayout


class ConfigReloader:
    # One PUT /config at a time (read, merge, check, write, apply as one step), so that concurrent
    # calls cannot interleave and leave config.json and the configuration in force disagreeing. On
    # the class so that it needs nothing from __init__; services sharing a process share it, harmlessly.
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        base_dir: Path,
        paths: ResolvedPaths,
        owned: tuple[Path, ...],  # files the service keeps beside history_file (journal, archives)
    ) -> None:
        self._in_force = InForce(config, RigLayout.from_config(config))
        self.config_path = config_path
        self._base_dir = base_dir
        self._paths = paths
        self._owned = owned
        self._listeners: list[Callable[[InForce], None]] = []
        self._checks: list[ConfigCheck] = []

    def add_check(self, check: ConfigCheck) -> None:
        """Call ``check`` with each configuration PUT /config would put in force, merged and checked by
        rigcore.config_policy, before it is saved (under the lock, in order): it refuses it by raising
        ConfigRefused (the event ring that would not fit the memory cap at the rates measured now)."""
        self._checks.append(check)

    def on_change(self, listener: Callable[[InForce], None]) -> None:
        """Call ``listener`` with each new configuration put in force (under the lock, in order)."""
        self._listeners.append(listener)

    @property
    def config(self) -> Config:
        """The configuration in force (replaced whole by PUT /config)."""
        return self._in_force.config

    def in_force(self) -> InForce:
        """The configuration and its rig layout, as one consistent pair."""
        return self._in_force

    def update(self, patch: Any) -> dict[str, list[str]]:
        """Merge ``patch`` into the configuration in force and check it (rigcore.config_policy, then
        each check added), save it to config.json atomically, then apply it from the next job.

        Raises ConfigRefused (nothing saved). Returns which top-level keys changed and which need a
        restart to take effect.
        """
        if self.config_path is None:
            raise RuntimeError("the service was started without a config file")
        with self._lock:
            place = Place(self.config_path.resolve(), self._base_dir, self._paths, self._owned)
            new = plan_change(self.config, patch, place)
            for check in self._checks:
                check(new)
            file_only = read_file_only(self.config_path)
            report = change_report(self.config, new)
            mode = config_file_mode(new, self.config_path)
            write_json_atomic(self.config_path, with_file_only(new.to_json(), file_only), mode=mode)
            in_force = InForce(new, RigLayout.from_config(new))
            self._in_force = in_force  # one reference: readers never see a new config with an old layout
            for listener in self._listeners:
                listener(in_force)
        changed, restart = report["changed"], report["restart_required"]
        log.info(
            "config saved to %s: %s%s",
            self.config_path,
            f"{', '.join(changed)} changed" if changed else "nothing changed",
            f"; a restart is needed for {', '.join(restart)}" if restart else "",
            extra={"event": "config_changed", "changed": changed, "restart_required": restart},
        )
        return report


def holds_secret(config: Config) -> bool:
    """The configuration holds a token, a password or a key (GET /config would show ``***``)."""
    return config.to_json(redact=True) != config.to_json()


def config_file_mode(config: Config, path: Path) -> int | None:
    """The mode config.json is written with: 0600 when it holds a secret, else the mode it has now
    (None: a new file gets the umask's)."""
    if holds_secret(config):
        return PRIVATE
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
