"""The ``rigcli`` commands: capture and status; and jobs, history, sessions, session, scan, presets,
schedules, export, event and events (rigcli/lists.py, rigcli/session.py, rigcli/scan.py,
rigcli/presets.py, rigcli/schedules.py, rigcli/export.py, rigcli/events.py).

The same words everywhere: angles in degrees (decimals welcome; hundredths only on the wire),
cameras by a short name or any part of an id, times as local ISO 8601 (rigcli/common.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rigcli.client import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ApiClient,
    CliError,
    RequestRejected,
)
from rigcli.common import (
    Handler,
    add_cameras_option,
    add_command,
    camera_names,
    check_within,
    choose_cameras,
    cli_words,
    deg,
    degree_option,
    follow,
    glue_negative_values,
    iso_span,
    one_line,
    outcome,
    parse_zoom,
    print_json,
    problem_lines,
    submitted,
    table,
    zoom_names,
    zoom_text,
)
from rigcli.events import add_events_parsers
from rigcli.export import add_export_parser
from rigcli.fleet import add_fleet_parser
from rigcli.lists import add_list_parsers
from rigcli.presets import add_presets_parser
from rigcli.progress import JobProgress
from rigcli.scan import add_scan_parser
from rigcli.schedules import add_schedules_parser
from rigcli.session import (
    add_session_parser,
    camera_table,
    job_sessions,
    session_details,
    unconfirmed_lines,
)

DEFAULT_URL = "http://127.0.0.1:5000"
# The pan-tilt axes the capture command can move: the option, and its key in GET /cameras "pantilt".
# Which command drives an axis, and its argument, is the service's configuration: read from there.
PANTILT_AXES = ("pan", "tilt")

EPILOG = """\
exit codes:
  0  done; for capture, scan and presets go: the job or scan succeeded
  1  the job or scan failed or was cancelled (the error is printed)
  2  usage error, or the service refused the request as invalid (HTTP 400/413/415; the problems
     are listed), or answered that what it names does not exist or cannot do that now (404/409)
  3  cannot reach the service, it refused the token (HTTP 401/403), or it failed (HTTP 5xx)
  130 interrupted with Ctrl-C (a submitted job goes on in the service; a followed scan is cancelled)

