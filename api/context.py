"""The capture service behind the app, for every blueprint (create_app puts it in app.extensions)."""

from __future__ import annotations

from flask import current_app

from service.capture import CaptureService


def capture_service() -> CaptureService:
    service: CaptureService = current_app.extensions["capture"]
    return service
