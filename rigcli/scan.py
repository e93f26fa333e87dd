"""``rigcli scan``: record the same cameras at a grid or a list of poses (``POST /scans``), follow the
scan pose by pose, and print a table of the poses with their sessions and settle times.

Pan and tilt are given in degrees, as to ``capture``, and sent as the service's whole hundredths of a
degree (``--pan -30:30:15`` is ``{"from": -3000, "to": 3000, "step": 1500}``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, TextIO

from rigcli.client import EXIT_OK, ApiClient, CliError, RequestRejected, ServiceUnavailable
from rigcli.common import (
    add_cameras_option,
    add_command,
    camera_names,
    check_within,
    choose_cameras,
    clip,
    listing,
    noted_table,
    one_line,
    outcome,
    parse_degrees,
    path_of,
    poll,
    print_json,
    submitted,
    when,
    x100,
    zoom_names,
)
from rigcli.progress import ScanProgress, pose_number, settle_seconds, target_text

SCAN_POLL_S = 0.5  # about two answers a second while following a scan
FINISHED = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
# After Ctrl-C asked the service to cancel: how long to wait for the pose being recorded to be saved.
CANCEL_WAIT_S = 120.0

SCAN_TEXT = """\
record at a grid or a list of poses; follow it pose by pose; print a table

Submit a scan (POST /scans): the same cameras recorded at every pose, one session per pose, each
after the rig settled. Or, with an ACTION, look at the scans.

the poses:
  a grid:   --pan FROM:TO:STEP --tilt FROM:TO:STEP [--order serpentine|rows]
            degrees; inclusive ranges (the last value is TO when a step lands on it); one value
            (--tilt 0) is a single row; rows are the tilt values, serpentine (the default) runs
            every other row's pan backwards
  a list:   --pose PAN,TILT and --preset NAME, each repeatable, visited in the order given

following: a progress line over the poses on stderr, then a table of the poses (target, status,
session, settle time) on stdout. Exit 0 when every pose is done, 1 when the scan failed or was
cancelled, 2 when the service refused the plan (each problem is listed). Ctrl-C asks the service to
cancel the scan (the pose being recorded is saved) and waits for it; Ctrl-C again stops waiting.

examples:
  python -m rigcli scan --pan -30:30:15 --tilt 0:-10:10 --seconds 2 --cameras swir rgb
  python -m rigcli scan --pose 0,0 --pose 45,-10 --preset gate --seconds 1 --cameras swir --on-failure skip
  python -m rigcli scan list
  python -m rigcli scan status scan-20261130-051500-1a2b3c
  python -m rigcli scan resume scan-20261130-051500-1a2b3c
"""


# -- the arguments ---------------------------------------------------------------------------------
def axis_range(option: str, text: str, bounds_x100: Any = None) -> dict[str, int]:
    """``FROM:TO:STEP`` (or one value) in degrees, as a grid range in hundredths of a degree; FROM and
    TO within ``bounds_x100`` (``GET /cameras``'s range of the axis) when given."""
    typed = f"{option} {text}"
    parts = text.split(":")
    if len(parts) == 1:
        parts = [parts[0], parts[0], "0.01"]
    if len(parts) != 3:
        raise RequestRejected(f"{typed}: write FROM:TO:STEP in degrees (-30:30:15), or one value")
    start, stop, step = (parse_degrees(part, typed) for part in parts)
    for end in (start, stop):
        check_within(typed, end, option.lstrip("-"), bounds_x100)
    return {"from": x100(start), "to": x100(stop), "step": x100(step)}


def pose_arg(text: str, pantilt: dict[str, Any] | None = None) -> dict[str, Any]:
    """``PAN,TILT`` in degrees, as a pose; each within the ranges in ``pantilt`` (``GET /cameras``)."""
    typed = f"--pose {text}"
    parts = text.split(",")
    if len(parts) != 2:
        raise RequestRejected(f"{typed}: write PAN,TILT in degrees (45,-10)")
    pan, tilt = (parse_degrees(part, typed) for part in parts)
    for axis, degrees in (("pan", pan), ("tilt", tilt)):
        check_within(typed, degrees, axis, (pantilt or {}).get(f"{axis}_range_x100"))
    return {"pan_deg_x100": x100(pan), "tilt_deg_x100": x100(tilt)}


def _pose_item(text: str) -> tuple[str, str]:
    return ("pose", text)


def _preset_item(text: str) -> tuple[str, str]:
    return ("preset", text)


def _follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="print the scan id and return at once")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--max-wait", type=float, metavar="S", help="give up following after S seconds (default: never)"
    )


