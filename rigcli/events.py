"""``rigcli event``: save what the cameras saw around now (``POST /events``), follow the event until
its session is saved, and print it; ``rigcli events``: the events since the service started, or one.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, TextIO

from rigcli.client import EXIT_JOB_FAILED, EXIT_OK, ApiClient, ServiceUnavailable
from rigcli.common import (
    add_cameras_option,
    add_command,
    camera_names,
    choose_cameras,
    clip,
    iso,
    iso_span,
    listing,
    one_line,
    path_of,
    poll,
    print_json,
    short_cam,
    show,
    submitted,
)

EVENT_POLL_S = 0.25
FINISHED = frozenset({"saved", "partial", "failed"})
REDRAW_EVERY_S = 0.1

EVENT_EPILOG = """\
The service keeps the last events.pre_max_s seconds of the cameras' frames in memory (the ring);
an event saves [now - pre, now + post] of capture time as a session. Another trigger while an event
still records its after part extends it. Exit 0 when the event's session is saved complete, 1 when
it is partial or failed, 2 when the service refused the trigger (events disabled: 409; a bad value:
400, each problem listed).

examples:
  python -m rigcli event
  python -m rigcli event --pre 5 --post 10 --label "gate opened"
  python -m rigcli event --ago 3 --pre 2 --post 2 --cameras lwir rgb
  python -m rigcli events
  python -m rigcli events ev-20261206-140637-ef4605
"""


EVENT_TEXT = f"""\
save the seconds before and after now as a session; follow it

Trigger an event (POST /events), follow it with a progress line on stderr, then print its session.

{EVENT_EPILOG}"""

# No description: the help, then two blank lines (rigcli.common.help_parts).
EVENTS_TEXT = f"""\
events since the service started, newest first; or one event


