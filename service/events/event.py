"""One event: the window ``[trigger − pre_s, trigger + post_s]`` of capture time, saved as a session.

The window is opened at once (:meth:`Event.open`): a session folder, a writer, and a recorder
(service.jobs.recorder, the one a recording uses) attached to the event ring (camera.ring), which
hands it every frame it holds from the window's start — the part before the trigger — then every
frame that comes; the state samples of the window come from the state ring (service.events.states)
and then the state hub. :meth:`Event.run` waits until the window's end has passed and every camera
sent a frame captured after it, then saves through the same code as a recording
(service.jobs.session_save): ``state.jsonl``, ``session.json`` with each frame's pose at its capture
time, aftercare (frame sets, report, catalog, upload), ``images_data/<session_id>.json``.

A trigger while the event still collects its after part extends it (:meth:`Event.extend`): the window
then ends at that trigger's time + its ``post_s``, at most ``events.max_s`` after the window's start.
The window never starts before the ring's horizon (frames already let go of); when it had to start
later than asked, the session is partial and says by how much.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from camera.capture_clock import CaptureClock
from camera.ring import FrameRing
from camera.stream import StreamClient
from mqtt_control.hub import StateHub
from rigcore.config import Config
from rigcore.errors import RecordingError
from rigcore.rig import RigLayout
from service.events.states import StateRing
from service.events.trigger import Trigger
from service.jobs import session_save as saving
from service.jobs.recorder import Recorder
from service.status import EventStatus
from sessions.manifest import (
    EventTrigger,
    Problem,
    RecordingMarker,
    SessionKind,
    SessionManifest,
    SessionStatus,
    TriggerSource,
    remove_marker,
    write_marker,
)
from sessions.writer import SessionWriter, create_session_dir

log = logging.getLogger(__name__)

# State samples are taken from this long before the window's start (the pose at the first frame is
# interpolated between the samples around it).
STATE_MARGIN_S = 1.0
# How a saved session's status reads as the event's.
STATUS_OF = {
    SessionStatus.COMPLETE: EventStatus.SAVED,
    SessionStatus.PARTIAL: EventStatus.PARTIAL,
    SessionStatus.CANCELLED: EventStatus.PARTIAL,
    SessionStatus.INCOMPLETE: EventStatus.PARTIAL,
    SessionStatus.FAILED: EventStatus.FAILED,
}


@dataclass(frozen=True)
class EventContext:
    """What an event needs from the service (service.events.desk builds it per event)."""

    config: Config  # in force when the event was triggered
    layout: RigLayout
    hub: StateHub
    ring: FrameRing
    states: StateRing
    clocks: Mapping[str, CaptureClock]
    streams: Sequence[StreamClient]
    saves: saving.SaveServices  # the folders, writer threads, frame pool, aftercare


class EventView(BaseModel):
    """An event as ``GET /events/<id>`` shows it (times: epoch seconds, capture time)."""

    event_id: str
    status: EventStatus
    label: str | None
    source: TriggerSource
    trigger_at: float
    triggers: list[EventTrigger]
    cameras: list[str]
    start_at: float  # the window, in capture time
    end_at: float
    created_at: float
    finished_at: float | None
    progress: dict[str, Any]
    session_id: str | None
    path: str | None
    frames: dict[str, int]  # per camera: taken so far, saved once saved
    problems: list[Problem]
    error: str | None


class Event:
    """See the module text. Loop thread, but :meth:`view` and :attr:`done` (any thread)."""

    def __init__(self, event_id: str, trigger: Trigger, ctx: EventContext) -> None:
        self.id = event_id
        self._ctx = ctx
        self.triggers = [trigger]
        self.cameras = trigger.cameras
        self.status = EventStatus.COLLECTING
        self.created_at = time.time()
        self.finished_at: float | None = None
        self.progress: dict[str, Any] = {}
        self.error: str | None = None
        self.done = threading.Event()
        asked = trigger.at_mono - trigger.pre_s
        self.start_mono = max(asked, math.nextafter(ctx.ring.horizon(self.cameras), math.inf))
        self.short_s = max(0.0, self.start_mono - asked)  # the ring held less than asked
        self.end_mono = min(trigger.at_mono + trigger.post_s, self.start_mono + ctx.config.events.max_s)
        self._late_wait = ctx.config.capture_time.late_wait(
            ctx.config.cameras[c].latency_s for c in self.cameras if c in ctx.config.cameras
        )
        self._problems: list[Problem] = []
        self._manifest: SessionManifest | None = None
        self._recorder: Recorder | None = None
        self._writer: SessionWriter | None = None
        self._folder: Path | None = None
        self._marker_error: str | None = None
        self._waited = 0.0

    # -- opening and extending (loop) ------------------------------------------------------------
    def open(self) -> None:
        """The folder, the writer and the recorder, fed from the rings at once. OSError: no folder."""
        ctx = self._ctx
        session_id, self._folder = create_session_dir(ctx.saves.paths.save_dir)
        parts = ctx.saves.writer_parts(ctx.config)
        self._writer = writer = saving.session_writer(
            parts, self.cameras, (session_id, self._folder), ctx.ring.bytes
        )
        window = (self.start_mono, self.end_mono)
        self._recorder = recorder = Recorder(ctx.layout, self.cameras, window, writer, ctx.hub, ctx.clocks)
        for sample in ctx.states.since(self.start_mono - STATE_MARGIN_S):
            recorder.on_state(sample)
        ctx.hub.add_listener(recorder.on_state)
        ctx.ring.attach(recorder, self.start_mono)

    @property
    def collecting(self) -> bool:
        """Whether the window's end is still ahead (a trigger now extends it)."""
        return self.status is EventStatus.COLLECTING and time.monotonic() < self.end_mono

    def extend(self, trigger: Trigger) -> bool:
        """Take ``trigger`` into this event when it falls inside its window and asks for no camera
        it lacks; its end moves to the trigger's time + post_s (at most max_s after the start)."""
        recorder = self._recorder
        fits = (
            set(trigger.cameras) <= set(self.cameras) and self.start_mono <= trigger.at_mono <= self.end_mono
        )
        if recorder is None or not self.collecting or not fits:
            return False
        end = min(trigger.at_mono + trigger.post_s, self.start_mono + self._ctx.config.events.max_s)
        self.end_mono = recorder.end_mono = max(self.end_mono, end)
        self.triggers.append(trigger)
        return True

    def cut(self, why: str) -> None:
        """End the window now (events were disabled): the frames so far are saved."""
        if self._recorder is not None and self.collecting:
            self.end_mono = min(self.end_mono, time.monotonic())
            self._recorder.cut_short(self.end_mono)
            self._problems.append(Problem(type="Cut", message=why))

    # -- the rest of its life (a task on the loop) ------------------------------------------------
    async def run(self) -> None:
        recorder, writer, folder = self._recorder, self._writer, self._folder
        assert recorder is not None and writer is not None and folder is not None, "open() first"
        try:
            await self._write_marker(folder, writer.session_id)
            await self._hold(recorder)
            self.status = EventStatus.SAVING
            manifest = await self._save(writer, recorder)
            await self._finish(folder, manifest)
        except Exception as exc:  # a bug or session.json not written: the event says so
            if not isinstance(exc, RecordingError):
                log.exception("event %s failed", self.id)
            self.status, self.error = EventStatus.FAILED, str(exc)
        finally:
            self._detach(recorder)
            self.finished_at = time.time()
            self.done.set()

    async def _write_marker(self, folder: Path, session_id: str) -> None:
        first = self.triggers[0]
        marker = RecordingMarker(
            session_id=session_id,
            request=dict(first.body),
            record_started_at=saving.wall(self.start_mono),
            duration_second=self.end_mono - self.start_mono,
            kind=SessionKind.EVENT,
            event_id=self.id,
            trigger_at=first.at,
            node_id=self._ctx.config.node.id,
        )
        try:
            await asyncio.get_running_loop().run_in_executor(None, write_marker, folder, marker)
        except OSError as exc:
            self._marker_error = str(exc)
            log.error("event %s: cannot write the recording marker: %s", self.id, exc)

    async def _hold(self, recorder: Recorder) -> None:
        """Until the window's end (which a trigger may move) has passed, then the late frames."""
        while (left := self.end_mono - time.monotonic()) > 0:
            self.progress = {"frames": recorder.frames_taken, "seconds_left": round(left, 1)}
            await asyncio.sleep(min(left, saving.PROGRESS_EVERY_S))

        def report(awaited: list[str]) -> None:
            self.progress = {"frames": recorder.frames_taken, "seconds_left": 0, "waiting_for": awaited}

        self._waited = await saving.wait_late_frames(recorder, self._late_wait, report)
        self._detach(recorder)

    def _detach(self, recorder: Recorder) -> None:
        self._ctx.ring.detach(recorder)
        self._ctx.hub.remove_listener(recorder.on_state)

    async def _save(self, writer: SessionWriter, recorder: Recorder) -> SessionManifest:
        def report(saved: int, total: int) -> None:
            self.progress = {"frames": recorder.frames_taken, "saved": saved, "total": total}

        await saving.drain(writer, report)
        outages = saving.outages_in(self._ctx.streams, self.cameras, recorder.start_mono, recorder.end_mono)
        findings = saving.findings_of(
            writer,
            recorder,
            self.cameras,
            outages,
            marker_error=self._marker_error,
            late_wait_s=self._late_wait,
        )
        status, problems = saving.judge(findings, "")
        problems += self._own_problems()
        if problems and status is SessionStatus.COMPLETE:
            status = SessionStatus.PARTIAL
        waits = (self._late_wait, self._waited)
        window = saving.ClosedWindow(recorder, writer, (status, problems), outages, waits)
        return await saving.write_session(self._ctx.layout, writer, self._header(window), recorder)

    def _own_problems(self) -> list[Problem]:
        problems = list(self._problems)
        if self.short_s > 0:
            first = self.triggers[0]
            problems.append(
                Problem(
                    type="RingShort",
                    message=f"the ring held {max(0.0, first.pre_s - self.short_s):.2f} s of the "
                    f"{first.pre_s:g} s asked for before the trigger (it was enabled, or let frames go to "
                    f"stay within the memory cap, since): the window starts {self.short_s:.2f} s later",
                )
            )
        return problems

    def _header(self, window: saving.ClosedWindow) -> dict[str, Any]:
        first, recorder = self.triggers[0], window.recorder
        return {
            "kind": SessionKind.EVENT,
            "event_id": self.id,
            "request": dict(first.body),
            "trigger_at": first.at,
            "triggers": [t.record() for t in self.triggers],
            "label": self.label,
            "source": first.source,
            "duration_second": round(recorder.end_mono - recorder.start_mono, 6),
            "settle": saving.capture_proof(recorder),
            **window.header(self._ctx.config.node.id),
        }

    async def _finish(self, folder: Path, manifest: SessionManifest) -> None:
        """Saved: aftercare, images_data/<id>.json, the event's status."""
        self._manifest = manifest
        remove_marker(folder)
        self._ctx.saves.on_saved(manifest, folder)
        summary = manifest.summary(folder).to_json()
        summary = {**summary, "kind": SessionKind.EVENT.value, "event_id": self.id}
        try:
            await saving.write_images_record(
                self._ctx.saves.paths.images_data_dir, manifest, summary, request=dict(self.triggers[0].body)
            )
        except OSError as exc:
            self.error = (
                f"session {manifest.session_id} was saved, but images_data could not be written: {exc}"
            )
            log.error("event %s: %s", self.id, self.error)
        self.status = STATUS_OF[manifest.status]
        self.progress = {}

    # -- what it is (any thread) -----------------------------------------------------------------
    @property
    def label(self) -> str | None:
        return next((t.label for t in self.triggers if t.label is not None), None)

    def view(self) -> dict[str, Any]:
        first, manifest, recorder = self.triggers[0], self._manifest, self._recorder
        if manifest is not None:
            frames = {cam: info.frame_count for cam, info in manifest.cameras.items()}
        else:
            frames = {cam: recorder.frames_of(cam) for cam in self.cameras} if recorder else {}
        return EventView(
            event_id=self.id,
            status=self.status,
            label=self.label,
            source=first.source,
            trigger_at=first.at,
            triggers=[t.record() for t in list(self.triggers)],
            cameras=list(self.cameras),
            start_at=saving.wall(self.start_mono),
            end_at=saving.wall(self.end_mono),
            created_at=self.created_at,
            finished_at=self.finished_at,
            progress=dict(self.progress),
            session_id=self._writer.session_id if self._writer else None,
            path=str(self._folder) if self._folder else None,
            frames=frames,
            problems=list(manifest.problems) if manifest is not None else [],
            error=self.error,
        ).model_dump(mode="json")


__all__ = ["Event", "EventContext", "EventView"]