def add_scan_parser(sub: Any, common: argparse.ArgumentParser, epilog: str) -> None:
    """``scan`` (start one) and its actions ``status``, ``list``, ``cancel``, ``resume``."""
    scan = add_command(sub, common, "scan", f"{SCAN_TEXT}\n{epilog}")
    plan = scan.add_argument_group("the poses: a grid, or a list of --pose and --preset")
    plan.add_argument("--pan", metavar="FROM:TO:STEP", help="pan range in degrees (decimals welcome)")
    plan.add_argument("--tilt", metavar="FROM:TO:STEP", help="tilt range in degrees (the rows)")
    plan.add_argument("--order", choices=("serpentine", "rows"), help="grid order (default: serpentine)")
    plan.add_argument(
        "--pose", dest="poses", action="append", type=_pose_item, metavar="PAN,TILT", help="a pose in degrees"
    )
    plan.add_argument("--preset", dest="poses", action="append", type=_preset_item, metavar="NAME")
    scan.add_argument("--seconds", type=float, metavar="S", help="how long to record at each pose")
    add_cameras_option(scan, required=False, default_text="")
    scan.add_argument(
        "--on-failure",
        choices=("abort", "skip"),
        default="abort",
        help="a pose that fails ends the scan (abort, the default) or is skipped",
    )
    scan.add_argument("--retries", type=int, default=0, metavar="N", help="more tries at a failed pose")
    scan.add_argument("--label", metavar="TEXT", help="a name for the scan")
    _follow_options(scan)
    scan.set_defaults(run=cmd_scan)

    actions = scan.add_subparsers(dest="scan_action", metavar="[ACTION]", parser_class=type(scan))
    st = add_command(actions, common, "status", "one scan: its poses, sessions, settle times")
    st.add_argument("scan_id", metavar="ID")
    st.set_defaults(run=cmd_scan_status)
    ls = add_command(actions, common, "list", "the scans, newest first")
    ls.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    ls.set_defaults(run=cmd_scan_list)
    cancel = add_command(actions, common, "cancel", "cancel a scan (the pose recording is saved)")
    cancel.add_argument("scan_id", metavar="ID")
    cancel.set_defaults(run=cmd_scan_cancel)
    resume = add_command(
        actions, common, "resume", "run the poses of a finished scan that are not done; follow it"
    )
    resume.add_argument("scan_id", metavar="ID")
    _follow_options(resume)
    resume.set_defaults(run=cmd_scan_resume)


# -- scan, scan resume -----------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    body = build_scan(args, client)
    return _submitted(args, client, client.post("/scans", body), out, err)


