"""A validated batch compiled into a plan of steps (pure: no I/O, unit-tested without a broker).

A batch is a list of commands run in order. The plan says what the runner does for each:

* :class:`SendStep` — deliver one command to the rig (a positioning command also names the device
  and field it moves, so the runner can date "the last move" of each device);
* :class:`SettleStep` — wait until a set of devices has settled toward its targets
  (docs/protocol.md §5). Before every recording: the pan-tilt and the zoom of every recorded camera
  that has one. After the last move of a batch that records nothing afterwards: the devices moved,
  so that the job can report where the rig came to rest;
* :class:`RecordStep` — record chosen cameras for a duration (and tell the rig a recording starts).

Targets accumulate through the batch: a recording after ``[pan 4500, record, tilt 0]`` still expects
pan 4500. *When* state starts to count for a settle is decided at run time (it depends on when the
commands were actually sent); the rule is in :mod:`service.jobs.batch_runner`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rigcore.rig import RigLayout


@dataclass(frozen=True)
class DeviceSettle:
    """One device to settle: each watched field with its target (None: only hold still)."""

    device_id: str
    targets: Mapping[str, float | None]
    tolerances: Mapping[str, float]


@dataclass(frozen=True)
class SendStep:
    index: int  # of the command in the batch
    command: Mapping[str, Any]
    moves: str | None = None  # the device a positioning command moves


@dataclass(frozen=True)
class SettleStep:
    index: int | None  # the recording this settle is for; None for the settle after the last move
    devices: tuple[DeviceSettle, ...]
    purpose: Literal["record", "final"] = "record"


@dataclass(frozen=True)
class RecordStep:
    index: int
    command: Mapping[str, Any]
    cameras: tuple[str, ...]
    duration_s: float


Step = SendStep | SettleStep | RecordStep


@dataclass(frozen=True)
class Plan:
    commands: tuple[Mapping[str, Any], ...]
    steps: tuple[Step, ...]
    recordings: int = field(default=0)

    def describe(self) -> list[str]:
        """One line per step, for logs and tests."""
        return [_describe(step) for step in self.steps]

    def record_steps(self) -> list[RecordStep]:
        """The steps that record, in order."""
        return [step for step in self.steps if isinstance(step, RecordStep)]


def compile_plan(commands: Sequence[Mapping[str, Any]], layout: RigLayout, recording_command: str) -> Plan:
    """Compile a batch's commands (already validated) into a plan."""
    steps: list[Step] = []
    targets: dict[str, dict[str, float]] = {}
    moved_since_record: list[str] = []
    recordings = 0
    for i, cmd in enumerate(commands):
        if cmd["command_id"] == recording_command:
            args = cmd["args"]
            cameras = tuple(args["camera_ids"])
            devices = [layout.pantilt_id, *(c for c in cameras if layout.reported_fields(c))]
            steps.append(SettleStep(i, tuple(_device_settle(d, layout, targets) for d in devices)))
            steps.append(RecordStep(i, cmd, cameras, float(args["duration_second"])))
            moved_since_record.clear()
            recordings += 1
            continue
        target = layout.target_of(cmd)
        if target is None:
            steps.append(SendStep(i, cmd))
            continue
        device, fld, value = target
        targets.setdefault(device, {})[fld] = value
        if device not in moved_since_record:
            moved_since_record.append(device)
        steps.append(SendStep(i, cmd, moves=device))
    if moved_since_record:
        final = tuple(_device_settle(d, layout, targets) for d in moved_since_record)
        steps.append(SettleStep(None, final, purpose="final"))
    return Plan(tuple(commands), tuple(steps), recordings)


def _device_settle(
    device: str, layout: RigLayout, targets: Mapping[str, Mapping[str, float]]
) -> DeviceSettle:
    fields = layout.reported_fields(device)
    wanted: dict[str, float | None] = dict.fromkeys(fields)
    wanted.update(targets.get(device, {}))
    return DeviceSettle(device, wanted, {f: layout.tolerance(f) for f in wanted})


def _describe(step: Step) -> str:
    if isinstance(step, SendStep):
        moves = f" (moves {step.moves})" if step.moves else ""
        return f"send #{step.index} {step.command['command_id']} to {step.command['device_id']}{moves}"
    if isinstance(step, SettleStep):
        devices = ", ".join(
            d.device_id + "".join(f" {k}={v}" for k, v in d.targets.items() if v is not None)
            for d in step.devices
        )
        return f"settle ({step.purpose}) {devices}"
    return f"record #{step.index} {step.duration_s:g} s of {', '.join(step.cameras)}"
