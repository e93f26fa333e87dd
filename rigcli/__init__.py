"""rigcli: the command-line client of the rigcapture service (``python -m rigcli --help``).

It talks to the service only through its public HTTP API, with ``requests``.
"""

from __future__ import annotations

from rigcli.cli import main

__all__ = ["main"]
