"""``rigcli export``: download a session as one file, MCAP for Foxglove (or the folder as a zip).

It asks the service over HTTP (``GET /sessions/<id>.mcap`` / ``.zip``), like every rigcli command,
and writes the answer to ``FILE.part`` beside the target, renamed to the target only once the whole
file is in: an MCAP must end with its magic bytes, so a transfer cut short never leaves a file that
looks complete.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import requests

from rigcli.client import (
    EXIT_OK,
    ApiClient,
    AuthError,
    CliError,
    RequestRejected,
    ServiceUnavailable,
    unreachable,
)
from rigcli.common import add_command
from rigcli.progress import ByteProgress

FORMATS = ("mcap", "zip")
MCAP_MAGIC = b"\x89MCAP0\r\n"
ZIP_MAGIC = b"PK"
DOWNLOAD_CHUNK = 1024 * 1024

TEXT = """\
download a session as MCAP (for Foxglove) or as a zip

Download a recorded session as one file: MCAP (images, pose, transforms, frame sets; opens in
Foxglove) or the session folder as a zip. Exit 2 for an unknown session.

examples:
  python -m rigcli export 20261123-203016-412 -o take1.mcap     # then open take1.mcap in Foxglove
  python -m rigcli export 20261123-203016-412 --format zip
"""


def add_export_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``export`` command to the subparsers of rigcli.cli.build_parser."""
    exp = add_command(sub, common, "export", TEXT)
    exp.add_argument("session", help="the session id (see: rigcli sessions)")
    exp.add_argument("--format", choices=FORMATS, default="mcap", help="mcap (default) or zip")
    exp.add_argument(
        "-o", "--output", metavar="FILE", help="where to write it (default: <session>.<format> here)"
    )
    exp.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace, client: ApiClient, out: TextIO, err: TextIO) -> int:
    target = Path(args.output or f"{args.session}.{args.format}")
    path = f"/sessions/{quote(args.session, safe='')}.{args.format}"
    size = download(
        client.url, path, args.token, target, client.timeout, args.format, progress=err, verify=client.verify
    )
    where = target.resolve()  # said in full: a relative name is easily looked for in the wrong folder
    if args.json:
        out.write(json.dumps({"session_id": args.session, "file": str(where), "bytes": size}) + "\n")
    else:
        out.write(f"wrote {where} ({size} bytes, {args.format})\n")
    return EXIT_OK


def download(
    url: str,
    path: str,
    token: str | None,
    target: Path,
    timeout: float,
    fmt: str,
    progress: TextIO | None = None,
    verify: str | bool = True,
) -> int:
    """GET ``url + path`` into ``target``; returns the byte count. CliError (with the service's
    answer) when it is refused, cannot be reached, or arrives incomplete. On a terminal ``progress``
    shows the bytes so far and the rate."""
    headers = {"User-Agent": "rigcli"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    part = target.with_name(f"{target.name}.part")
    try:
        answer = requests.get(f"{url}{path}", headers=headers, stream=True, timeout=timeout, verify=verify)
        with answer as resp:
            if not resp.ok:
                raise _refused(resp, path)
            size = _save(resp, part, progress)
        _check_complete(part, fmt)
        os.replace(part, target)
    except requests.RequestException as exc:  # refused, reset, timed out, or cut short
        part.unlink(missing_ok=True)
        raise ServiceUnavailable(unreachable(f"downloading {path} from {url} failed", exc)) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return size


def _save(resp: requests.Response, part: Path, progress: TextIO | None) -> int:
    size = 0
    length = resp.headers.get("Content-Length")
    shown = (
        ByteProgress(progress, f"downloading {part.stem}", int(length) if length else None)
        if progress
        else None
    )
    try:
        with open(part, "wb") as fh:
            for chunk in resp.iter_content(DOWNLOAD_CHUNK):
                fh.write(chunk)
                size += len(chunk)
                if shown is not None:
                    shown.update(size)
    finally:
        if shown is not None:
            shown.close()
    return size


def _check_complete(part: Path, fmt: str) -> None:
    with open(part, "rb") as fh:
        head = fh.read(len(MCAP_MAGIC))
        if fmt == "mcap":
            fh.seek(max(part.stat().st_size - len(MCAP_MAGIC), 0))
            complete = head == MCAP_MAGIC and fh.read() == MCAP_MAGIC
        else:
            complete = head.startswith(ZIP_MAGIC)
    if not complete:
        raise ServiceUnavailable(
            f"the {fmt} file arrived incomplete (the export failed part way); nothing written"
        )


def _refused(resp: requests.Response, path: str) -> CliError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    message = body.get("error") if isinstance(body, dict) and body.get("error") else resp.reason
    text = f"GET {path}: {resp.status_code} {message}"
    if resp.status_code in (401, 403):
        return AuthError(f"{text} (give the token with --token or RIGCAPTURE_TOKEN)", body)
    if resp.status_code in (400, 404):  # no such session: the id given is wrong
        return RequestRejected(text, body)
    return ServiceUnavailable(text, body)


__all__ = ["FORMATS", "add_export_parser", "cmd_export", "download"]
