"""A job's progress on stderr: one redrawn line on a terminal, one line per phase otherwise.

Plain ASCII and a carriage return only, so it works in Windows terminals and in CI logs alike.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

PHASES = ("queued", "commanding", "settling", "recording", "saving", "done")
BAR_WIDTH = 24
REDRAW_EVERY_S = 0.1


class JobProgress:
    """Call :meth:`update` with each ``GET /jobs/<id>`` answer, then :meth:`close`."""

    def __init__(self, stream: TextIO, duration_s: float | None, enabled: bool = True) -> None:
        self._stream = stream
        self._duration = duration_s
        self._enabled = enabled
        self._tty = enabled and _isatty(stream)
        self._phase: str | None = None
        self._started = self._phase_started = time.monotonic()
        self._last_draw = 0.0
        self._width = 0  # of the line drawn last, to blank what a shorter line leaves behind

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

    def close(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

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

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self._stream.write("\r" + text + pad)
        self._stream.flush()
        self._width = len(text)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
