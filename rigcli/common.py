"""What every rigcli command shares: plain-text tables and times, cameras named by a part of their id,
zoom values, degrees on the command line and hundredths of a degree on the wire."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO
from urllib.parse import quote

from rigcli.client import EXIT_JOB_FAILED, EXIT_OK, ApiClient, RequestRejected, ServiceUnavailable
from rigcli.progress import JobProgress
from rigcli.progress import zoom_text as zoom_text  # with the other zoom helpers here

# A command's handler: (parsed arguments, client, stdout, stderr) -> exit code.
Handler = Callable[[Any, ApiClient, TextIO, TextIO], int]

# Options whose value may start with "-" and is not a plain number ("-10:10:5", "-10,5"): argparse
# would take such a value for an option. main() glues them to their option ("--pan=-10:10:5").
POLL_EVERY_S = 0.25  # a job
# While following a job or a scan, connection trouble is retried for this long before giving up (exit 3).
POLL_RETRY_S = 15.0

_GLUED_OPTIONS = frozenset({"--pan", "--tilt", "--pose"})
_NEGATIVE_VALUE = re.compile(r"^-[0-9.]")


def glue_negative_values(argv: Sequence[str]) -> list[str]:
    """``--pan -10:10:5`` as ``--pan=-10:10:5``, which argparse reads as meant."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg in _GLUED_OPTIONS and i + 1 < len(items) and _NEGATIVE_VALUE.match(items[i + 1]):
            out.append(f"{arg}={items[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def x100(degrees: float) -> int:
    """Degrees as the service's whole hundredths of a degree."""
    return round(degrees * 100)


# -- degrees on the command line -------------------------------------------------------------------
FULL_TURN = 360.0  # no angle option goes beyond: a larger number is hundredths typed as degrees


def parse_degrees(text: str, what: str) -> float:
    """``text`` as degrees (decimals welcome). ``what`` is the option as typed (``--pan 4500``), which
    the error repeats; beyond a full turn is refused with the hint that it looks like hundredths."""
    try:
        value = float(text)
    except ValueError:
        raise RequestRejected(f"{what}: {text!r} is not a number of degrees") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise RequestRejected(f"{what}: {text!r} is not a number of degrees")
    if abs(value) > FULL_TURN:
        raise RequestRejected(
            f"{what}: {text} degrees is more than a full turn; it looks like hundredths of a degree: "
            f"rigcli takes degrees, e.g. {value / 100:g} for {text} hundredths"
        )
    return value


def degree_option(option: str, text: str | None) -> float | None:
    """The degrees of ``option`` (``--pan``) given as ``text``, or None when it was not given."""
    return None if text is None else parse_degrees(text, f"{option} {text}")


def check_within(what: str, degrees: float, axis: str, bounds_x100: Any) -> None:
    """Refuse (before any request) ``degrees`` outside the ``[min, max]`` hundredths ``GET /cameras``
    gives for ``axis`` (``pan_range_x100``), speaking of degrees as the option was typed."""
    if not isinstance(bounds_x100, list | tuple) or len(bounds_x100) != 2:
        return
    low, high = (b / 100 if isinstance(b, int | float) else None for b in bounds_x100)
    if (low is not None and degrees < low) or (high is not None and degrees > high):
        span = f"{'-inf' if low is None else f'{low:g}'} to {'inf' if high is None else f'{high:g}'}"
        raise RequestRejected(f"{what}: {degrees:g} degrees is beyond the rig's {axis} range, {span} degrees")


# -- cameras by a part of their id -----------------------------------------------------------------
def add_cameras_option(parser: argparse.ArgumentParser, required: bool, default_text: str) -> None:
    """``--cameras``, the same for every command: space or comma separated (``swir rgb``,
    ``swir,rgb``), each a short name or any part of one id (``swir``, ``lw``)."""
    parser.add_argument(
        "--cameras",
        nargs="+",
        required=required,
        metavar="CAM",
        help="cameras, space or comma separated; a short name or a part of an id is enough "
        f"(swir rgb, lw){default_text}",
    )


def camera_names(values: Sequence[str] | None) -> list[str]:
    """``--cameras swir rgb`` and ``--cameras swir,rgb`` alike: the names given."""
    return [name for item in values or () for name in split(item)]


def resolve_camera(name: str, cameras: Sequence[str]) -> str:
    """An exact id, or the one id that contains ``name`` (case-insensitive); else a usage error."""
    if name in cameras:
        return name
    matches = [c for c in cameras if name.lower() in c.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = ", ".join(short_cam(c) for c in cameras)
        raise RequestRejected(f"no camera matches {name!r}; cameras: {names}")
    raise RequestRejected(f"{name!r} matches several cameras ({', '.join(matches)}); say which")


def zoom_names(cameras: list[dict[str, Any]]) -> dict[str, str]:
    """Camera id -> the name of its zoom value as configured (``zoom_step``), from ``GET /cameras``."""
    return {
        str(c.get("camera_id")): str(c["zoom"].get("arg") or c["zoom"].get("field"))
        for c in cameras
        if isinstance(c.get("zoom"), dict)
    }


def parse_zoom(cameras: list[dict[str, Any]], item: str) -> tuple[str, dict[str, Any], float | int]:
    """One ``--zoom CAMERA=VALUE`` against ``GET /cameras``: the camera id, its zoom command, the value."""
    name, sep, raw = item.partition("=")
    if not sep or not raw:
        raise RequestRejected(f"--zoom {item!r}: write CAMERA=VALUE, e.g. rgb=4")
    camera = resolve_camera(name.strip(), [c["camera_id"] for c in cameras])
    zoom = next(c.get("zoom") for c in cameras if c["camera_id"] == camera)
    if not zoom:
        raise RequestRejected(f"--zoom: {camera} has no zoom lens")
    return camera, zoom, zoom_value(item, raw, camera, zoom)


def zoom_value(item: str, raw: str, camera: str, zoom: dict[str, Any]) -> float | int:
    try:
        value = float(raw)
    except ValueError:
        raise RequestRejected(f"--zoom {item!r}: {raw!r} is not a number") from None
    if not zoom["integer"]:
        return value
    if not value.is_integer():
        raise RequestRejected(f"--zoom {item!r}: {camera} takes a whole {zoom['arg']}")
    return int(value)


def choose_cameras(client: ApiClient, names: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The camera ids ``names`` stand for (each a part of an id is enough), and ``GET /cameras``."""
    info: dict[str, Any] = client.get("/cameras")
    cameras = [c["camera_id"] for c in info["cameras"]]
    chosen = [resolve_camera(name, cameras) for name in names]
    if not chosen:
        raise RequestRejected("--cameras names no camera")
    twice = sorted({c for c in chosen if chosen.count(c) > 1})
    if twice:
        raise RequestRejected(f"--cameras names {', '.join(twice)} more than once")
    return chosen, info


# -- times on the command line ---------------------------------------------------------------------
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_AGE_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TIME_FORMS = "an ISO 8601 date or time (2026-12-06, 2026-12-06T14:30), an age (30m, 2h, 3d) or epoch seconds"


def parse_time(option: str, text: str, now: float | None = None) -> float:
    """``--since``/``--until`` as epoch seconds: an ISO 8601 date or date and time (without a zone:
    this computer's local time), an age back from now (``30m``, ``2h``, ``3d``, ``1w``), or epoch
    seconds. The service reads the same forms, but a time without a zone is the caller's here."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number == number and 0 <= number < float("inf"):
            return number
        raise RequestRejected(f"{option} {text}: not {TIME_FORMS}")
    age = _AGE.fullmatch(text)
    if age is not None:
        return (time.time() if now is None else now) - float(age[1]) * _AGE_UNIT_S[age[2].lower()]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RequestRejected(f"{option} {text}: not {TIME_FORMS}") from None
    return (moment.astimezone() if moment.tzinfo is None else moment).timestamp()


def poll(client: ApiClient, path: str, trouble_since: float | None) -> tuple[Any, float | None]:
    """GET ``path`` while following something: ``(answer, None)``, or ``(None, since)`` while the
    service cannot be reached (for up to POLL_RETRY_S); an answer that says no raises at once."""
    try:
        return client.get(path), None
    except ServiceUnavailable as exc:
        answered = isinstance(exc.body, dict)  # the service said no: retrying will not help
        if answered or (trouble_since is not None and time.monotonic() - trouble_since > POLL_RETRY_S):
            raise
        return None, trouble_since or time.monotonic()


def follow(client: ApiClient, job_id: str, progress: JobProgress, max_wait: float) -> dict[str, Any]:
    """Poll the job until it is done; brief connection trouble is retried, not fatal."""
    deadline = time.monotonic() + max_wait
    trouble_since: float | None = None
    while True:
        job, trouble_since = poll(client, f"/jobs/{quote(job_id, safe='')}", trouble_since)
        if job is None:
            time.sleep(1.0)
            continue
        progress.update(job)
        if job.get("phase") == "done" or job.get("status") in ("succeeded", "failed", "cancelled"):
            result: dict[str, Any] = job
            return result
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"job {job_id} is still {job.get('phase')} after {max_wait:.0f} s; stopped following "
                f"(it goes on: python -m rigcli jobs)"
            )
        time.sleep(POLL_EVERY_S)


def path_of(*parts: str) -> str:
    """``/presets/<name>``: each part quoted for a URL path."""
    return "".join("/" + quote(p, safe="") for p in parts)


# -- formatting ------------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    """Plain-text columns; ``right`` are the indices of right-aligned (numeric) columns."""
    right = right or set()
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return [fmt(headers)] + [fmt(r) for r in rows]


def deg(x100: Any) -> str:
    return f"{x100 / 100:.2f} deg" if isinstance(x100, int | float) else "?"


def when(epoch: Any) -> str:
    """Epoch seconds as a local ISO 8601 time to the second: ``2026-11-23T20:30:16``."""
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return "-"
    return dt.datetime.fromtimestamp(epoch).isoformat(timespec="seconds")


def iso(epoch: Any) -> str:
    """Epoch seconds as a local ISO 8601 time to the millisecond: ``2026-11-23T20:30:16.412``."""
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return "-"
    return dt.datetime.fromtimestamp(epoch).isoformat(timespec="milliseconds")


def iso_span(start: Any, end: Any) -> str:
    """``<start> to <end>`` in local ISO 8601; the end's date is left out when it is the start's
    (plain ASCII, as every rigcli line: a Windows console may not print an arrow)."""
    a, b = iso(start), iso(end)
    if b == "-":
        return a
    return f"{a} to {b[11:] if a[:10] == b[:10] else b}"


def short_cam(camera_id: Any) -> str:
    """``cameradevice_lwir_1`` as ``lwir_1``."""
    return str(camera_id).removeprefix("cameradevice_")


def ago(epoch: Any, now: float | None = None) -> str:
    """``2026-11-30T05:10:00 (in 4 min)`` / ``(3 s ago)``: a time and how far it is from now."""
    if not isinstance(epoch, int | float):
        return "-"
    delta = epoch - (time.time() if now is None else now)
    span = _span(abs(delta))
    return f"{when(epoch)} ({'in ' + span if delta >= 0 else span + ' ago'})"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def clip(text: str, width: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def print_json(out: TextIO, data: Any) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    out.flush()


def show(json_wanted: bool, out: TextIO, data: Any, lines: Callable[[Any], list[str]]) -> int:
    """Print ``data`` as JSON, or as the lines ``lines`` makes of it. 0."""
    if json_wanted:
        print_json(out, data)
    else:
        out.write("\n".join(lines(data)) + "\n")
    return EXIT_OK


def submitted(
    json_wanted: bool, follow_it: bool, streams: tuple[TextIO, TextIO], noun: str, answer: dict[str, Any]
) -> bool:
    """Say what was queued: its id alone (or the answer as JSON) when not following it, else a line on
    ``err``. True when the caller goes on to follow it."""
    out, err = streams
    ident = str(answer[f"{noun}_id"])
    if not follow_it:
        if json_wanted:
            print_json(out, answer)
        else:
            out.write(f"{ident}\n")
        return False
    if not json_wanted:
        err.write(f"{noun} {ident} submitted\n")
    return True


def outcome(noun: str, thing: dict[str, Any], err: TextIO) -> int:
    """The exit code of a followed job or scan: 0 when it succeeded, else 1 with its reason on ``err``."""
    if thing.get("status") == "succeeded":
        return EXIT_OK
    error = thing.get("error") or {}
    err.write(f"rigcli: {noun} {thing.get('status')}: {error.get('message', 'no reason given')}\n")
    return EXIT_JOB_FAILED


def add_command(sub: Any, common: argparse.ArgumentParser, name: str, text: str) -> Any:
    """One rigcli command (or action): the common options, and its help ``text`` (:func:`help_parts`)."""
    short, description, epilog = help_parts(text)
    return sub.add_parser(
        name,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help=short,
        description=description,
        epilog=epilog,
    )


def help_parts(text: str) -> tuple[str, str | None, str | None]:
    """A command's help, written as ``--help`` shows it, as (help, description, epilog): the first
    paragraph is the one-line help ``rigcli --help`` lists, the second the description (each joined
    on one line, as it is printed), the rest the epilog (notes and examples) as written. Two blank
    lines after the first paragraph: no description; one paragraph alone: the help only."""
    short, _, rest = text.partition("\n\n")
    if rest.startswith("\n"):  # an empty second paragraph
        rest = "\n" + rest
    description, _, epilog = rest.partition("\n\n")
    return one_line(short), one_line(description) or None, epilog or None


Notes = Callable[[dict[str, Any]], list[str]]
NOTE_INDENT = "    "


def noted_table(
    headers: list[str], items: list[dict[str, Any]], row: Callable[[dict[str, Any]], list[str]],
    notes: Notes | None = None, right: set[int] | None = None,
) -> list[str]:  # fmt: skip
    """A table whose rows may each be followed by indented lines of their own (an error's reason,
    whole: a column would cut it)."""
    lines = table(headers, [row(item) for item in items], right=right)
    if notes is None:
        return lines
    out = lines[:1]
    for item, line in zip(items, lines[1:], strict=True):
        out.append(line)
        out += [NOTE_INDENT + note for note in notes(item)]
    return out


def listing(
    json_wanted: bool,
    out: TextIO,
    key: str,
    items: list[dict[str, Any]],
    columns: tuple[list[str], Callable[[dict[str, Any]], list[str]]],
    right: set[int] | None = None,
    notes: Notes | None = None,
) -> int:
    """A list command's output: ``{key: items}`` as JSON, or a table of ``columns`` (headers, and the
    row of one item), each row followed by its ``notes`` (an error's reason, never cut)."""
    if json_wanted:
        print_json(out, {key: items})
        return EXIT_OK
    headers, row = columns
    out.write("\n".join(noted_table(headers, items, row, notes, right)) + "\n")
    return EXIT_OK


def one_line(text: Any) -> str:
    """``text`` on one line (runs of white space as one space), whole."""
    return " ".join(str(text).split())


# The service's answers point at its API; rigcli's user is pointed at the command that does the same.
_API_TO_CLI = (
    ("GET /presets", "rigcli presets"),
    ("GET /scans", "rigcli scan list"),
    ("GET /sessions", "rigcli sessions"),
    ("GET /jobs", "rigcli jobs"),
    ("GET /history", "rigcli history"),
    ("GET /events", "rigcli events"),
    ("GET /schedules", "rigcli schedules"),
    ("GET /status", "rigcli status"),
)


def cli_words(text: str) -> str:
    """A message of the service as rigcli says it: ``GET /presets lists them`` as ``rigcli presets
    lists them``."""
    for api, cli in _API_TO_CLI:
        text = re.sub(re.escape(api) + r"(?![\w/])", cli, text)
    return text


def problem_lines(body: Any) -> list[str]:
    """The problems of a refused request (its ``details``, or ``problems``), one line each:
    ``  - poses[3].pan_deg_x100: 99999 is above the maximum ...``."""
    if not isinstance(body, dict):
        return []
    found = body.get("problems") or body.get("details") or []
    lines = []
    for p in found if isinstance(found, list) else []:
        if not isinstance(p, dict):
            continue
        index, where = p.get("index"), str(p.get("field", "?"))
        if isinstance(index, int) and f"[{index}]" not in where:
            where = f"{where} (item {index})"
        message = str(p.get("message", ""))
        message = message.removeprefix(f"{p.get('field')}: ")  # some answers name the field twice
        lines.append(f"  - {where}: {cli_words(message)}")
    omitted = body.get("details_omitted")
    if isinstance(omitted, int) and omitted:
        lines.append(f"  ... and {omitted} more")
    return lines