def cmd_scan_resume(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    answer = client.post(path_of("scans", args.scan_id, "resume"), None)
    return _submitted(args, client, answer, out, err)


def build_scan(args: argparse.Namespace, client: ApiClient) -> dict[str, Any]:
    """The body of ``POST /scans`` from the options; the service checks it whole."""
    if args.seconds is None:
        raise RequestRejected("scan: --seconds S is required (how long to record at each pose)")
    if not args.cameras:
        raise RequestRejected("scan: --cameras CAM [CAM ...] is required")
    _plan_shape(args)
    _plan(args, {})  # each angle read, and none beyond a full turn, before anything is asked
    cameras, info = choose_cameras(client, camera_names(args.cameras))
    plan = _plan(args, info["pantilt"])  # and within the rig's ranges
    body: dict[str, Any] = {
        "cameras": cameras,
        "duration_second": args.seconds,
        **plan,
        "on_pose_failure": args.on_failure,
        "retries": args.retries,
    }
    if args.label is not None:
        body["label"] = args.label
    return body


def _plan_shape(args: argparse.Namespace) -> None:
    """A grid or a list of poses, each whole (checked before anything is asked of the service)."""
    grid = args.pan is not None or args.tilt is not None
    if grid and args.poses:
        raise RequestRejected("scan: give a grid (--pan, --tilt) or poses (--pose, --preset), not both")
    if grid and (args.pan is None or args.tilt is None):
        raise RequestRejected("scan: a grid needs --pan and --tilt (one value, e.g. --tilt 0, is one row)")
    if not grid and not args.poses:
        raise RequestRejected(
            "scan: say where: a grid (--pan FROM:TO:STEP --tilt FROM:TO:STEP) or poses "
            "(--pose PAN,TILT, --preset NAME)"
        )
    if not grid and args.order is not None:
        raise RequestRejected("scan: --order is for a grid; --pose and --preset run in the order given")


def _plan(args: argparse.Namespace, pantilt: dict[str, Any]) -> dict[str, Any]:
    """The grid or the poses in hundredths of a degree, each angle within the rig's ranges."""
    if args.pan is not None:
        pan = axis_range("--pan", args.pan, pantilt.get("pan_range_x100"))
        tilt = axis_range("--tilt", args.tilt, pantilt.get("tilt_range_x100"))
        order = args.order or "serpentine"
        return {"grid": {"pan_deg_x100": pan, "tilt_deg_x100": tilt, "order": order}}
    return {
        "poses": [
            pose_arg(text, pantilt) if kind == "pose" else {"preset": text} for kind, text in args.poses
        ]
    }


def _submitted(
    args: argparse.Namespace, client: ApiClient, answer: dict[str, Any], out: TextIO, err: TextIO
) -> int:
    """The scan was queued: print its id (--no-wait), or follow it to the end and print the table."""
    scan_id = answer["scan_id"]
    if not submitted(args.json, not args.no_wait, (out, err), "scan", answer):
        return EXIT_OK
    zooms = _zoom_names_of(client)
    progress = ScanProgress(err, enabled=not args.quiet, zoom_names=zooms)
    try:
        scan = follow_scan(client, scan_id, progress, args.max_wait)
    except KeyboardInterrupt:
        progress.close()
        return _cancel_on_interrupt(args, client, scan_id, progress, (out, err))
    progress.close()
    _show(args, scan, out, zooms)
    return outcome("scan", scan, err)  # the service names the poses not done from 1, as rigcli does


def _cancel_on_interrupt(
    args: argparse.Namespace,
    client: ApiClient,
    scan_id: str,
    progress: ScanProgress,
    streams: tuple[TextIO, TextIO],
) -> int:
    """Ctrl-C while following: ask the service to cancel, wait for the scan to end, show it. 130."""
    out, err = streams
    err.write(f"rigcli: Ctrl-C: cancelling scan {scan_id} (DELETE /scans/{scan_id})\n")
    try:
        client.delete(path_of("scans", scan_id))
        err.write(
            "rigcli: cancel requested; the pose being recorded is saved, the rest are skipped "
            "(Ctrl-C again to stop waiting)\n"
        )
        scan = follow_scan(client, scan_id, progress, CANCEL_WAIT_S)
    except CliError as exc:
        err.write(f"rigcli: {exc.message}\n")
        return 130
    except KeyboardInterrupt:
        progress.close()
        err.write(f"rigcli: stopped waiting; see: python -m rigcli scan status {scan_id}\n")
        return 130
    progress.close()
    _show(args, scan, out, _zoom_names_of(client, scan))
    err.write(f"rigcli: scan {scan.get('status')}; run the rest: python -m rigcli scan resume {scan_id}\n")
    return 130


def follow_scan(
    client: ApiClient, scan_id: str, progress: ScanProgress, max_wait: float | None
) -> dict[str, Any]:
    """Poll the scan about twice a second until it ends; brief connection trouble is retried."""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    trouble_since: float | None = None
    while True:
        scan, trouble_since = poll(client, path_of("scans", scan_id), trouble_since)
        if scan is None:
            time.sleep(1.0)
            continue
        progress.update(scan)
        if scan.get("status") in FINISHED:
            result: dict[str, Any] = scan
            return result
        if deadline is not None and time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"scan {scan_id} is still {scan.get('status')} after {max_wait:.0f} s; stopped following "
                f"(it goes on: python -m rigcli scan status {scan_id})"
            )
        time.sleep(SCAN_POLL_S)


