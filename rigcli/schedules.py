"""``rigcli schedules``: scans and batches the service runs on its own, every N seconds or on a cron
expression (``/schedules``): list them with their next and last run, add one from a JSON file, delete.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from rigcli.client import EXIT_OK, ApiClient, RequestRejected
from rigcli.common import ago, clip, one_line, path_of, print_json, table
from rigcli.named import add_action, add_collection, delete, listed

SCHEDULES_EPILOG = """\
The file is the body you would POST yourself: for --scan-file that of POST /scans
({"cameras": [...], "duration_second": 2, "grid": {...}}), for --batch-file that of
POST /process-request ({"requests": [...]}). "-" reads it from stdin.

examples:
  python -m rigcli schedules
  python -m rigcli schedules add --every 600 --scan-file sweep.json --label "ridge sweep"
  python -m rigcli schedules add --cron "*/15 6-18 * * *" --batch-file gate.json
  python -m rigcli schedules delete SCHEDULE_ID
"""

TEXT = f"""\
scans and batches run on a schedule: list (the default), add, show, delete

Scans and batches the service runs every N seconds or on a cron expression.

{SCHEDULES_EPILOG}"""

# No description: the help, then two blank lines (rigcli.common.help_parts).
ADD_TEXT = f"""\
run a scan or a batch every N seconds or on a cron expression


{SCHEDULES_EPILOG}"""


def add_schedules_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    actions = add_collection(sub, common, "schedules", cmd_schedules_list, TEXT)
    add_action(actions, common, "list", cmd_schedules_list, "every schedule, with its next and last run")
    add = add_action(actions, common, "add", cmd_schedules_add, ADD_TEXT)
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=float, metavar="SECONDS", help="run every SECONDS")
    when.add_argument("--cron", metavar="EXPR", help='a cron expression ("*/15 * * * *")')
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--scan-file", type=Path, metavar="FILE", help="a POST /scans body (JSON)")
    what.add_argument("--batch-file", type=Path, metavar="FILE", help="a POST /process-request body (JSON)")
    add.add_argument("--label", metavar="TEXT", help="a name for the schedule")
    schedule = ("schedule_id", "ID")
    help_show = "one schedule: its request and its last run"
    add_action(actions, common, "show", cmd_schedules_show, help_show, schedule)
    add_action(actions, common, "delete", cmd_schedules_delete, "stop and forget a schedule", schedule)


def read_body(path: Path, option: str, stdin: TextIO | None = None) -> Any:
    """The JSON in ``path`` (``-``: stdin); a file that cannot be read or parsed is a usage error."""
    try:
        text = (stdin or sys.stdin).read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestRejected(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RequestRejected(f"{option} {path}: not JSON ({exc})") from None


def build_schedule(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = (
        {"scan": read_body(args.scan_file, "--scan-file")}
        if args.scan_file is not None
        else {"batch": read_body(args.batch_file, "--batch-file")}
    )
    if args.every is not None:
        body["every_s"] = int(args.every) if float(args.every).is_integer() else args.every
    else:
        body["cron"] = args.cron
    if args.label is not None:
        body["label"] = args.label
    return body


def cmd_schedules_add(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    answer = client.post("/schedules", build_schedule(args))
    if args.json:
        print_json(out, answer)
    else:
        out.write(f"schedule {answer.get('schedule_id')} added; next run {ago(answer.get('next_run_at'))}\n")
    return EXIT_OK


def cmd_schedules_delete(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    return delete(args, client, out, "schedule", args.schedule_id)


def cmd_schedules_list(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    empty = "no schedules (add one: python -m rigcli schedules add --help)"
    schedules = listed(args, client.get("/schedules"), "schedules", (out, err), empty)
    if schedules is None:
        return EXIT_OK
    rows = [
        [
            str(s.get("schedule_id", "")),
            clip(s.get("label") or "-", 30),
            str(s.get("kind", "?")),
            _cadence(s),
            ago(s.get("next_run_at")),
            _last_run(s.get("last_run")),
            str(s.get("runs", 0)),
        ]
        for s in schedules
    ]
    headers = ["schedule", "label", "kind", "when", "next run", "last run", "runs"]
    out.write("\n".join(table(headers, rows, right={6})) + "\n")
    return EXIT_OK


def cmd_schedules_show(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    s = client.get(path_of("schedules", args.schedule_id))
    if args.json:
        print_json(out, s)
        return EXIT_OK
    last = s.get("last_run")
    lines = [
        f"schedule  {s.get('schedule_id')}  ({s.get('kind')})",
        f"label     {s.get('label') or '-'}",
        f"when      {_cadence(s)}",
        f"created   {ago(s.get('created_at'))}",
        f"next run  {ago(s.get('next_run_at'))}",
        f"last run  {_last_run(last)}",
    ]
    if isinstance(last, dict) and isinstance(last.get("error"), dict):
        lines.append(f"          {one_line(last['error'].get('message', ''))}")
    lines.append(
        f"runs      {s.get('runs', 0)} queued, {s.get('skipped', 0)} skipped (the previous one unfinished)"
    )
    lines.append("request   " + json.dumps(s.get("request"), ensure_ascii=False))
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _cadence(s: dict[str, Any]) -> str:
    every = s.get("every_s")
    if isinstance(every, int | float):
        return f"every {every:g} s"
    return f"cron {s.get('cron')}" if s.get("cron") else "?"


def _last_run(last: Any) -> str:
    """``2026-11-30 05:10:00 (4 min ago) succeeded scan-…``, or ``never``."""
    if not isinstance(last, dict):
        return "never"
    made = last.get("scan_id") or last.get("job_id") or ""
    return f"{ago(last.get('at'))} {last.get('status') or '?'} {made}".rstrip()
