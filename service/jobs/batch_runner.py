"""Running a job: the steps of its plan, one short function per kind of step, looked up in a table.

The runner keeps one :class:`RunState` per job: when the batch started, when each device was last
sent a positioning command, the latest settle point, and when the previous recording ended. The rules
that make every recording whole live here (docs/protocol.md §5):

* a settle counts only state received after the latest of: the last positioning command to that
  device, the batch start, the previous recording's end;
* a recording starts at the latest of: its settle point, the previous recording's end, the oldest
  moment the frame pre-roll still holds completely — and then lasts its full duration.

A failed command stops the batch: the commands after it are ``skipped``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mqtt_control.hub import SettleSpec
from rigcore.errors import JobCancelled, RigError
from rigcore.state import SettleTracker, is_number
from service.batches.plan import DeviceSettle, RecordStep, SendStep, SettleStep, Step
from service.jobs.context import RunContext
from service.jobs.job import BatchStopped, Job
from service.jobs.record_step import Recording
from service.status import JobPhase, JobStatus

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """What the steps of one job tell each other (monotonic times)."""

    batch_start: float
    last_sent: dict[str, float] = field(default_factory=dict)  # device -> last positioning command
    settle_point: float | None = None  # of the latest settle step, until a recording uses it
    settle_proof: dict[str, Any] | None = None  # what proved it (rigcore.state.SettleTracker.proof)
    last_record_end: float = -math.inf
    recorded_proof: dict[str, Any] | None = None  # the settle proof of the latest recording (scans)

    def counts_from(self, device_id: str) -> float:
        """State of ``device_id`` counts for a settle only if received at or after this time."""
        return max(self.last_sent.get(device_id, self.batch_start), self.batch_start, self.last_record_end)


def recording_start(settle_point: float, previous_end: float, preroll_horizon: float) -> float:
    """When a recording starts (monotonic): never before its settle point, never before the previous
    recording's end, and strictly after the newest frame the pre-roll has let go of (frames before
    that are gone, so a window starting there could not be whole). It then lasts its full duration."""
    return max(settle_point, previous_end, math.nextafter(preroll_horizon, math.inf))


class JobRunner:
    """Runs one job against the rig (event-loop side)."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._handlers: dict[type[Any], Callable[[Job, Any, RunState], Awaitable[None]]] = {
            SendStep: self._send,
            SettleStep: self._settle,
            RecordStep: self._record,
        }

    async def run(self, job: Job) -> None:
        ctx = self._ctx
        job.start()
        ctx.on_change(job)
        state = RunState(batch_start=time.monotonic())
        try:
            await self._run_steps(job, state)
        finally:
            ctx.router.want_full_rate(job.id, False)
            ctx.on_change(job)

    async def run_steps(self, job: Job, steps: Sequence[Step], state: RunState) -> None:
        """Run ``steps`` in order; raise what stops them (the job is not finished here)."""
        for step in steps:
            job.raise_if_cancelled()
            # Full rate for every step (idempotent): a recording lets go of it while it saves.
            self._ctx.router.want_full_rate(job.id, True)
            await self._handlers[type(step)](job, step, state)

    async def _run_steps(self, job: Job, state: RunState) -> None:
        try:
            await self.run_steps(job, job.plan.steps, state)
        except BatchStopped as exc:
            job.finish(JobStatus.FAILED, exc.error)
        except JobCancelled as exc:
            job.finish(JobStatus.CANCELLED, exc.to_dict())
        except RigError as exc:
            job.fail_current(str(exc))
            job.finish(JobStatus.FAILED, exc.to_dict())
        except Exception as exc:  # a bug must still leave a true record behind
            log.exception("job %s crashed", job.id)
            job.fail_current(f"internal error: {exc}")
            job.finish(JobStatus.FAILED, {"type": type(exc).__name__, "message": f"internal error: {exc}"})
        else:
            job.finish(JobStatus.SUCCEEDED)

    def _set_phase(self, job: Job, phase: JobPhase) -> None:
        if job.phase != phase:
            job.phase = phase
            self._ctx.on_change(job)

    # -- steps ---------------------------------------------------------------------------------------
    async def _send(self, job: Job, step: SendStep, state: RunState) -> None:
        self._set_phase(job, JobPhase.COMMANDING)
        outcome = await self._ctx.send(step.command)
        job.record_result(step.index, outcome.to_result(dict(step.command)))
        self._ctx.on_change(job)
        if not outcome.ok:
            cmd = step.command
            raise BatchStopped(
                {
                    "type": "CommandFailed",
                    "message": f"command {step.index} ({cmd['command_id']} to {cmd['device_id']}) "
                    f"failed: {outcome.error}",
                    "index": step.index,
                }
            )
        if step.moves is not None:
            state.last_sent[step.moves] = outcome.sent_mono

    async def _settle(self, job: Job, step: SettleStep, state: RunState) -> None:
        self._set_phase(job, JobPhase.SETTLING)
        specs = [self._spec(device, state) for device in step.devices]
        trackers = await self._wait_settled(job, specs)
        settled = [t.settled_mono for t in trackers.values() if t.settled_mono is not None]
        state.settle_point = max(settled) if settled else time.monotonic()
        state.settle_proof = self._proof(trackers, state.settle_point)
        if step.purpose == "final":
            # The batch moved the rig and recorded nothing afterwards: report where it came to rest.
            job.final_pose = dict(self._ctx.hub.pose())

    async def _record(self, job: Job, step: RecordStep, state: RunState) -> None:
        settle_point, state.settle_point = state.settle_point, None  # each recording settles anew
        proof, state.settle_proof = state.settle_proof, None
        state.recorded_proof = proof
        assert settle_point is not None, "a recording step follows its settle step"
        start = recording_start(settle_point, state.last_record_end, self._ctx.router.preroll_horizon())
        recording = Recording(self._ctx, job, step, settle_point, proof, state_since=state.batch_start)
        try:
            await recording.run(start)
        finally:
            state.last_record_end = max(state.last_record_end, recording.end_mono)
            state.recorded_proof = recording.settle_proof  # with what the window showed, once saved

    # -- settle helpers --------------------------------------------------------------------------------
    def _spec(self, device: DeviceSettle, state: RunState) -> SettleSpec:
        return SettleSpec(
            device.device_id,
            tuple(device.targets),
            device.targets,
            device.tolerances,
            state.counts_from(device.device_id),
        )

    async def _wait_settled(self, job: Job, specs: list[SettleSpec]) -> dict[str, SettleTracker]:
        """Wait for every spec; return the settled trackers by device. Cancellable."""
        wait = asyncio.ensure_future(self._ctx.hub.wait_settled(specs, self._ctx.config.settle.timeout_s))
        cancel = asyncio.ensure_future(job.cancel_requested.wait())
        try:
            await asyncio.wait({wait, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel.cancel()
        if not wait.done():
            wait.cancel()
            raise JobCancelled(job.id)
        return wait.result()

    def _proof(self, trackers: dict[str, SettleTracker], settle_point: float) -> dict[str, Any]:
        """The settle proof a session keeps: per device, and the range finder over the steady window."""
        ctx = self._ctx
        # The rig is steady once its last device is: a zoom already at its target is steady at once,
        # and the readings from then on would include the tilt still moving (74-400 m at one pose).
        since = max((t.steady_since_mono for t in trackers.values()), default=settle_point)
        samples = ctx.hub.history_since(ctx.layout.rangefinder_id, since)
        distances = [
            d
            for s in samples
            if s.received_mono <= settle_point
            and is_number(d := (ctx.layout.state_values(s) or {}).get("distance_m"))
        ]
        return {
            "settled_at": time.time() - (time.monotonic() - settle_point),
            "devices": {dev: t.proof() for dev, t in trackers.items()},
            "range_m": _spread(distances),
        }


def _spread(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {
        "readings": len(values),
        "min": min(values),
        "max": max(values),
        "mean": round(sum(values) / len(values), 4),
    }
