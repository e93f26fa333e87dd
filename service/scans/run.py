"""A scan while it runs: its spec, the status of each pose, and how it shows (pure, loop-side).

A scan is one job in the queue (service.jobs.scan_runner runs its poses). Its status follows the job's
(queued, running, succeeded, failed, cancelled, interrupted); a scan ``succeeded`` only when every
pose is ``done``: with ``on_pose_failure: skip`` the scan runs through all its poses, and fails
naming the poses that failed. :meth:`ScanRun.manifest` is what ``images_data/scans/<id>.json``
holds (sessions/scan_manifest.py); :func:`scan_view` gives the API's shape of either.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET  # builds XML only: nothing untrusted is parsed
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rigcore.checks import is_number, xml_text
from service.scans.spec import ScanPose, ScanSpec
from service.status import JobStatus, PoseStatus
from sessions.scan_manifest import PoseRecord, PoseTarget, ScanManifest, ScanStatus


@dataclass(eq=False)
class ScanRun:
    id: str
    spec: ScanSpec
    body: dict[str, Any]
    poses: list[PoseRecord]
    job_id: str | None = None
    status: ScanStatus = JobStatus.QUEUED.value
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None

    @staticmethod
    def new(spec: ScanSpec, body: dict[str, Any]) -> ScanRun:
        scan_id = time.strftime("scan-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        poses = [
            PoseRecord(
                index=p.index,
                target=PoseTarget(pan_deg_x100=p.pan, tilt_deg_x100=p.tilt, zoom=dict(p.zoom)),
                preset=p.preset,
            )
            for p in spec.poses
        ]
        return ScanRun(scan_id, spec, body, poses)

    def manifest(self) -> ScanManifest:
        return ScanManifest(
            scan_id=self.id,
            job_id=self.job_id,
            label=self.spec.label,
            status=self.status,
            request=self.body,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            poses=[p.model_copy(deep=True) for p in self.poses],
        )

    def view(self) -> dict[str, Any]:
        return scan_view(self.manifest())

    def follow(self, status: JobStatus, finished_at: float | None, error: dict[str, Any] | None) -> None:
        """Once its job is finished (``status``): the scan ends as the job did; the poses not run are
        skipped."""
        self.skip_rest()
        self.status = status.value
        self.finished_at, self.error = finished_at, error

    def skip_rest(self) -> None:
        """Every pose not run yet (pending) is ``skipped``."""
        for pose in self.poses:
            if pose.status in (PoseStatus.PENDING, PoseStatus.RUNNING):
                pose.status = PoseStatus.SKIPPED.value

    def outcome(self) -> tuple[ScanStatus, dict[str, Any] | None]:
        """After the last pose: succeeded if every pose is done, else failed naming the poses (in its
        message as people count them, from 1, like the CLI and the dashboard; ``pose_indices`` are the
        poses' ``index``, from 0)."""
        failed = [p.index for p in self.poses if p.status != PoseStatus.DONE.value]
        if not failed:
            return JobStatus.SUCCEEDED.value, None
        shown = ", ".join(str(i + 1) for i in failed[:20]) + (" …" if len(failed) > 20 else "")
        message = f"{len(failed)} of {len(self.poses)} poses not done (pose {shown})"
        return JobStatus.FAILED.value, {"type": "PosesFailed", "message": message, "pose_indices": failed}


def scan_view(manifest: ScanManifest) -> dict[str, Any]:
    """A scan as the API shows it (GET /scans/<id>), live or from its manifest."""
    poses = [p.model_dump(mode="json") for p in manifest.poses]
    return {
        "scan_id": manifest.scan_id,
        "job_id": manifest.job_id,
        "label": manifest.label,
        "status": manifest.status,
        "created_at": manifest.created_at,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at,
        "error": manifest.error,
        "progress": {
            "done": sum(1 for p in manifest.poses if p.status == PoseStatus.DONE.value),
            "total": len(manifest.poses),
        },
        "poses": poses,
    }


def interrupted(
    manifest: ScanManifest, now: float, cut_off: Mapping[int, tuple[str, str]] | None = None
) -> ScanManifest:
    """A scan whose process stopped while it was queued or running, as the next start records it:
    ``interrupted``; the pose that was running ``failed``, those not run ``skipped``. ``cut_off`` maps
    a pose index to the (session id, path) of the session it was recording when the process died
    (recovered as ``incomplete``): the failed pose points at it until a resume records it again."""
    out = manifest.model_copy(deep=True)
    error = {"type": "Interrupted", "message": "the service stopped before this scan finished"}
    out.status, out.finished_at, out.error = JobStatus.INTERRUPTED.value, now, error
    for pose in out.poses:
        if pose.status == PoseStatus.RUNNING.value:
            pose.status, pose.error = PoseStatus.FAILED.value, dict(error)
            if cut_off and pose.index in cut_off:
                pose.session_id, pose.path = cut_off[pose.index]
        elif pose.status == PoseStatus.PENDING.value:
            pose.status = PoseStatus.SKIPPED.value
    return out


def resumed(manifest: ScanManifest, spec: ScanSpec) -> ScanRun:
    """The scan again under the same id, to run the poses not ``done``: ``spec`` is its request checked
    again against the configuration in force; the targets are those the manifest kept (a preset
    changed since does not move a pose)."""
    targets = tuple(
        ScanPose(p.index, p.target.pan_deg_x100, p.target.tilt_deg_x100, dict(p.target.zoom), p.preset)
        for p in manifest.poses
    )
    spec = replace(spec, poses=targets)
    poses = [p.model_copy(deep=True) for p in manifest.poses]
    for pose in poses:
        if pose.status != PoseStatus.DONE.value:
            pose.status, pose.error = PoseStatus.PENDING.value, None
    body = manifest.request if isinstance(manifest.request, dict) else {}
    return ScanRun(manifest.scan_id, spec, body, poses, created_at=manifest.created_at or time.time())


def papywizard_xml(manifest: ScanManifest) -> str:
    """The scan as a Papywizard shoot file: one ``pict`` per pose in the scan's order, yaw = pan and
    pitch = tilt in degrees, its time the settle point of the pose's session when it has one. Text
    goes in only through rigcore.checks.xml_text: a label with control characters still makes a
    well-formed document."""
    root = ET.Element("papywizard", version="c")
    header = ET.SubElement(root, "header")
    general = ET.SubElement(header, "general")
    ET.SubElement(general, "title").text = xml_text(manifest.label or manifest.scan_id)
    comment = f"rigcapture scan {manifest.scan_id} ({manifest.status})"
    ET.SubElement(general, "comment").text = xml_text(comment)
    ET.SubElement(header, "shooting", mode="preset")
    shoot = ET.SubElement(root, "shoot")
    for pose in manifest.poses:
        pict = ET.SubElement(shoot, "pict", id=str(pose.index + 1), bracket="1")
        shot = _local_time((pose.settle or {}).get("settled_at"))
        if shot is not None:
            ET.SubElement(pict, "time").text = shot
        yaw, pitch = pose.target.pan_deg_x100 / 100, pose.target.tilt_deg_x100 / 100
        ET.SubElement(pict, "position", yaw=f"{yaw:g}", pitch=f"{pitch:g}", roll="0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _local_time(when: Any) -> str | None:
    if not is_number(when):
        return None
    try:
        return time.strftime("%Y-%m-%d_%Hh%Mm%Ss", time.localtime(when))
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return None
