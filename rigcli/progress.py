"""Progress on stderr: one redrawn line on a terminal, one line per change otherwise. A job goes
through phases (:class:`JobProgress`); a scan through poses (:class:`ScanProgress`).

Plain ASCII and a carriage return only, so it works in Windows terminals and in CI logs alike.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

PHASES = ("queued", "commanding", "settling", "recording", "saving", "done")
BAR_WIDTH = 24
REDRAW_EVERY_S = 0.1


class _RedrawnLine:
    """The line a progress redraws in place on a terminal (``enabled`` False: nothing is written)."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = enabled and _isatty(stream)
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._width = 0  # of the line drawn last, to blank what a shorter line leaves behind

    def close(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self._stream.write("\r" + text + pad)
        self._stream.flush()
        self._width = len(text)


class JobProgress(_RedrawnLine):
    """Call :meth:`update` with each ``GET /jobs/<id>`` answer, then :meth:`close`."""

    def __init__(self, stream: TextIO, duration_s: float | None, enabled: bool = True) -> None:
        super().__init__(stream, enabled)
        self._duration = duration_s
        self._phase: str | None = None
        self._phase_started = self._started

    def update(self, job: dict[str, Any]) -> None:
        if not self._enabled:
            return
        phase = str(job.get("phase") or "queued")
        changed = phase != self._phase
        if changed:
            self._phase, self._phase_started = phase, time.monotonic()
        now = time.monotonic()
        if self._tty:
            if changed or now - self._last_draw >= REDRAW_EVERY_S:
                self._draw(self.line(job))
                self._last_draw = now
        elif changed:
            # A log, not a redrawn line: a time stamp since the start says how long each phase took.
            self._stream.write(f"{self.line(job, live=False)}  (+{now - self._started:.1f} s)\n")
            self._stream.flush()

    def line(self, job: dict[str, Any], live: bool = True) -> str:
        """``[4/6] recording  [######------------------]  12 frames, 0.7 s left``; ``live`` adds the
        time spent in a phase that has no progress figure."""
        phase = str(job.get("phase") or "queued")
        number = PHASES.index(phase) + 1 if phase in PHASES else 0
        fraction, text = self._describe(phase, job, live)
        filled = round(BAR_WIDTH * fraction) if fraction is not None else 0
        bar = "#" * filled + "-" * (BAR_WIDTH - filled) if fraction is not None else " " * BAR_WIDTH
        return f"[{number}/{len(PHASES)}] {phase:<10} [{bar}]  {text}".rstrip()

    def _describe(self, phase: str, job: dict[str, Any], live: bool) -> tuple[float | None, str]:
        progress = job.get("progress") or {}
        elapsed = f" ({time.monotonic() - self._phase_started:.1f} s)" if live else ""
        if phase == "recording":
            frames = progress.get("frames", 0)
            left = progress.get("seconds_left")
            if isinstance(left, int | float) and self._duration:
                fraction = min(1.0, max(0.0, 1 - left / self._duration))
                return fraction, f"{frames} frames, {left:.1f} s left"
            return None, f"{frames} frames"
        if phase == "saving":
            saved, total = progress.get("saved"), progress.get("total")
            if isinstance(saved, int) and isinstance(total, int) and total > 0:
                return saved / total, f"{saved}/{total} frames saved"
            return None, f"writing the frames{elapsed}"
        if phase == "done":
            return 1.0, str(job.get("status", ""))
        if phase == "settling":
            return None, f"waiting for the rig to settle{elapsed}"
        if phase == "commanding":
            return None, f"sending commands{elapsed}"
        return None, f"waiting in the queue{elapsed}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ScanProgress(_RedrawnLine):
    """A scan's progress over its poses. Call :meth:`update` with each ``GET /scans/<id>`` answer, then
    :meth:`close`.

    Every change of a pose's status (and of the scan's) is one log line; on a terminal a bar line
    under them is redrawn in place: poses done of the total, and the pose being worked on."""

    def __init__(
        self, stream: TextIO, enabled: bool = True, zoom_names: dict[str, str] | None = None
    ) -> None:
        super().__init__(stream, enabled)
        self._zoom_names = zoom_names  # camera id -> its zoom value's configured name
        self._seen: dict[int, str] = {}
        self._status: str | None = None
        self._pose_started: dict[int, float] = {}

    def update(self, scan: dict[str, Any]) -> None:
        if not self._enabled:
            return
        events = self._events(scan)
        now = time.monotonic()
        if events:
            self._erase()
            for text in events:
                self._stream.write(f"{text}  (+{now - self._started:.1f} s)\n")
        if self._tty and (events or now - self._last_draw >= REDRAW_EVERY_S):
            self._draw(self.line(scan))
            self._last_draw = now
        self._stream.flush()

    def _events(self, scan: dict[str, Any]) -> list[str]:
        """What changed since the last answer, oldest pose first, the scan's own status last."""
        out = []
        status = str(scan.get("status") or "queued")
        finished = status not in ("queued", "running")
        if status != self._status and not finished:
            out.append(f"{self.counter(scan)} scan {scan.get('scan_id', '')} {status}")
        for pose in scan.get("poses") or []:
            index, state = pose.get("index"), str(pose.get("status") or "pending")
            if not isinstance(index, int) or self._seen.get(index, "pending") == state:
                continue
            self._seen[index] = state
            if state == "running":
                self._pose_started[index] = time.monotonic()
            out.append(f"{self.counter(scan)} {pose_event(pose, self._zoom_names)}")
        if status != self._status and finished:
            out.append(f"{self.counter(scan)} scan {scan.get('scan_id', '')} {status}")
        self._status = status
        return out

    @staticmethod
    def counter(scan: dict[str, Any]) -> str:
        progress = scan.get("progress") or {}
        return f"[{progress.get('done', 0)}/{progress.get('total', '?')}]"

    def line(self, scan: dict[str, Any]) -> str:
        """``[1/6] [####--------------------]  pose 2 running: pan 10.00 tilt 0.00 deg (2.3 s)``."""
        progress = scan.get("progress") or {}
        done, total = progress.get("done", 0), progress.get("total", 0)
        fraction = done / total if isinstance(done, int) and isinstance(total, int) and total > 0 else 0.0
        filled = round(BAR_WIDTH * min(1.0, max(0.0, fraction)))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        poses = scan.get("poses") or []
        current = next((p for p in poses if p.get("status") == "running"), None)
        if current is not None:
            since = self._pose_started.get(current.get("index", -1))
            elapsed = f" ({time.monotonic() - since:.1f} s)" if since is not None else ""
            text = f"pose {pose_number(current)} running: {target_text(current, self._zoom_names)}{elapsed}"
        else:
            text = f"scan {scan.get('status', 'queued')}"
        return f"{self.counter(scan)} [{bar}]  {text}"

    def _erase(self) -> None:
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0


def pose_number(pose: dict[str, Any]) -> str:
    """A pose as people count them, from 1 like the progress counter (the API's ``index`` is from 0)."""
    index = pose.get("index")
    return str(index + 1) if isinstance(index, int) and not isinstance(index, bool) else "?"


def pose_event(pose: dict[str, Any], zoom_names: dict[str, str] | None = None) -> str:
    """``pose 2 (pan 10.00 tilt 0.00 deg) done: settled in 0.42 s, session 20261130-051500-123``."""
    state = str(pose.get("status") or "pending")
    head = f"pose {pose_number(pose)} ({target_text(pose, zoom_names)}) {state}"
    if state == "done":
        settle = settle_seconds(pose)
        settled = f"settled in {settle:.2f} s" if settle is not None else "settled"
        return f"{head}: {settled}, session {pose.get('session_id') or '-'}"
    if state == "failed":
        error = pose.get("error") or {}
        return f"{head}: {error.get('message', 'no reason given')}"
    if state == "running" and isinstance(pose.get("attempts"), int) and pose["attempts"] > 1:
        return f"{head} (attempt {pose['attempts']})"
    return head


def target_text(pose: dict[str, Any], zoom_names: dict[str, str] | None = None) -> str:
    """``pan 10.00 tilt -5.00 deg zoom rgb_1 zoom_value=4 preset gate``: a pose's target, in degrees;
    a zoom with its configured name (``zoom_names``: camera id -> name, from ``GET /cameras``)."""
    target = pose.get("target") or {}
    text = f"pan {_deg(target.get('pan_deg_x100'))} tilt {_deg(target.get('tilt_deg_x100'))} deg"
    zoom = target.get("zoom") or {}
    if zoom:
        text += " zoom " + ", ".join(zoom_text(cam, v, zoom_names) for cam, v in zoom.items())
    if pose.get("preset"):
        text += f" preset {pose['preset']}"
    return text


def zoom_text(camera: Any, value: Any, names: dict[str, str] | None = None) -> str:
    """``swir_1 zoom_step=200``: a zoom with the camera's short name and its configured value name
    (``names``: camera id -> name, rigcli.common.zoom_names), ``swir_1=200`` without one."""
    short = str(camera).removeprefix("cameradevice_")
    name = (names or {}).get(str(camera))
    return f"{short} {name}={value}" if name else f"{short}={value}"


def settle_seconds(pose: dict[str, Any]) -> float | None:
    """How long the pose took to settle: the slowest device of its settle proof, or None."""
    devices = (pose.get("settle") or {}).get("devices") or {}
    times = [
        t
        for d in devices.values()
        if isinstance(d, dict) and isinstance(t := d.get("time_to_settle_s"), int | float)
    ]
    return max(times) if times else None


def _deg(x100: Any) -> str:
    return f"{x100 / 100:.2f}" if isinstance(x100, int | float) else "?"


class ByteProgress:
    """A download's progress on a terminal: bytes so far and the rate, redrawn at most 4 times a
    second (nothing when ``stream`` is not a terminal). The size is often unknown: an MCAP export is
    streamed as it is built."""

    def __init__(self, stream: TextIO, what: str, total: int | None = None) -> None:
        self._stream, self._what, self._total = stream, what, total
        self._enabled = _isatty(stream)
        self._start = self._last = time.monotonic()
        self._width = 0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < 0.25:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-6) / 1e6
        of = f" of {self._total / 1e6:.1f}" if self._total else ""
        text = f"{self._what}: {done / 1e6:.1f}{of} MB ({rate:.1f} MB/s)"
        self._stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self._stream.flush()
        self._width = len(text)

    def close(self) -> None:
        if self._enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
