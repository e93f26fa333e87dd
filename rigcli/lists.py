"""``rigcli jobs``, ``rigcli history`` and ``rigcli sessions``: the lists, newest first. Each row
says what an item is in people's units (local ISO times, degrees, short camera names); an error's
reason is never cut to fit a column: it stands whole on the line under its row."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from rigcli.client import EXIT_OK, ApiClient, RequestRejected
from rigcli.common import (
    add_command,
    cli_words,
    deg,
    listing,
    noted_table,
    one_line,
    parse_degrees,
    parse_time,
    print_json,
    problem_lines,
    resolve_camera,
    short_cam,
    when,
    x100,
)


def add_list_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``jobs``, ``history`` and ``sessions`` to the subparsers of rigcli.cli.build_parser."""
    jobs = add_command(sub, common, "jobs", "jobs since the service started, newest first")
    jobs.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    jobs.set_defaults(run=cmd_jobs)
    hist = add_command(sub, common, "history", "history.json, newest first")
    hist.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    hist.set_defaults(run=cmd_history)
    ses = add_command(sub, common, "sessions", "recorded sessions, newest first")
    ses.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    ses.add_argument("--offset", type=int, default=0, help="skip this many (newest first)")
    # Filters of GET /sessions: degrees, times and camera names made the service's here; it checks the rest.
    ses.add_argument(
        "--camera",
        metavar="CAM",
        help="sessions that recorded this camera (swir, lwir, rgb: a part of an id)",
    )
    ses.add_argument("--status", help="complete, partial, failed, cancelled, incomplete or unreadable")
    when_help = "(2026-12-06, 2026-12-06T14:30 in local time; 30m, 2h, 3d ago; or epoch seconds)"
    ses.add_argument("--since", metavar="TIME", help=f"recorded at or after TIME {when_help}")
    ses.add_argument("--until", metavar="TIME", help="recorded before TIME (the same forms)")
    ses.add_argument("--scan", dest="scan_id", metavar="SCAN_ID", help="sessions of this scan")
    for axis in ("pan", "tilt"):
        for end in ("min", "max"):
            ses.add_argument(
                f"--{axis}-{end}",
                metavar="DEG",
                help=f"{axis} at the start, {end}imum (degrees, e.g. 15 or 12.5)",
            )
    ses.add_argument("--search", dest="q", metavar="TEXT", help="a part of the session id or its label")
    ses.add_argument("--kind", help="recording or event")
    ses.add_argument("--node", metavar="NODE", help="all: the fleet's sessions; a node's id: that node's")
    ses.set_defaults(run=cmd_sessions)


