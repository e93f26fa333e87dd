"""Session folders as the HTTP routes reach them (api.dashboard, api.exports): the rules are
:mod:`sessions.folders`'; here a refused or missing session becomes a 404 in the one error shape."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from flask import abort

from api.context import capture_service
from sessions.folders import newest_first, session_folder, session_names


def session_dir(session_id: str) -> Path:
    """The folder of an existing session, directly inside save_dir (not a symlink); 404 otherwise."""
    folder = session_folder(capture_service().paths.save_dir, session_id)
    if folder is None:
        fail(404, f"no session {session_id!r}")
    return folder


def listed_names(save_dir: Path) -> list[str]:
    """The session folders in ``save_dir``, newest first."""
    return newest_first(session_names(save_dir))


def fail(status: int, message: str) -> NoReturn:
    # Rendered by the app's HTTPException handler in the one error shape.
    abort(status, description=message)


__all__ = ["fail", "listed_names", "session_dir"]
