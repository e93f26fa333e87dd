"""What a running job needs from the service: the parts it drives, and the settings in force."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camera.pool import FramePool
from camera.router import FrameRouter
from camera.stream import StreamClient
from mqtt_control.commands import CommandOutcome, CommandTransport
from mqtt_control.hub import StateHub
from rigcore.config import Config, ResolvedPaths
from rigcore.rig import RigLayout
from sessions.manifest import SessionManifest
from sessions.scan_manifest import ScanManifest

if TYPE_CHECKING:
    from service.jobs.job import Job


@dataclass(frozen=True)
class RunContext:
    config: Config  # as in force when the job started (PUT /config applies from the next job)
    layout: RigLayout
    paths: ResolvedPaths
    hub: StateHub
    router: FrameRouter
    transport: CommandTransport
    streams: Sequence[StreamClient]
    executor: Executor  # the writer threads
    pool: FramePool | None
    on_change: Callable[[Job], None]  # publish the job's new state (view and history)
    # A session is saved (its session.json written): queue the work that follows it (service.aftercare).
    on_session_saved: Callable[[SessionManifest, Path], None]
    # Write a scan manifest and hand it to aftercare (blocking: run it in an executor).
    save_scan: Callable[[ScanManifest], None]

    async def send(self, command: Any) -> CommandOutcome:
        """Deliver one command; never raises: a transport that breaks gives a failed outcome."""
        try:
            return await self.transport.send(dict(command))
        except Exception as exc:  # e.g. the MQTT link lost while the command was in flight
            return CommandOutcome.failed(self.transport.name, f"{type(exc).__name__}: {exc}")