def cmd_jobs(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    jobs = client.get("/jobs")["jobs"][: max(args.limit, 0)]
    headers = ["job", "created", "status", "phase", "session"]
    return listing(args.json, out, "jobs", jobs, (headers, _job_row), notes=_job_error)


def _job_row(j: dict[str, Any]) -> list[str]:
    return [
        j.get("job_id", ""),
        when(j.get("created_at")),
        j.get("status", ""),
        j.get("phase", ""),
        (j.get("session") or {}).get("session_id") or "-",
    ]


def _job_error(j: dict[str, Any]) -> list[str]:
    """A failed job's reason, whole, on the line under its row."""
    message = (j.get("error") or {}).get("message")
    return [f"error: {one_line(message)}"] if message else []


def cmd_history(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    entries = list(reversed(client.get("/history", params={"limit": max(args.limit, 1)})["requests"]))
    headers = ["id", "received", "status", "commands", "session"]
    return listing(args.json, out, "requests", entries, (headers, _history_row), notes=_history_error)


def _history_row(e: dict[str, Any]) -> list[str]:
    requests = (e.get("request") or {}).get("requests") if isinstance(e.get("request"), dict) else None
    return [
        e.get("id", ""),
        when(e.get("received_at")),
        e.get("status", ""),
        str(len(requests)) if isinstance(requests, list) else "-",
        ", ".join(s.get("session_id", "") for s in e.get("sessions") or []) or "-",
    ]


def _history_error(e: dict[str, Any]) -> list[str]:
    """A refused or failed request's reason, whole, and a refusal's problems, under its row."""
    error = e.get("error") or {}
    if not isinstance(error, dict):
        return [f"error: {one_line(error)}"] if error else []
    message = error.get("error") or error.get("message")
    lines = [f"error: {cli_words(one_line(message))}"] if message else []
    return lines + [line.strip() for line in problem_lines(error)]


# GET /sessions's filters, by their argparse names (--pan-min is pan_min).
SESSION_FILTERS = (
    *("camera", "status", "since", "until", "scan_id"),
    *("pan_min", "pan_max", "tilt_min", "tilt_max", "q", "kind", "node"),
)


def session_filters(args: argparse.Namespace, client: ApiClient) -> dict[str, Any]:
    """GET /sessions's filters from the options, in the service's units: degrees as hundredths, times
    (ISO 8601 in local time, an age, epoch seconds) as epoch seconds, a short camera name as its id."""
    filters: dict[str, Any] = {
        key: value
        for key in SESSION_FILTERS
        if (value := getattr(args, key, None)) is not None and str(value) != ""
    }
    for key in ("pan_min", "pan_max", "tilt_min", "tilt_max"):
        if key in filters:
            option = "--" + key.replace("_", "-")
            filters[key] = x100(parse_degrees(filters[key], f"{option} {filters[key]}"))
    for key in ("since", "until"):
        if key in filters:
            filters[key] = round(parse_time(f"--{key}", filters[key]), 3)
    if "camera" in filters:
        cameras = [c["camera_id"] for c in client.get("/cameras")["cameras"]]
        try:
            filters["camera"] = resolve_camera(filters["camera"], cameras)
        except RequestRejected:
            if any(filters["camera"].lower() in c.lower() for c in cameras):
                raise  # several cameras hold it: say which
            # A camera not configured now may have recorded sessions before: the service looks.
    return filters


def cmd_sessions(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    filters = session_filters(args, client)
    page = {"limit": max(args.limit, 1), "offset": max(args.offset, 0)}
    body = client.get("/sessions", params={**page, **filters})
    if args.json:
        print_json(out, body)
        return EXIT_OK
    sessions = body["sessions"]
    headers = [
        "session",
        "recorded",
        "status",
        "pan / tilt",
        "frames",
        "upload",
        *(["node"] if args.node else []),
    ]
    lines = noted_table(headers, sessions, lambda s: _session_row(s, bool(args.node)), notes=_session_notes)
    lines.append(f"{len(sessions)} of {body['total']} sessions{' matching' if filters else ''}")
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _session_row(s: dict[str, Any], fleet: bool) -> list[str]:
    pose = s.get("pose") or {}
    frames = ", ".join(
        f"{short_cam(cam)} {c.get('frame_count')}" for cam, c in (s.get("cameras") or {}).items()
    )
    return [
        s["session_id"],
        when(s.get("record_started_at")),
        s.get("status") or "-",
        f"{deg(pose.get('pan_deg_x100'))} / {deg(pose.get('tilt_deg_x100'))}",
        frames or "-",
        s.get("upload_state") or "-",
        *([s.get("node_id") or "-"] if fleet else []),  # across the fleet: whose it is
    ]


SESSION_PROBLEMS_SHOWN = 3  # under a session's row; each whole, the rest counted (rigcli session ID)


def _session_notes(s: dict[str, Any]) -> list[str]:
    """Why a session is not complete: its error (unreadable) and its first problems, each whole."""
    lines = [f"error: {one_line(s['error'])}"] if s.get("error") else []
    problems = [p for p in s.get("problems") or [] if isinstance(p, dict)]
    for p in problems[:SESSION_PROBLEMS_SHOWN]:
        where = f" ({short_cam(p['camera_id'])})" if p.get("camera_id") else ""
        lines.append(f"problem: {p.get('type')}{where}: {one_line(p.get('message', ''))}")
    if len(problems) > SESSION_PROBLEMS_SHOWN:
        lines.append(
            f"... and {len(problems) - SESSION_PROBLEMS_SHOWN} more (rigcli session {s['session_id']})"
        )
    return lines


__all__ = ["add_list_parsers", "session_filters"]
