"""Running a scan job: its poses one after another, each as a batch of its own.

For each pose not ``done`` yet: :func:`service.scans.spec.scan_batch` gives its batch (pan, tilt,
zooms, the recording), :func:`service.batches.plan.compile_plan` its steps, and the steps run with the
ordinary step handlers (:meth:`service.jobs.batch_runner.JobRunner.run_steps`), one ``RunState`` per pose. A
pose whose batch stops (a failed command, a settle timeout, no state, a recording that is not whole)
is tried again up to ``retries`` times, then marked ``failed``: ``skip`` goes on with the next pose,
``abort`` ends the scan (``failed``) with the remaining poses ``skipped``. A cancel saves the pose
being recorded (the recording's own cancel) and skips the rest. The scan manifest
(``images_data/scans/<id>.json``) is written at the start, when each pose starts and ends, and at the
end; each write is handed to the aftercare hooks (service/aftercare.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rigcore.errors import JobCancelled, RigError
from service.batches.plan import compile_plan
from service.jobs.batch_runner import JobRunner, RunState
from service.jobs.context import RunContext
from service.jobs.job import BatchStopped, Job
from service.scans.run import ScanRun
from service.scans.spec import scan_batch
from service.status import JobStatus, PoseStatus
from sessions.scan_manifest import PoseRecord

log = logging.getLogger(__name__)


class ScanRunner:
    """Runs one scan job against the rig (event-loop side)."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._steps = JobRunner(ctx)

    async def run(self, job: Job) -> None:
        scan = job.scan
        assert scan is not None, "a scan job carries its scan"
        job.start()
        scan.status, scan.started_at = JobStatus.RUNNING.value, job.started_at
        scan.finished_at, scan.error = None, None
        self._ctx.on_change(job)
        try:
            await self._save(scan)
            await self._run_poses(job, scan)
        except JobCancelled as exc:
            job.finish(JobStatus.CANCELLED, exc.to_dict())
        except Exception as exc:  # a bug must still leave a true record behind
            log.exception("scan %s crashed", scan.id)
            job.finish(JobStatus.FAILED, {"type": type(exc).__name__, "message": f"internal error: {exc}"})
        else:
            status, error = scan.outcome()
            job.finish(JobStatus(status), error)
        finally:
            scan.skip_rest()
            scan.follow(job.status, job.finished_at, job.error)
            self._ctx.router.want_full_rate(job.id, False)
            await self._save(scan)
            self._ctx.on_change(job)

    async def _run_poses(self, job: Job, scan: ScanRun) -> None:
        for pose in scan.poses:
            if pose.status == PoseStatus.DONE.value:  # a resumed scan runs only the poses not done
                continue
            done = await self._run_pose(job, scan, pose)
            await self._save(scan)
            if not done and scan.spec.on_pose_failure == "abort":
                return

    async def _run_pose(self, job: Job, scan: ScanRun, pose: PoseRecord) -> bool:
        """Run one pose, with its retries; True once it is done."""
        for _attempt in range(scan.spec.retries + 1):
            pose.status, pose.error = PoseStatus.RUNNING.value, None
            pose.attempts += 1
            self._ctx.on_change(job)
            await self._save(scan)  # a process killed now leaves this pose "running": failed at restart
            error = await self._attempt(job, scan, pose)
            if error is None:
                pose.status = PoseStatus.DONE.value
                return True
            pose.error = error
            log.warning("scan %s pose %d failed (attempt %d): %s", scan.id, pose.index, pose.attempts, error)
        pose.status = PoseStatus.FAILED.value
        return False

    async def _attempt(self, job: Job, scan: ScanRun, pose: PoseRecord) -> dict[str, Any] | None:
        """One attempt at a pose: None when it succeeded, else its error. A cancel is raised."""
        ctx, record_id = self._ctx, self._ctx.config.recording.command_id
        batch = scan_batch(scan.spec, scan.spec.poses[pose.index], ctx.layout, record_id)
        plan = compile_plan(batch, ctx.layout, record_id)
        job.plan, job.results, job.progress = plan, [], {}
        job.session_tags = {"scan_id": scan.id, "pose_index": pose.index}
        state, before = RunState(batch_start=time.monotonic()), len(job.sessions)
        try:
            await self._steps.run_steps(job, plan.steps, state)
        except JobCancelled as exc:
            pose.status, pose.error = PoseStatus.FAILED.value, exc.to_dict()
            raise
        except BatchStopped as exc:
            return exc.error
        except RigError as exc:
            job.fail_current(str(exc))
            return exc.to_dict()
        finally:
            _note_session(job, pose, before, state)
        return None

    async def _save(self, scan: ScanRun) -> None:
        """Write the scan manifest (taken here, on the loop) off the loop; a failure is logged."""
        await asyncio.get_running_loop().run_in_executor(None, self._ctx.save_scan, scan.manifest())


def _note_session(job: Job, pose: PoseRecord, before: int, state: RunState) -> None:
    """The pose's session (the attempt's recording, if it got that far) and its settle proof."""
    if len(job.sessions) <= before:
        return
    session = job.sessions[-1]
    pose.session_id, pose.path, pose.settle = session["session_id"], session["path"], state.recorded_proof