def _show(args: argparse.Namespace, scan: dict[str, Any], out: TextIO, zooms: dict[str, str]) -> None:
    if args.json:
        print_json(out, scan)
    else:
        out.write(summary(scan, zooms))


def summary(scan: dict[str, Any], zooms: dict[str, str] | None = None) -> str:
    """The scan's table: each pose (counted from 1), its target, status, tries, session and settle
    time; a failed pose's reason, whole, under its row. ``zooms``: the zoom names (zoom_names)."""
    progress = scan.get("progress") or {}
    lines = [f"scan      {scan.get('scan_id')}  {scan.get('status')}"]
    if scan.get("label"):
        lines.append(f"label     {scan['label']}")
    started, finished = scan.get("started_at"), scan.get("finished_at")
    if isinstance(started, int | float) and isinstance(finished, int | float):
        lines.append(f"took      {finished - started:.1f} s")
    lines.append(f"poses     {progress.get('done', 0)} of {progress.get('total', '?')} done")

    def row(pose: dict[str, Any]) -> list[str]:
        settle = settle_seconds(pose)
        return [
            pose_number(pose),
            target_text(pose, zooms),
            str(pose.get("status")),
            str(pose.get("attempts", "")),
            pose.get("session_id") or "-",
            f"{settle:.2f} s" if settle is not None else "-",
        ]

    headers = ["pose", "target", "status", "tries", "session", "settle"]
    poses = [p for p in scan.get("poses") or [] if isinstance(p, dict)]
    lines += noted_table(headers, poses, row, notes=_pose_error, right={0, 3, 5})
    return "\n".join(lines) + "\n"


def _pose_error(pose: dict[str, Any]) -> list[str]:
    if pose.get("status") != "failed":
        return []
    return [f"error: {one_line((pose.get('error') or {}).get('message', 'no reason given'))}"]


def _zoom_names_of(client: ApiClient, scan: dict[str, Any] | None = None) -> dict[str, str]:
    """The zoom names to show a scan's targets with: ``GET /cameras``, asked only when a pose (of
    ``scan``, when given) has a zoom."""
    poses = (scan or {}).get("poses") or []
    if scan is not None and not any(((p.get("target") or {}).get("zoom")) for p in poses):
        return {}
    try:
        return zoom_names(client.get("/cameras")["cameras"])
    except (CliError, KeyError, TypeError):
        return {}  # names are a nicety: the values are shown without them


# -- scan status, list, cancel ---------------------------------------------------------------------
def cmd_scan_status(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    scan = client.get(path_of("scans", args.scan_id))
    _show(args, scan, out, {} if args.json else _zoom_names_of(client, scan))
    return EXIT_OK


def cmd_scan_list(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    scans = client.get("/scans")["scans"][: max(args.limit, 0)]
    headers = ["scan", "created", "status", "done", "label"]
    return listing(args.json, out, "scans", scans, (headers, _scan_row), right={3})


def _scan_row(s: dict[str, Any]) -> list[str]:
    progress = s.get("progress") or {}
    return [
        s.get("scan_id", ""),
        when(s.get("created_at")),
        s.get("status", ""),
        f"{progress.get('done', 0)}/{progress.get('total', '?')}",
        clip(s.get("label") or "-", 40),
    ]


def cmd_scan_cancel(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    answer = client.delete(path_of("scans", args.scan_id))
    if args.json:
        print_json(out, answer)
        return EXIT_OK
    progress = answer.get("progress") or {}
    out.write(
        f"{answer.get('message', 'cancel requested')}: scan {args.scan_id} "
        f"({progress.get('done', 0)} of {progress.get('total', '?')} poses done; the pose being "
        "recorded is saved)\n"
    )
    return EXIT_OK
