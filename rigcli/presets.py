"""``rigcli presets``: named poses (``/presets``): list, set, save the rig's pose, show, delete, and go
there (a batch with ``goto_preset``, followed like ``capture``). Degrees on the command line,
hundredths of a degree on the wire, as everywhere in rigcli."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from rigcli.client import EXIT_JOB_FAILED, EXIT_OK, ApiClient, CliError
from rigcli.common import (
    check_within,
    deg,
    follow,
    parse_degrees,
    parse_zoom,
    path_of,
    print_json,
    table,
    when,
    x100,
    zoom_names,
    zoom_text,
)
from rigcli.named import add_action, add_collection, delete, listed
from rigcli.progress import JobProgress

GOTO_PRESET = "goto_preset"  # the batch command that moves the rig to a preset
GO_MAX_WAIT_S = 180.0

TEXT = """\
named poses: list (the default), set, save, show, delete, go

Named poses kept by the service (GET/PUT/DELETE /presets/<name>).

examples:
  python -m rigcli presets
  python -m rigcli presets set gate --pan 45 --tilt -10 --zoom swir=200
  python -m rigcli presets save ridge          # the pose the rig holds now
  python -m rigcli presets go gate
  python -m rigcli presets delete gate
"""


def add_presets_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    actions = add_collection(sub, common, "presets", cmd_presets_list, TEXT)
    name = ("name", "NAME")
    add_action(actions, common, "list", cmd_presets_list, "every preset (the default)")
    put = add_action(
        actions, common, "set", cmd_presets_set, "store pan, tilt (degrees) and zooms under NAME", name
    )
    put.add_argument("--pan", required=True, metavar="DEG", help="pan in degrees (decimals welcome)")
    put.add_argument("--tilt", required=True, metavar="DEG", help="tilt in degrees (decimals welcome)")
    put.add_argument(
        "--zoom",
        action="append",
        default=[],
        metavar="CAM=VALUE",
        help="a camera's zoom in its configured unit (swir=200: zoom_step); may be repeated",
    )
    add_action(actions, common, "save", cmd_presets_save, "store the pose the rig holds now as NAME", name)
    add_action(actions, common, "show", cmd_presets_show, "one preset", name)
    add_action(actions, common, "delete", cmd_presets_delete, "forget a preset", name)
    go = add_action(
        actions, common, "go", cmd_presets_go, "move the rig to a preset; wait until it settled", name
    )
    go.add_argument("-q", "--quiet", action="store_true", help="no progress")


def _row(p: dict[str, Any], names: dict[str, str]) -> list[str]:
    zoom = ", ".join(zoom_text(c, v, names) for c, v in (p.get("zoom") or {}).items())
    return [
        str(p.get("name", "")),
        deg(p.get("pan_deg_x100")),
        deg(p.get("tilt_deg_x100")),
        zoom or "-",
        when(p.get("saved_at")),
    ]


def _print_presets(out: TextIO, presets: list[dict[str, Any]], client: ApiClient) -> None:
    names: dict[str, str] = {}
    if any(p.get("zoom") for p in presets):  # the zoom's configured name (zoom_step), from GET /cameras
        try:
            names = zoom_names(client.get("/cameras")["cameras"])
        except (CliError, KeyError, TypeError):
            names = {}
    headers = ["preset", "pan", "tilt", "zoom", "saved"]
    out.write("\n".join(table(headers, [_row(p, names) for p in presets], right={1, 2})) + "\n")


def cmd_presets_list(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    empty = "no presets (store one: python -m rigcli presets set NAME --pan DEG --tilt DEG)"
    presets = listed(args, client.get("/presets"), "presets", (out, err), empty)
    if presets is None:
        return EXIT_OK
    _print_presets(out, presets, client)
    return EXIT_OK


def _stored(args: argparse.Namespace, answer: dict[str, Any], out: TextIO, client: ApiClient) -> int:
    if args.json:
        print_json(out, answer)
        return EXIT_OK
    out.write(f"preset {answer.get('name')} {answer.get('message', 'stored')}\n")
    _print_presets(out, [answer], client)
    return EXIT_OK


def cmd_presets_set(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    angles = {
        axis: parse_degrees(getattr(args, axis), f"--{axis} {getattr(args, axis)}")
        for axis in ("pan", "tilt")
    }
    info = client.get("/cameras")
    for axis, degrees in angles.items():
        check_within(
            f"--{axis} {getattr(args, axis)}", degrees, axis, info["pantilt"].get(f"{axis}_range_x100")
        )
    body: dict[str, Any] = {"pan_deg_x100": x100(angles["pan"]), "tilt_deg_x100": x100(angles["tilt"])}
    if args.zoom:
        zooms = [parse_zoom(info["cameras"], item) for item in args.zoom]
        body["zoom"] = {camera: value for camera, _, value in zooms}
    return _stored(args, client.put(path_of("presets", args.name), body), out, client)


def cmd_presets_save(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    answer = client.post(path_of("presets", args.name), None, params={"from": "current"})
    return _stored(args, answer, out, client)


def cmd_presets_show(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    preset = client.get(path_of("presets", args.name))
    if args.json:
        print_json(out, preset)
    else:
        _print_presets(out, [preset], client)
    return EXIT_OK


def cmd_presets_delete(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    return delete(args, client, out, "preset", args.name)


def cmd_presets_go(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    """A batch of one ``goto_preset`` to the pan-tilt (its id from ``GET /cameras``), followed."""
    device_id = client.get("/cameras")["pantilt"]["device_id"]
    request = {
        "target_id": "entity",
        "device_id": device_id,
        "command_id": GOTO_PRESET,
        "args": {"preset": args.name},
    }
    answer = client.post("/process-request", {"requests": [request]}, params={"wait": "false"})
    job_id = answer["job_id"]
    if not args.json:
        err.write(f"job {job_id} submitted\n")
    progress = JobProgress(err, None, enabled=not args.quiet)
    try:
        job = follow(client, job_id, progress, GO_MAX_WAIT_S)
    finally:
        progress.close()
    if args.json:
        print_json(out, job)
    if job.get("status") != "succeeded":
        error = job.get("error") or {}
        err.write(f"rigcli: job {job.get('status')}: {error.get('message', 'no reason given')}\n")
        return EXIT_JOB_FAILED
    if not args.json:
        pose = job.get("final_pose") or {}
        out.write(
            f"at preset {args.name}: pan {deg(pose.get('pan_deg_x100'))}, "
            f"tilt {deg(pose.get('tilt_deg_x100'))}  (job {job_id} succeeded)\n"
        )
    return EXIT_OK
