"""``rigcli session ID``: one recorded session in detail (``GET /sessions/<id>``, its session.json).

What it shows, compactly: the status, the recording's window in capture time (local ISO 8601), the
settle point, the pose at the start, the wait for late frames after the window, the problems, and
per camera its frames, how their capture times were known (the time sources: ``stamp`` the camera's
own clock; ``arrival`` or ``fallback`` its arrival less the camera's latency) with the delay from
capture to arrival (median / 99th percentile / max, seconds) and the camera clock's verdict. A session
saved before capture times were kept shows ``-`` there. The capture command's summary shows the same
camera table for the session it recorded.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from rigcli.client import ApiClient, CliError
from rigcli.common import add_command, clip, deg, iso, iso_span, one_line, path_of, show, table

CAMERA_HEADERS = ["camera", "frames", "rejected", "time source", "delay med / p99 / max", "clock"]

TEXT = """\
one session in detail: window, cameras, capture times and delays

Show one recorded session: its window in capture time, the wait for late frames and per camera its
frames, time sources and delay (arrival less capture). Exit 2 for an unknown session.

examples:
  python -m rigcli session 20261123-203016-412
  python -m rigcli session 20261123-203016-412 --json     # session.json as the service keeps it
"""


def add_session_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``session`` command to the subparsers of rigcli.cli.build_parser."""
    ses = add_command(sub, common, "session", TEXT)
    ses.add_argument("session_id", metavar="SESSION", help="the session id (see: rigcli sessions)")
    ses.set_defaults(run=cmd_session)


def cmd_session(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    return show(args.json, out, client.get(path_of("sessions", args.session_id)), session_lines)


def job_sessions(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The sessions a job recorded (their summaries, as the job answer holds them)."""
    found = job.get("sessions") or ([job["session"]] if job.get("session") else [])
    return [s for s in found if isinstance(s, dict)]


def session_details(client: ApiClient, job: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """session.json of each session the job recorded, by id; None where it cannot be read (the
    summary then shows the counts the job answer has)."""
    details: dict[str, dict[str, Any] | None] = {}
    for session in job_sessions(job):
        session_id = str(session.get("session_id"))
        try:
            found = client.get(path_of("sessions", session_id))
        except CliError:
            found = None
        details[session_id] = found if isinstance(found, dict) else None
    return details


def session_lines(m: dict[str, Any]) -> list[str]:
    """The detail of a session (its session.json) as text lines."""
    start: Any = m.get("record_started_at")
    end: Any = m.get("record_ended_at")
    seconds = f" ({end - start:.2f} s)" if _number(start) and _number(end) else ""
    pose = m.get("pose_at_start") or {}
    lines = [
        f"session   {m.get('session_id')}  {m.get('status')}",
        f"window    {iso_span(start, end)}{seconds}",
        f"settled   {iso(m.get('settled_at'))}",
    ]
    if isinstance(pose, dict) and pose:
        lines.append(f"pan/tilt  {deg(pose.get('pan_deg_x100'))} / {deg(pose.get('tilt_deg_x100'))}")
    lines += capture_lines(m.get("capture"))
    for p in m.get("problems") or []:
        if isinstance(p, dict):
            where = f" ({p['camera_id']})" if p.get("camera_id") else ""
            lines.append(f"problem   {p.get('type')}{where}: {one_line(p.get('message', ''))}")
    return lines + camera_table(m)


def capture_lines(capture: Any) -> list[str]:
    """The window's edges in capture time: frames dropped before and after it, the wait for late
    frames, the cameras it did not confirm. None for a session saved before capture times."""
    if not isinstance(capture, dict):
        return []
    before, after = capture.get("dropped_before", 0), capture.get("dropped_after", 0)
    lines = [f"dropped   {before} frames captured before the window, {after} after"]
    waited, most = capture.get("waited_s"), capture.get("late_wait_s")
    if _number(waited):
        limit = f" (at most {most:g} s)" if _number(most) else ""
        lines.append(f"late wait {waited:.2f} s{limit}")
    return lines + unconfirmed_lines(capture)


def unconfirmed_lines(capture: Any) -> list[str]:
    """A warning naming the cameras whose late frames the recording did not see in time."""
    unconfirmed = capture.get("unconfirmed") if isinstance(capture, dict) else None
    if not unconfirmed:
        return []
    names = ", ".join(map(str, unconfirmed))
    return [f"WARNING   late frames not confirmed: {names} (frames of theirs may be missing)"]


def camera_table(manifest: dict[str, Any] | None, counts: dict[str, Any] | None = None) -> list[str]:
    """Per camera: frames, rejected, time sources, delay, clock verdict. ``manifest``: session.json
    (None when it could not be read: the counts alone, from ``counts``, a session summary's cameras)."""
    cameras = (manifest or {}).get("cameras") or counts or {}
    delays = _delays(manifest)
    rows = [
        [
            str(cam),
            str(c.get("frame_count", "?")),
            str(c.get("rejected_frames", 0)),  # the format's default
            sources_text(c.get("time_sources")),
            delay_text(delays.get(cam)),
            clock_text(c.get("clock")),
        ]
        for cam, c in cameras.items()
        if isinstance(c, dict)
    ]
    if manifest is None:
        return table(CAMERA_HEADERS[:3], [r[:3] for r in rows], right={1, 2})
    return table(CAMERA_HEADERS, rows, right={1, 2})


def _delays(manifest: dict[str, Any] | None) -> dict[str, Any]:
    settle = (manifest or {}).get("settle")
    found = settle.get("delay_s") if isinstance(settle, dict) else None
    return found if isinstance(found, dict) else {}


def sources_text(sources: Any) -> str:
    """``stamp``, or ``stamp 40, fallback 5`` when a camera's frames were timed several ways."""
    if not isinstance(sources, dict) or not sources:
        return "-"
    if len(sources) == 1:
        return str(next(iter(sources)))
    return ", ".join(f"{name} {count}" for name, count in sources.items())


def delay_text(delay: Any) -> str:
    """``0.400 / 0.430 / 0.450 s``: median, 99th percentile and max of arrival less capture."""
    if not isinstance(delay, dict):
        return "-"
    parts = [f"{v:.3f}" if _number(v) else "?" for v in (delay.get(k) for k in ("median", "p99", "max"))]
    return " / ".join(parts) + " s"


def clock_text(clock: Any) -> str:
    """The camera clock's verdict: ``ok``, ``no stamps``, ``failed: <first reason>``."""
    if not isinstance(clock, dict):
        return "-"
    status = str(clock.get("status", "?")).replace("_", " ")
    reasons = clock.get("reasons") or []
    return clip(f"{status}: {reasons[0]}", 60) if status == "failed" and reasons else status


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


__all__ = [
    "add_session_parser",
    "camera_table",
    "cmd_session",
    "job_sessions",
    "session_details",
    "session_lines",
    "unconfirmed_lines",
]