{EVENT_EPILOG}"""


def add_events_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    ev = add_command(sub, common, "event", EVENT_TEXT)
    ev.add_argument(
        "--pre", type=float, metavar="S", help="seconds before the trigger (default: all the ring holds)"
    )
    ev.add_argument(
        "--post", type=float, metavar="S", help="seconds after it (default: events.post_default_s)"
    )
    ev.add_argument("--label", metavar="TEXT", help="a name for the event (searchable in sessions)")
    add_cameras_option(ev, required=False, default_text="; default: every camera of the ring")
    ev.add_argument("--ago", type=float, metavar="S", help="the trigger was S seconds ago (within the ring)")
    ev.add_argument("--no-follow", action="store_true", help="print the event id and return at once")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    ev.add_argument("--max-wait", type=float, default=600.0, metavar="S", help="stop following after S s")
    ev.set_defaults(run=cmd_event)
    evs = add_command(sub, common, "events", EVENTS_TEXT)
    evs.add_argument("event_id", nargs="?", metavar="EVENT_ID", help="show this event")
    evs.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    evs.set_defaults(run=cmd_events)


def build_event(args: argparse.Namespace, client: ApiClient) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in (("pre_s", args.pre), ("post_s", args.post), ("label", args.label)):
        if value is not None:
            body[key] = value
    if args.cameras is not None:
        body["cameras"] = choose_cameras(client, camera_names(args.cameras))[0]
    if args.ago is not None:
        body["at"] = round(time.time() - args.ago, 3)
    return body


def cmd_event(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    answer = client.post("/events", build_event(args, client), params={"wait": "false"})
    if answer.get("extended") and not args.json:
        err.write(f"the trigger extended event {answer['event_id']}, still recording its after part\n")
    if not submitted(args.json, not args.no_follow, (out, err), "event", answer):
        return EXIT_OK
    progress = EventProgress(err, enabled=not args.quiet)
    try:
        event = follow_event(client, answer["event_id"], progress, args.max_wait)
    finally:
        progress.close()
    if args.json:
        print_json(out, event)
    else:
        out.write("\n".join(event_lines(event)) + "\n")
    if event.get("status") != "saved":
        err.write(f"rigcli: event {event.get('status')}: {event.get('error') or 'see its problems'}\n")
        return EXIT_JOB_FAILED
    return EXIT_OK


def follow_event(
    client: ApiClient, event_id: str, progress: EventProgress, max_wait: float
) -> dict[str, Any]:
    """Poll the event until it is saved or failed; brief connection trouble is retried."""
    deadline = time.monotonic() + max_wait
    trouble: float | None = None
    while True:
        event, trouble = poll(client, path_of("events", event_id), trouble)
        if event is not None:
            progress.update(event)
            if event.get("status") in FINISHED:
                result: dict[str, Any] = event
                return result
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"event {event_id} not saved after {max_wait:.0f} s; stopped following")
        time.sleep(EVENT_POLL_S if event is not None else 1.0)


def event_lines(event: dict[str, Any]) -> list[str]:
    """An event in words: its session, window, triggers, frames per camera, problems."""
    triggers = event.get("triggers") or []
    lines = [
        f"event {event.get('event_id')} {event.get('status')}"
        + (f" ({event['label']})" if event.get("label") else "")
        + (f": session {event['session_id']}" if event.get("session_id") else ""),
        f"  window    {iso_span(event.get('start_at'), event.get('end_at'))} (capture time)",
    ]
    for t in triggers:
        lines.append(
            f"  trigger   {iso(t.get('at'))} by {t.get('source')}: {t.get('pre_s'):g} s before, "
            f"{t.get('post_s'):g} s after"
        )
    if event.get("path"):
        lines.append(f"  folder    {event['path']}")
    for cam, count in sorted((event.get("frames") or {}).items()):
        lines.append(f"  {short_cam(cam):<16}{count} frames")
    lines += [
        f"  problem   {p.get('type')}: {one_line(p.get('message'))}" for p in event.get("problems") or []
    ]
    return lines


def cmd_events(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    if args.event_id:
        return show(args.json, out, client.get(path_of("events", args.event_id)), event_lines)
    body = client.get("/events")
    if args.json:
        print_json(out, body)
        return EXIT_OK
    if body.get("error"):
        err.write(f"rigcli: events are off: {body['error']}\n")
    elif not body.get("armed"):
        err.write("rigcli: events are disabled (events.enabled in the configuration)\n")
    events = list(body.get("events") or [])[: max(args.limit, 0)]
    if not events:
        out.write("no events since the service started (trigger one: python -m rigcli event)\n")
        return EXIT_OK
    headers = ["event", "triggered", "status", "label", "source", "session", "frames"]
    return listing(False, out, "events", events, (headers, _event_row), right={6})


def _event_row(e: dict[str, Any]) -> list[str]:
    frames = sum((e.get("frames") or {}).values())
    extra = f" +{len(e['triggers']) - 1}" if len(e.get("triggers") or []) > 1 else ""
    return [
        str(e.get("event_id", "")),
        iso(e.get("trigger_at")) + extra,
        str(e.get("status", "")),
        clip(e.get("label") or "-", 24),
        str(e.get("source", "")),
        str(e.get("session_id") or "-"),
        str(frames),
    ]


class EventProgress:
    """An event's progress on stderr: one redrawn line on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = enabled and _isatty(stream)
        self._status: str | None = None
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._width = 0

    def update(self, event: dict[str, Any]) -> None:
        if not self._enabled:
            return
        status = str(event.get("status"))
        changed, self._status = status != self._status, status
        now = time.monotonic()
        if self._tty and (changed or now - self._last_draw >= REDRAW_EVERY_S):
            text = self.line(event)
            self._stream.write("\r" + text + " " * max(0, self._width - len(text)))
            self._stream.flush()
            self._width, self._last_draw = len(text), now
        elif not self._tty and changed:
            self._stream.write(f"{self.line(event)}  (+{now - self._started:.1f} s)\n")
            self._stream.flush()

    @staticmethod
    def line(event: dict[str, Any]) -> str:
        status, progress = str(event.get("status")), event.get("progress") or {}
        if status == "collecting":
            left = progress.get("seconds_left")
            waiting = progress.get("waiting_for")
            when = f"{left:.1f} s of the after part left" if isinstance(left, int | float) and left else ""
            when = when or (
                f"waiting for late frames of {', '.join(map(short_cam, waiting))}" if waiting else ""
            )
            return f"[collecting] {progress.get('frames', 0)} frames{', ' + when if when else ''}"
        if status == "saving" and isinstance(progress.get("total"), int):
            return f"[saving] {progress.get('saved', 0)}/{progress['total']} frames saved"
        return f"[{status}]"

    def close(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = ["EventProgress", "add_events_parsers", "event_lines"]
