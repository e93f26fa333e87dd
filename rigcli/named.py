"""Named things the service keeps (``/presets``, ``/schedules``): the command with its actions, and
the actions every such collection has (list, show, delete), so each command module writes only what
is its own (rigcli.presets, rigcli.schedules)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TextIO

from rigcli.client import EXIT_OK, ApiClient
from rigcli.common import add_command, path_of, print_json

Command = Callable[[argparse.Namespace, ApiClient, TextIO, TextIO], int]


def add_collection(sub: Any, common: argparse.ArgumentParser, name: str, run_list: Command, text: str) -> Any:
    """The ``name`` command (listing when given no action; its help ``text`` as rigcli.common's
    add_command takes it) and its subparsers for the actions."""
    parser = add_command(sub, common, name, text)
    parser.set_defaults(run=run_list)
    return parser.add_subparsers(dest=f"{name}_action", metavar="[ACTION]", parser_class=type(parser))


def add_action(
    actions: Any,
    common: argparse.ArgumentParser,
    action: str,
    run: Command,
    text: str,
    item: tuple[str, str] | None = None,
) -> argparse.ArgumentParser:
    """One action, with its help ``text`` (rigcli.common.add_command); ``item`` (dest, metavar): the
    positional argument naming the thing it acts on."""
    parser: argparse.ArgumentParser = add_command(actions, common, action, text)
    if item is not None:
        parser.add_argument(item[0], metavar=item[1])
    parser.set_defaults(run=run)
    return parser


def listed(
    args: argparse.Namespace, body: dict[str, Any], key: str, streams: tuple[TextIO, TextIO], empty: str
) -> list[Any] | None:
    """The items of a listing (``GET /presets``, say) to print, after the service's warning; None when
    it printed all there is to say: the whole answer (``--json``), or ``empty`` for no items."""
    out, err = streams
    if args.json:
        print_json(out, body)
        return None
    if body.get("warning"):
        err.write(f"rigcli: warning from the service: {body['warning']}\n")
    items = list(body.get(key) or [])
    if not items:
        out.write(f"{empty}\n")
        return None
    return items


def delete(args: argparse.Namespace, client: ApiClient, out: TextIO, noun: str, name: str) -> int:
    """``DELETE /<noun>s/<name>``, said in a line (or the answer with ``--json``)."""
    answer = client.delete(path_of(f"{noun}s", name))
    if args.json:
        print_json(out, answer)
    else:
        out.write(f"{noun} {name} deleted\n")
    return EXIT_OK


__all__ = ["Command", "add_action", "add_collection", "delete", "listed"]
