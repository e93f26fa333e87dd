"""What a job runs: a batch or a scan, one tagged type (``kind``) from submission to the runner.

POST /process-request(s) submit a :class:`BatchWork` (a compiled plan), POST /scans and its resume a
:class:`ScanWork` (a scan run, one batch per pose); a schedule submits either. The service dispatches
on ``kind`` through a table (service.capture); the disk check and the wait of a waiting POST read the
recordings and the worst case of each kind here (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rigcore.config import Config
from rigcore.rig import RigLayout
from service.batches.plan import Plan, compile_plan
from service.disk_guard import PlannedRecording
from service.scans.run import ScanRun
from service.scans.spec import scan_batch

WorkKind = Literal["batch", "scan"]
NO_PLAN = Plan(commands=(), steps=())  # a scan job's plan until its first pose runs


@dataclass(frozen=True)
class BatchWork:
    plan: Plan
    kind: Literal["batch"] = "batch"

    def recordings(self) -> list[PlannedRecording]:
        return [PlannedRecording(s.cameras, s.duration_s) for s in self.plan.record_steps()]

    def worst_case(self, config: Config, layout: RigLayout) -> float:
        return worst_case(self.plan, config)


@dataclass(frozen=True)
class ScanWork:
    run: ScanRun
    kind: Literal["scan"] = "scan"

    def recordings(self) -> list[PlannedRecording]:
        """One recording per pose."""
        spec = self.run.spec
        return [PlannedRecording(spec.cameras, spec.duration_s) for _ in spec.poses]

    def worst_case(self, config: Config, layout: RigLayout) -> float:
        """Every attempt at every pose taking its batch's worst case."""
        spec, command = self.run.spec, config.recording.command_id
        poses = sum(
            worst_case(compile_plan(scan_batch(spec, pose, layout, command), layout, command), config)
            for pose in spec.poses
        )
        return poses * (spec.retries + 1)


Work = BatchWork | ScanWork


def worst_case(plan: Plan, config: Config) -> float:
    """Each command's timeouts, each settle, each recording and its saving."""
    per_command = config.http.connect_timeout_s + config.http.read_timeout_s + config.mqtt.response_timeout_s
    recordings = sum(config.settle.timeout_s + step.duration_s * 3 for step in plan.record_steps())
    return per_command * len(plan.commands) + recordings + config.settle.timeout_s
