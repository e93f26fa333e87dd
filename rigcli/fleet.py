"""``rigcli fleet``: every node of the fleet (``GET /fleet``): online or not, when it was last heard
of, the job it runs, its broker and stream, its outbox; and this node's outbox to the shared catalog
(``GET /status`` ``catalog``). See docs/operations/fleet.md."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from rigcli.client import EXIT_OK, ApiClient
from rigcli.common import add_command, one_line, print_json, table, when

TEXT = """\
the fleet's nodes: online, last heard of, current job, links

Every node that writes its heartbeat to the catalog this node reads.

A node is offline once its last heartbeat is older than three of its intervals (catalog.heartbeat_s).
Without a shared catalog (catalog.url) the fleet is this node alone.

examples:
  python -m rigcli fleet
  python -m rigcli sessions --node all --status complete
"""


def add_fleet_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    fleet = add_command(sub, common, "fleet", TEXT)
    fleet.set_defaults(run=cmd_fleet)


def cmd_fleet(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    body = client.get("/fleet")
    if args.json:
        print_json(out, body)
        return EXIT_OK
    here = body.get("node_id")
    rows = [_row(n, here) for n in body["nodes"]]
    lines = table(["node", "state", "last seen", "job", "broker", "stream", "outbox", "version", "url"], rows)
    online = sum(1 for n in body["nodes"] if n.get("online"))
    summary = f"{online} of {len(rows)} node{'s' if len(rows) != 1 else ''} online"
    if not body.get("shared"):
        summary += " (no shared catalog: catalog.url is not set, so this node alone)"
    lines.append(summary)
    lines.extend(outbox_lines(client.get("/status").get("catalog") or {}))
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _row(node: dict[str, Any], here: Any) -> list[str]:
    job = node.get("job") or {}
    lag = (node.get("catalog") or {}).get("lag") or {}
    name = f"{node['node_id']}{' (here)' if node['node_id'] == here else ''}"
    return [
        name,
        "online" if node.get("online") else "OFFLINE",
        f"{when(node.get('last_seen'))} ({node.get('age_s', '?')} s ago)",
        f"{job.get('job_id')} {job.get('status')} {job.get('phase') or ''}".strip() if job else "idle",
        _up((node.get("broker") or {}).get("connected")),
        _up((node.get("streams") or {}).get("connected")),
        f"{lag.get('rows')} waiting" if lag.get("rows") else "up to date",
        str(node.get("version") or "-"),
        str(node.get("url") or "-"),
    ]


def _up(connected: Any) -> str:
    return "-" if connected is None else ("up" if connected else "DOWN")


def outbox_lines(catalog: dict[str, Any]) -> list[str]:
    """This node's outbox to the shared catalog, from /status (a backlog drains here after an outage)."""
    shared = catalog.get("shared")
    if not shared:
        return []
    lag = catalog.get("lag") or {}
    line = f"this node's outbox to {shared.get('url')}: {lag.get('rows', 0)} rows waiting"
    if lag.get("oldest_age_s"):
        line += f", oldest {lag['oldest_age_s']} s"
    line += f", {shared.get('rate_rows_s', 0)} rows/s"
    error = catalog.get("last_error")
    lines = [line]
    if error:
        lines.append(f"  last error: {one_line(error.get('message', ''))}")
    return lines


__all__ = ["add_fleet_parser", "cmd_fleet", "outbox_lines"]
