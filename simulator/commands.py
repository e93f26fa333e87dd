"""Command execution shared by both transports (docs/protocol.md §3). No I/O: a command in, a status out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import PAN_RANGE_X100, TILT_RANGE_X100, ZOOM_STEP_RANGE, ZOOM_VALUE_RANGE, SimConfig
from .physics import Axis, MoveRejected, RigPhysics


@dataclass(frozen=True)
class CommandResult:
    """What the device answers: an HTTP-like status and a JSON-able body."""

    status_code: int
    response: dict[str, Any]


class _BadRequest(Exception):
    """Raised inside handlers; becomes a 400 with the message."""


def _error(status: int, message: str) -> CommandResult:
    return CommandResult(status, {"error": message})


def _int_arg(args: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = args.get(name)
    if name not in args:
        raise _BadRequest(f"missing argument {name!r}")
    # bool is an int subclass in Python; a JSON true is not a position.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _BadRequest(f"argument {name!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise _BadRequest(f"argument {name!r}={value} out of range {lo}..{hi}")
    return value


def _number_arg(args: dict[str, Any], name: str, lo: float, hi: float) -> float:
    value = args.get(name)
    if name not in args:
        raise _BadRequest(f"missing argument {name!r}")
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:  # NaN
        raise _BadRequest(f"argument {name!r} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise _BadRequest(f"argument {name!r}={value} out of range {lo}..{hi}")
    return float(value)


Handler = Callable[[str, dict[str, Any], float], CommandResult]


class CommandHandler:
    """Validates and executes commands against the rig's physics through a handler table."""

    def __init__(self, cfg: SimConfig, physics: RigPhysics) -> None:
        self._cfg = cfg
        self._physics = physics
        self._devices = set(cfg.device_ids())
        self._handlers: dict[str, Handler] = {
            "set_pan_position_degree": self._set_pan,
            "set_tilt_position_degree": self._set_tilt,
            "set_zoom_value": self._set_zoom_value,
            "set_zoom_step": self._set_zoom_step,
            "start_recording_command": self._start_recording,
            "get_state": self._get_state,
        }

    def handle(self, command: object, now: float) -> CommandResult:
        """Execute one command object; ``now`` is time.monotonic() at arrival."""
        if not isinstance(command, dict):
            return _error(400, "command must be a JSON object")
        device_id = command.get("device_id")
        command_id = command.get("command_id")
        args = command.get("args", {})
        if not isinstance(device_id, str) or not isinstance(command_id, str):
            return _error(400, "device_id and command_id must be strings")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return _error(400, "args must be an object")
        if device_id not in self._devices:
            return _error(404, f"unknown device {device_id!r}")
        handler = self._handlers.get(command_id)
        if handler is None:
            return _error(400, "unknown command")
        try:
            return handler(device_id, args, now)
        except _BadRequest as exc:
            return _error(400, str(exc))
        except MoveRejected as exc:
            return _error(429, str(exc))

    def state_of(self, device_id: str, now: float) -> dict[str, Any]:
        """Current state payload of a known device ({} for a camera without zoom)."""
        if device_id == self._cfg.pantilt_id:
            return dict(self._physics.pantilt_state(now, self._cfg.faults.never_settle))
        if device_id == self._cfg.lrf_id:
            return dict(self._physics.lrf_state(now))
        if device_id in self._physics.zooms:
            return self._physics.zoom_state(device_id, now)
        return {}

    def _move(self, axis: Axis, target: float, now: float, device_id: str, command_id: str) -> CommandResult:
        self._physics.move(axis, target, now)
        return CommandResult(
            200,
            {"result": "accepted", "device_id": device_id, "command_id": command_id, "target": target},
        )

    def _require(self, ok: bool, device_id: str, command_id: str) -> None:
        if not ok:
            raise _BadRequest(f"{command_id!r} is not a command of {device_id!r}")

    def _set_pan(self, device_id: str, args: dict[str, Any], now: float) -> CommandResult:
        self._require(device_id == self._cfg.pantilt_id, device_id, "set_pan_position_degree")
        target = _int_arg(args, "pan_position_deg_x100", *PAN_RANGE_X100)
        return self._move(self._physics.pan, target, now, device_id, "set_pan_position_degree")

    def _set_tilt(self, device_id: str, args: dict[str, Any], now: float) -> CommandResult:
        self._require(device_id == self._cfg.pantilt_id, device_id, "set_tilt_position_degree")
        target = _int_arg(args, "tilt_position_deg_x100", *TILT_RANGE_X100)
        return self._move(self._physics.tilt, target, now, device_id, "set_tilt_position_degree")

    def _set_zoom_value(self, device_id: str, args: dict[str, Any], now: float) -> CommandResult:
        ok = self._physics.zoom_style.get(device_id) == "value"
        self._require(ok, device_id, "set_zoom_value")
        target = _number_arg(args, "zoom_value", *ZOOM_VALUE_RANGE)
        return self._move(self._physics.zooms[device_id], target, now, device_id, "set_zoom_value")

    def _set_zoom_step(self, device_id: str, args: dict[str, Any], now: float) -> CommandResult:
        ok = self._physics.zoom_style.get(device_id) == "step"
        self._require(ok, device_id, "set_zoom_step")
        target = _int_arg(args, "zoom_step", *ZOOM_STEP_RANGE)
        return self._move(self._physics.zooms[device_id], target, now, device_id, "set_zoom_step")

    def _start_recording(self, device_id: str, args: dict[str, Any], now: float) -> CommandResult:
        # The rig only takes note; the service records the frames itself (docs/protocol.md §3).
        return CommandResult(200, {"result": "accepted", "device_id": device_id, "args": args})

    def _get_state(self, device_id: str, args: dict[str, Any], now: float) -> CommandResult:
        return CommandResult(200, self.state_of(device_id, now))