environment:
  RIGCAPTURE_URL    default for --url (else http://127.0.0.1:5000)
  RIGCAPTURE_TOKEN  default for --token (safer than --token: not shown in the process list)
  RIGCAPTURE_CACERT default for --cacert (the CA of an https service, PEM)

examples:
  python -m rigcli capture --pan 45 --tilt -10 --seconds 3 --cameras swir,lwir,rgb
  python -m rigcli capture --seconds 1 --cameras rgb --zoom rgb=4 --json > job.json
  python -m rigcli status
  python -m rigcli sessions --limit 5
  python -m rigcli sessions --camera lwir --since 2h --pan-min -45 --pan-max 45
  python -m rigcli session 20261123-203016-412
  python -m rigcli scan --pan -30:30:15 --tilt 0:-10:10 --seconds 2 --cameras swir rgb
  python -m rigcli presets set gate --pan 45 --tilt -10 && python -m rigcli presets go gate
  python -m rigcli schedules add --every 600 --scan-file sweep.json --label sweep
"""

CAPTURE_TEXT = f"""\
move, settle, record; follow the job; print a summary

Submit a batch (pan, tilt, zooms, then the recording), follow the job with a progress bar on stderr,
then print a summary. Moves are left out when not given.

{EPILOG}"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting, so main() owns every exit code."""

    def error(self, message: str) -> Any:
        raise _UsageError(f"{self.prog}: {message}", self.format_usage())


class _UsageError(Exception):
    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


def _common(top: bool) -> _Parser:
    """The options every command takes. They may stand before or after the command; the copy given
    to the subcommands has no defaults, or argparse would let them overwrite what stood before."""
    common = _Parser(add_help=False)

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    common.add_argument(
        "--url",
        default=default(os.environ.get("RIGCAPTURE_URL", DEFAULT_URL)),
        help=f"the service (default: $RIGCAPTURE_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--token",
        default=default(os.environ.get("RIGCAPTURE_TOKEN")),
        help="api.token (default: $RIGCAPTURE_TOKEN)",
    )
    common.add_argument(
        "--cacert",
        metavar="PATH",
        default=default(os.environ.get("RIGCAPTURE_CACERT")),
        help="for an https URL: the CA (or self-signed certificate) to trust, PEM "
        "(default: $RIGCAPTURE_CACERT)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the final JSON on stdout, nothing else",
    )
    common.add_argument(
        "--timeout", type=float, default=default(10.0), help="seconds per HTTP call (default: 10)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    parser = _Parser(
        prog="rigcli",
        description="Command-line client of the rigcapture service (uses its public HTTP API only).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(top=True)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    cap = add_command(sub, common, "capture", CAPTURE_TEXT)
    cap.add_argument("--pan", metavar="DEG", help="pan in degrees, decimals welcome (-180 … 180)")
    cap.add_argument("--tilt", metavar="DEG", help="tilt in degrees, decimals welcome (-90 … 90)")
    cap.add_argument("--seconds", type=float, required=True, metavar="S", help="how long to record")
    add_cameras_option(cap, required=True, default_text="")
    cap.add_argument(
        "--zoom",
        action="append",
        default=[],
        metavar="CAM=VALUE",
        help="set a camera's zoom first, in its configured unit (rgb=4: zoom_value, swir=200: "
        "zoom_step); may be repeated",
    )
    cap.add_argument("--no-follow", action="store_true", help="print the job id and return at once")
    cap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cap.add_argument(
        "--max-wait",
        type=float,
        metavar="S",
        help="give up following after S seconds (default: 3 x --seconds + 180)",
    )
    cap.set_defaults(run=cmd_capture)

    st = add_command(sub, common, "status", "the rig: pose, connections, cameras")
    st.set_defaults(run=cmd_status)
    add_list_parsers(sub, common)
    add_scan_parser(sub, common, EPILOG)
    add_presets_parser(sub, common)
    add_schedules_parser(sub, common)
    add_export_parser(sub, common)
    add_session_parser(sub, common)
    add_fleet_parser(sub, common)
    add_events_parsers(sub, common)
    return parser


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run one command; return its exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(glue_negative_values(sys.argv[1:] if argv is None else argv))
    except _UsageError as exc:
        err.write(exc.usage + str(exc) + "\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    client = ApiClient(args.url, args.token, timeout=args.timeout, cacert=args.cacert)
    run: Handler = args.run
    try:
        return run(args, client, out, err)
    except CliError as exc:
        if args.json and exc.body is not None:
            print_json(out, exc.body)
        err.write(f"rigcli: {cli_words(exc.message)}\n")
        for line in problem_lines(exc.body):
            err.write(line + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("\nrigcli: interrupted\n")
        return 130
    finally:
        client.close()


# -- capture ---------------------------------------------------------------------------------------
def cmd_capture(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    moves = {axis: degree_option(f"--{axis}", getattr(args, axis)) for axis in PANTILT_AXES}
    chosen, info = choose_cameras(client, camera_names(args.cameras))
    for axis, degrees in moves.items():
        if degrees is not None:
            check_within(
                f"--{axis} {getattr(args, axis)}", degrees, axis, info["pantilt"].get(f"{axis}_range_x100")
            )
    body = {"requests": build_batch(args, info, chosen)}
    answer = client.post("/process-request", body, params={"wait": "false"})
    job_id = answer["job_id"]
    if not submitted(args.json, not args.no_follow, (out, err), "job", answer):
        return EXIT_OK
    progress = JobProgress(err, args.seconds, enabled=not args.quiet)
    max_wait = args.max_wait if args.max_wait is not None else 3 * args.seconds + 180
    try:
        job = follow(client, job_id, progress, max_wait)
    except KeyboardInterrupt:
        progress.close()
        err.write(f"rigcli: stopped following; job {job_id} goes on (stop it: DELETE /jobs/{job_id})\n")
        return 130
    progress.close()
    if args.json:
        print_json(out, job)
    else:
        out.write(summary(job, session_details(client, job)))
    return outcome("job", job, err)


def build_batch(args: argparse.Namespace, info: dict[str, Any], cameras: list[str]) -> list[dict[str, Any]]:
    """Moves first (pan, tilt, zooms), the recording last: the recording then waits for them to settle.

    ``info`` is what ``GET /cameras`` returned: the commands that drive each axis and zoom come from it.
    """
    requests = [
        pantilt_request(info["pantilt"], axis, degrees)
        for axis in PANTILT_AXES
        if (degrees := degree_option(f"--{axis}", getattr(args, axis))) is not None
    ]
    requests += [zoom_request(info["cameras"], item) for item in args.zoom]
    requests.append(
        {
            "target_id": "camera_device",
            "device_id": cameras[0],
            "command_id": info["recording"]["command_id"],
            "args": {"duration_second": args.seconds, "camera_ids": cameras},
        }
    )
    return requests


def pantilt_request(pantilt: dict[str, Any], axis: str, degrees: float) -> dict[str, Any]:
    """The command moving ``axis`` ("pan" or "tilt") to ``degrees``, as the service configures it."""
    command = pantilt.get(axis)
    if not command:
        raise RequestRejected(f"--{axis}: the service has no {axis} command configured")
    return {
        "target_id": "entity",
        "device_id": pantilt["device_id"],
        "command_id": command["command_id"],
        "args": {command["arg"]: round(degrees * 100)},  # the rig takes hundredths of a degree
    }


def zoom_request(cameras: list[dict[str, Any]], item: str) -> dict[str, Any]:
    """The command for one ``--zoom CAMERA=VALUE``, with the camera's configured zoom command."""
    camera, zoom, value = parse_zoom(cameras, item)
    return {
        "target_id": "camera_device",
        "device_id": camera,
        "command_id": zoom["command_id"],
        "args": {zoom["arg"]: value},
    }


def summary(job: dict[str, Any], details: dict[str, dict[str, Any] | None] | None = None) -> str:
    """The capture's summary table: job, session path, the window in capture time, per camera frames
    and rejected and, from ``details`` (session.json by session id), time sources and delay."""
    lines = [f"job       {job.get('job_id')}  {job.get('status')}"]
    started, finished = job.get("started_at"), job.get("finished_at")
    if isinstance(started, int | float) and isinstance(finished, int | float):
        lines.append(f"took      {finished - started:.1f} s")
    for session in job_sessions(job):
        begin, end = session.get("record_started_at"), session.get("record_ended_at")
        recorded = (
            f"{end - begin:.2f} s" if isinstance(begin, int | float) and isinstance(end, int | float) else "?"
        )
        lines += [
            f"session   {session.get('session_id')}  ({session.get('status', 'saved')})",
            f"path      {session.get('path')}",
            f"duration  {recorded} recorded",
            f"window    {iso_span(begin, end)}",
        ]
        manifest = (details or {}).get(str(session.get("session_id")))
        lines += camera_table(manifest, session.get("cameras"))
        lines += unconfirmed_lines((manifest or {}).get("capture"))
    if not job_sessions(job):
        lines.append("session   none recorded")
    failed = [r for r in job.get("results") or [] if r.get("status") != "ok"]
    for r in failed:
        req = r.get("request") or {}
        lines.append(f"command   {req.get('command_id')} to {req.get('device_id')}: {r.get('status')}")
    return "\n".join(lines) + "\n"


# -- the read-only commands ------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    st = client.get("/status")
    if args.json:
        print_json(out, st)
        return EXIT_OK
    pose = st.get("pose") or {}
    broker = st.get("broker") or {}
    devices = st.get("devices") or {}
    cameras = client.get("/cameras")
    pantilt_id = cameras["pantilt"]["device_id"]
    pantilt: dict[str, Any] = devices.get(pantilt_id) or {}
    settled = pantilt.get("settled")
    motion = "settled" if settled is True else "moving" if settled is False else "unknown"
    dist = pose.get("distance_m")
    lines = [
        f"service   {client.url}  (transport {st.get('command_transport')}, queue {st.get('queue_length')})",
        f"broker    {broker.get('host')}:{broker.get('port')} "
        + ("connected" if broker.get("connected") else f"DOWN {broker.get('last_error') or ''}".rstrip()),
        f"pan/tilt  {deg(pose.get('pan_deg_x100'))} / {deg(pose.get('tilt_deg_x100'))}  {motion}",
        f"distance  {f'{dist:.2f} m' if isinstance(dist, int | float) and dist > 0 else 'no reading'}",
    ]
    names = zoom_names(cameras["cameras"])
    for cam, zoom in (pose.get("zooms") or {}).items():
        lines.append(f"zoom      {zoom_text(cam, zoom, names)}")
    for stream in st.get("streams") or []:
        state = "connected" if stream.get("connected") else f"DOWN {stream.get('last_error') or ''}".rstrip()
        idle = " (idle between jobs: slowed)" if st.get("stream_rate") == "idle" else ""
        lines.append(f"stream    {stream.get('url')} {state}{idle}")
    rows = []
    for cam, c in (st.get("cameras") or {}).items():
        age = c.get("last_frame_age_s")
        rows.append(
            [
                cam,
                f"{c.get('fps', 0):.1f}",
                str(c.get("frames", 0)),
                str(c.get("rejected_frames", 0)),
                f"{age:.1f} s ago" if isinstance(age, int | float) else "never",
            ]
        )
    lines += table(["camera", "fps", "frames", "rejected", "last frame"], rows, right={1, 2, 3})
    lines += storage_lines(st)
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def storage_lines(st: dict[str, Any]) -> list[str]:
    """GET /status's "disk" (free space, reserve, warning) and "uploads" (the object-store queue)."""
    lines = []
    disk = st.get("disk")
    if isinstance(disk, dict):
        free, total, reserve = disk.get("free_mb"), disk.get("total_mb"), disk.get("min_free_mb")
        known = isinstance(free, int | float) and isinstance(total, int | float)
        free_text = f"{free:.0f} MB free of {total:.0f} MB" if known else "free space unknown"
        lines.append(f"disk      {disk.get('folder')}: {free_text}, reserve {reserve} MB")
        if disk.get("warning"):
            lines.append(f"WARNING   {disk['warning']}")
    uploads = st.get("uploads")
    if isinstance(uploads, dict) and uploads.get("enabled"):
        scans = uploads.get("scans_pending") or 0
        lines.append(
            f"uploads   {uploads.get('target')} {uploads.get('activity')}: "
            f"{uploads.get('sessions_pending')} sessions{f' and {scans} scans' if scans else ''} pending "
            f"({_size(uploads.get('bytes_pending'))}), {uploads.get('rate_mb_s')} MB/s"
        )
        error = uploads.get("last_error")
        if isinstance(error, dict):
            lines.append(f"upload error  {error.get('item') or ''}: {one_line(error.get('message'))}")
    return lines


__all__ = ["EXIT_UNAVAILABLE", "build_parser", "main"]
