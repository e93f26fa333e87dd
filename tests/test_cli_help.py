"""rigcli's help: one string per command, written as ``--help`` shows it, split by
rigcli.common.help_parts into the one-line help of ``rigcli --help``, the description and the epilog."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rigcli import events, export
from rigcli.common import help_parts

ROOT = Path(__file__).resolve().parent.parent


def rigcli_help(*argv: str) -> str:
    """What ``python -m rigcli ARGV --help`` prints (100 columns wide)."""
    result = subprocess.run(
        [sys.executable, "-m", "rigcli", *argv, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_help_text_splits_at_its_blank_lines() -> None:
    text = (
        "the short\nhelp\n\nThe description,\non two lines.\n\n"
        + "notes:\n  as written\n\nexamples:\n  rigcli x\n"
    )
    assert help_parts(text) == (
        "the short help",
        "The description, on two lines.",
        "notes:\n  as written\n\nexamples:\n  rigcli x\n",
    )
    # Two blank lines after the help: no description, the rest is the epilog.
    assert help_parts("the help\n\n\nnotes:\n  as written\n\nexamples:\n") == (
        "the help",
        None,
        "notes:\n  as written\n\nexamples:\n",
    )
    assert help_parts("the help alone") == ("the help alone", None, None)


def test_a_command_shows_its_description_then_its_examples_and_the_list_its_short_help() -> None:
    short, description, epilog = help_parts(export.TEXT)
    assert description is not None and epilog is not None
    shown = rigcli_help("export")
    assert description in shown.splitlines()  # one line, as argparse prints it
    assert shown.index(description) < shown.index("options:") < shown.index(epilog)
    assert shown.endswith(epilog) and "  python -m rigcli export 20261123-203016-412 --format zip\n" in epilog
    assert re.search(rf"^ +export +{re.escape(short)}$", rigcli_help(), re.MULTILINE)


def test_a_command_without_a_description_shows_its_arguments_then_its_epilog() -> None:
    shown = rigcli_help("events")
    assert shown.split("\n\n")[1].startswith("positional arguments:"), shown
    assert shown.endswith(events.EVENT_EPILOG)
