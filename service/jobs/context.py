"""What a running job needs from the service: the parts it drives, and the settings in force."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camera.router import FrameRouter
from camera.stream import StreamClient
from mqtt_control.commands import CommandOutcome, CommandTransport
from mqtt_control.hub import StateHub
from rigcore.config import Config, ResolvedPaths
from rigcore.rig import RigLayout
from service.jobs.session_save import SaveServices
from sessions.scan_manifest import ScanManifest

if TYPE_CHECKING:
    from service.jobs.job import Job


@dataclass(frozen=True)
class RunContext:
    config: Config  # as in force when the job started (PUT /config applies from the next job)
    layout: RigLayout
    hub: StateHub
    router: FrameRouter
    transport: CommandTransport
    streams: Sequence[StreamClient]
    # The folders, the writer threads, the frame pool, and the aftercare of a saved session.
    saves: SaveServices
    on_change: Callable[[Job], None]  # publish the job's new state (view and history)
    # Write a scan manifest and hand it to aftercare (blocking: run it in an executor).
    save_scan: Callable[[ScanManifest], None]

    @property
    def paths(self) -> ResolvedPaths:
        return self.saves.paths

    async def send(self, command: Any) -> CommandOutcome:
        """Deliver one command; never raises: a transport that breaks gives a failed outcome."""
        try:
            return await self.transport.send(dict(command))
        except Exception as exc:  # e.g. the MQTT link lost while the command was in flight
            return CommandOutcome.failed(self.transport.name, f"{type(exc).__name__}: {exc}")
