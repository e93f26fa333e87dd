"""The operators' dashboard and the read-only views it needs: live thumbnails and the session gallery.

Routes (all but ``/`` need the token when ``api.token`` is set; see ``api._check_token``):

==========================================  ====================================================
``GET /``                                   the dashboard page (plain HTML, CSS and JavaScript)
``GET /cameras``                            configured cameras, their zoom command, form limits
``GET /cameras/<id>/live.jpg`` (``.png``)   the newest frame, downscaled (``?max=`` longest side)
``GET /sessions``                           sessions, newest first (``?limit=``, ``?offset=``)
``GET /sessions/<id>``                      the session's ``session.json`` as written
``GET /sessions/<id>/files/<file>``         a frame file as written (``?view=1``: 8-bit PNG)
``GET /sessions/<id>/thumbs/<file>``        a small 8-bit JPEG of a frame (``?size=``)
``GET /sessions/<id>.zip``                  the session folder as a zip, streamed, stored
==========================================  ====================================================

Paths are checked before any file is opened: a session id must name a folder directly inside
``save_dir`` (not a symlink), and a file must resolve to a regular file inside that folder, so
``..``, absolute paths and symlinks pointing out are refused. Errors use the one error shape.

Mono frames are shown through :func:`camera.display.display_8bit` with the camera's ``display``
settings (a fixed range and colour map) or, without them, the 2nd–98th percentile stretch;
encoded (JPEG/PNG) live frames no larger than the requested size are passed through byte for byte.

Beside it: the gallery's session summaries (``api.session_summaries``), the zip stream
(``api.session_zip``) and this blueprint's part of the OpenAPI description (``api.dashboard_openapi``).
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, NoReturn

import cv2
import numpy as np
import numpy.typing as npt
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from PIL import Image

from api.context import paths, rig, session_catalog, settings, uploads
from api.contract import query_int
from api.dashboard_openapi import OPENAPI_PATHS
from api.download_limits import limited, limited_if_streamed
from api.errors import error_body
from api.fleet import fleet_page
from api.session_folders import listed_names as _session_names
from api.session_folders import session_dir as _session_dir
from api.session_summaries import catalog_fields, summaries
from api.session_zip import walk, zip_stream
from camera.display import display_8bit
from camera.frames import Frame, encoded_kind
from rigcore.config import Config, DisplayConfig
from sessions.catalog import CatalogUnavailable, FilterError, Page, query_from_params
from sessions.folders import SESSION_ID as _SESSION_ID
from sessions.image_codecs import frame_to_array, read_tiff
from sessions.manifest import (
    MANIFEST_NAME,
    ManifestError,
    has_manifest,
)
from sessions.report import REPORT_NAME, refresh_report, zoom_fields_of

bp = Blueprint("dashboard", __name__)

LIVE_MAX_DEFAULT = 640  # longest side of a live thumbnail unless ?max= says otherwise
THUMB_SIZE_DEFAULT = 160
SIZE_LIMITS = (32, 4096)  # ?max= and ?size= are clamped to this
JPEG_QUALITY = 80
SESSIONS_PAGE_DEFAULT, SESSIONS_PAGE_MAX = 20, 200
# Bound of the thumbnail cache (summaries: api.session_summaries); the least recently used goes.
THUMB_CACHE_BYTES = 32 * 1024 * 1024

_MIMETYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".json": "application/json",
}
_BROWSER_IMAGES = frozenset({".jpg", ".jpeg"})  # always 8-bit: ?view=1 passes them through


@bp.record_once
def _document(state: BlueprintSetupState) -> None:
    state.app.extensions.setdefault("openapi_paths", {}).update(OPENAPI_PATHS)


# -- the page --------------------------------------------------------------------------------------
@bp.get("/")
def page() -> ResponseReturnValue:
    static = Path(current_app.static_folder or "")
    # A version in the asset URLs, so a browser never runs a new page with an old script: the
    # page's import map gives every module (static/js/*.js) its versioned URL.
    scripts = sorted((static / "js").glob("*.js"))
    stamps = [int(p.stat().st_mtime) for p in [static / "dashboard.css", *scripts] if p.exists()]
    version = max(stamps, default=0)
    modules = {
        url_for("static", filename=f"js/{p.name}"): url_for("static", filename=f"js/{p.name}", v=version)
        for p in scripts
    }
    resp = Response(render_template("dashboard.html", version=version, modules=modules))
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/cameras")
def cameras() -> ResponseReturnValue:
    """What the capture form and the command-line client need to build a batch: for each axis and
    zoom, the configured positioning command that drives it (commands are configuration)."""
    in_force = settings().in_force()
    cfg, layout = in_force.config, in_force.layout
    pan = _positioning(cfg, layout.command_for(layout.pan_field))
    tilt = _positioning(cfg, layout.command_for(layout.tilt_field))
    out = [
        {
            "camera_id": cam_id,
            "pixel_format": cam.pixel_format,
            "zoom": _positioning(cfg, layout.command_for(cam.zoom_field)) if cam.zoom_field else None,
        }
        for cam_id, cam in cfg.cameras.items()
    ]
    return jsonify(
        {
            "cameras": out,
            "pantilt": {
                "device_id": layout.pantilt_id,
                "pan": pan,
                "tilt": tilt,
                "pan_range_x100": [pan["min"], pan["max"]] if pan else None,
                "tilt_range_x100": [tilt["min"], tilt["max"]] if tilt else None,
            },
            "recording": {
                "command_id": cfg.recording.command_id,
                "max_duration_s": cfg.recording.max_duration_s,
            },
        }
    )


def _positioning(cfg: Config, command_id: str | None) -> dict[str, Any] | None:
    """A positioning command as the form needs it, or None when none drives that field."""
    if command_id is None:
        return None
    spec = cfg.positioning_commands[command_id]
    return {
        "command_id": command_id,
        "arg": spec.arg,
        "field": spec.field,
        "min": spec.min,
        "max": spec.max,
        "integer": spec.integer,
    }


# -- live thumbnails -------------------------------------------------------------------------------
# Which frame a cached thumbnail was made from, and with which display settings (PUT /config may
# change them). Frames of one message share their arrival time, so the camera's own index and
# timestamp tell them apart.
_FrameKey = tuple[float, int | None, int | None, DisplayConfig | None]


class _LiveCache:
    """The last thumbnail made per (camera, format, size), so several viewers cost one encode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Bounded by the configured cameras x 2 formats x the sizes asked for; capped at 64 entries.
        self._items: OrderedDict[tuple[str, str, int], tuple[_FrameKey, bytes, str]] = OrderedDict()

    def get(self, key: tuple[str, str, int], frame: _FrameKey) -> tuple[bytes, str] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != frame:
                return None
            return item[1], item[2]

    def put(self, key: tuple[str, str, int], frame: _FrameKey, data: bytes, mimetype: str) -> None:
        with self._lock:
            self._items[key] = (frame, data, mimetype)
            self._items.move_to_end(key)
            while len(self._items) > 64:
                self._items.popitem(last=False)


_live_cache = _LiveCache()


@bp.get("/cameras/<camera_id>/live.<ext>")
def live(camera_id: str, ext: str) -> ResponseReturnValue:
    """The camera's newest frame as a small 8-bit image (mono stretched), or 404 if none came yet."""
    service = rig()
    if ext not in ("jpg", "png"):
        _fail(404, f"no such image type .{ext}: ask for live.jpg or live.png")
    if camera_id not in service.config.cameras:
        _fail(404, f"unknown camera {camera_id!r}; configured: {', '.join(sorted(service.config.cameras))}")
    frame = service.latest_frame(camera_id)
    if frame is None:
        _fail(404, f"no frame received from {camera_id} yet")
    max_side = _size_arg("max", LIVE_MAX_DEFAULT)
    key = (camera_id, ext, max_side)
    display = service.config.cameras[camera_id].display
    which = (frame.received_mono, frame.frame_index, frame.timestamp_ns, display)
    cached = _live_cache.get(key, which)
    if cached is None:
        cached = _live_image(frame, ext, max_side, display)
        _live_cache.put(key, which, *cached)
    data, mimetype = cached
    resp = Response(data, mimetype=mimetype)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Received-At"] = f"{frame.received_at:.3f}"
    resp.headers["X-Frame-Size"] = f"{frame.width}x{frame.height}"
    resp.headers["X-Pixel-Format"] = frame.pixel_format
    if frame.frame_index is not None:
        resp.headers["X-Frame-Index"] = str(frame.frame_index)
    return resp


def _live_image(frame: Frame, ext: str, max_side: int, display: DisplayConfig | None) -> tuple[bytes, str]:
    if frame.pixel_format == "encoded":
        kind = encoded_kind(frame.pixels)
        if kind is not None and max(frame.width, frame.height) <= max_side:
            return frame.pixels, _MIMETYPES[f".{kind}"]  # passed through, byte for byte
        img = _decode(frame.pixels, reduce_to=max_side)
        return _encode(_for_display(_fit(img, max_side), display), ext)
    arr = frame_to_array(frame)  # RGB order for colour
    small = _fit(arr, max_side)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)  # cv2 encodes BGR
    return _encode(display_8bit(small, display, bgr=True), ext)


# -- sessions --------------------------------------------------------------------------------------
@bp.get("/sessions")
def sessions() -> ResponseReturnValue:
    """Sessions in ``save_dir``, newest first, one page of summaries, filtered (``?camera=``,
    ``?status=``, ``?since=``, ``?until=``, ``?scan_id=``, ``?pan_min=`` …, ``?q=``); ``total`` counts
    the sessions matching. Answered from the catalog (sessions.catalog); while the catalog is first
    built, an unfiltered page is listed from the folders as before, and a filtered one comes from the
    part indexed so far with ``"partial": true``. ``"catalog"`` says which."""
    save_dir = paths().save_dir
    limit = query_int("limit", SESSIONS_PAGE_DEFAULT, 1, SESSIONS_PAGE_MAX)
    offset = query_int("offset", 0)  # clamped: a huge one never reaches SQLite as an overflow
    try:
        filters = query_from_params(request.args, settings().config.cameras)
    except FilterError as exc:
        details = [{"index": None, "field": exc.param, "message": str(exc)}]
        return jsonify(error_body(f"bad filter {exc}", details)), 400
    fleet = fleet_page(filters, limit, offset)  # ?node=: the fleet's sessions (api.fleet)
    if fleet is not None:
        return fleet
    catalog = session_catalog()
    page: Page | None = None
    if catalog.state != "building" or filters.filtered():
        try:
            page = catalog.query(filters, limit, offset)
        except CatalogUnavailable as exc:
            if filters.filtered():
                resp = jsonify(error_body(f"sessions cannot be filtered now: {exc}; try again shortly"))
                resp.headers["Retry-After"] = "5"
                return resp, 503
    if page is None:  # the folders, as before the catalog
        names = _session_names(save_dir)
        listed = [summaries.summary(save_dir / name) for name in names[offset : offset + limit]]
        return jsonify(
            {
                "sessions": listed,
                "total": len(names),
                "offset": offset,
                "limit": limit,
                "catalog": catalog.state,
            }
        )
    listed = [{**summaries.summary(save_dir / row.session_id), **catalog_fields(row)} for row in page.rows]
    return jsonify(
        {
            "sessions": listed,
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "catalog": catalog.state,
            "partial": catalog.state == "building",
        }
    )


@bp.get("/sessions/<session_id>")
def session_manifest(session_id: str) -> ResponseReturnValue:
    """session.json as written (its keys in its order), with "upload": the session's upload state
    (service.uploads; null when it was never queued for the object store)."""
    upload = uploads().session_state(session_id) if _SESSION_ID.fullmatch(session_id) else None
    gone = not (paths().save_dir / session_id).exists()
    if upload is not None and upload["state"] == "local-deleted" and gone:
        where = upload.get("location") or "the object store"
        message = f"session {session_id} was deleted here after its upload to {where}"
        return jsonify(error_body(message, upload=upload)), 404
    folder = _session_dir(session_id)
    if not has_manifest(folder):  # never served through a link out of the session
        _fail(404, f"session {session_id} has no {MANIFEST_NAME} yet (still recording, or interrupted)")
    try:
        data = json.loads((folder / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):  # not the format: served as it is, for the reader to see
        return send_file(folder / MANIFEST_NAME, mimetype="application/json", conditional=True, max_age=0)
    data["upload"] = upload
    resp = Response(json.dumps(data, ensure_ascii=False), mimetype="application/json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/sessions/<session_id>/files/<path:file>")
@limited_if_streamed  # a byte range holds a request thread while it is sent (api.download_limits)
def session_file(session_id: str, file: str) -> ResponseReturnValue:
    """A file of the session as written; ``?view=1`` turns a frame into an 8-bit PNG a browser shows."""
    path = _session_file(_session_dir(session_id), file)
    suffix = path.suffix.lower()
    if request.args.get("view") in ("1", "true") and suffix in _MIMETYPES and suffix != ".json":
        if suffix in _BROWSER_IMAGES:
            return _send(path, suffix)
        data, mimetype = _encode(_for_display(_read_image(path), _display_of(file)), "png")
        resp = Response(data, mimetype=mimetype)
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp
    return _send(path, suffix)


# A gallery thumbnail's file, mtime, size and the display settings it was made with.
_ThumbKey = tuple[str, int, int, DisplayConfig | None]


class _ThumbCache:
    """Gallery thumbnails by (file, mtime, size, display); bounded in bytes, least recently used dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[_ThumbKey, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: _ThumbKey) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: _ThumbKey, data: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > THUMB_CACHE_BYTES and self._items:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)


_thumbs = _ThumbCache()


@bp.get("/sessions/<session_id>/thumbs/<path:file>")
def session_thumb(session_id: str, file: str) -> ResponseReturnValue:
    path = _session_file(_session_dir(session_id), file)
    if path.suffix.lower() not in _MIMETYPES or path.suffix.lower() == ".json":
        _fail(404, f"{file} is not an image")
    size = _size_arg("size", THUMB_SIZE_DEFAULT)
    st = path.stat()
    display = _display_of(file)
    key = (str(path), st.st_mtime_ns, size, display)
    data = _thumbs.get(key)
    if data is None:
        data, _ = _encode(_for_display(_fit(_read_image(path, reduce_to=size), size), display), "jpg")
        _thumbs.put(key, data)
    resp = Response(data, mimetype="image/jpeg")
    # Frame files never change once written: the browser may keep the thumbnail.
    resp.headers["Cache-Control"] = "private, max-age=86400"
    return resp


@bp.get("/sessions/<session_id>/report")
def session_report(session_id: str) -> ResponseReturnValue:
    """The session's report page (sessions.report): ``report.html`` from the folder when it is there and
    no older than ``session.json``, else built now and written there for the next time."""
    folder = _session_dir(session_id)
    if not has_manifest(folder):
        _fail(404, f"session {session_id} has no {MANIFEST_NAME} yet (still recording, or interrupted)")
    try:
        page = refresh_report(folder, zoom_fields_of(settings().config))
    except ManifestError as exc:
        _fail(409, f"session {session_id} has no report: {exc}")
    if page is None:  # report.html is current
        resp = send_file(folder / REPORT_NAME, mimetype="text/html", conditional=True, max_age=0)
    else:
        resp = Response(page, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/sessions/<session_id>.zip")
@limited  # holds a request thread while it is sent (api.download_limits)
def session_zip(session_id: str) -> ResponseReturnValue:
    """The session folder as a zip, streamed while it is made; files stored, not compressed (frames
    are already compressed PNG/JPEG, and storing keeps the download at disk speed)."""
    folder = _session_dir(session_id)
    files = list(walk(folder))
    resp = Response(zip_stream(session_id, files), mimetype="application/zip")
    resp.headers["Content-Disposition"] = f'attachment; filename="{session_id}.zip"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- path checks -----------------------------------------------------------------------------------
def _session_file(folder: Path, file: str) -> Path:
    """A regular file inside ``folder``: relative, no ``..``, not leaving it through a symlink."""
    parts = file.split("/")
    if (
        not file
        or file.startswith("/")
        or "\\" in file
        or "\x00" in file
        or ":" in parts[0]  # a Windows drive
        or any(p in ("", ".", "..") for p in parts)
    ):
        _fail(400, f"bad file path {file!r}: give a path relative to the session folder, without '..'")
    try:
        real = (folder / file).resolve(strict=True)
    except (OSError, RuntimeError):
        _fail(404, f"no file {file} in session {folder.name}")
    if not real.is_relative_to(folder) or not real.is_file():
        _fail(404, f"no file {file} in session {folder.name}")
    return real


def _send(path: Path, suffix: str) -> ResponseReturnValue:
    mimetype = _MIMETYPES.get(suffix, "application/octet-stream")
    resp = send_file(path, mimetype=mimetype, conditional=True, max_age=3600)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


def _fail(status: int, message: str) -> NoReturn:
    # Rendered by the app's HTTPException handler in the one error shape.
    abort(status, description=message)


def _size_arg(name: str, default: int) -> int:
    return query_int(name, default, *SIZE_LIMITS)


# -- images ----------------------------------------------------------------------------------------
def _decode(data: bytes, reduce_to: int | None = None) -> npt.NDArray[Any]:
    """Decode a JPEG/PNG/TIFF at its own bit depth (cv2 order: BGR). For a JPEG at least twice as large
    as ``reduce_to``, libjpeg scales it down by 2, 4 or 8 while decoding (far cheaper than decoding
    it whole and resizing)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED
    if reduce_to is not None and encoded_kind(data) == "jpg":
        try:
            with Image.open(io.BytesIO(data)) as probe:  # reads the header only
                factor = max(probe.size) / reduce_to
        except (OSError, ValueError):
            factor = 1.0
        for step, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4)):
            if factor >= step:
                flags = flag
                break
        else:
            if factor >= 2:
                flags = cv2.IMREAD_REDUCED_COLOR_2
    tiff = read_tiff(data)  # None unless a TIFF: OpenCV's libtiff cannot decode "fast" (Zstandard) ones
    if tiff is not None:
        bgr: npt.NDArray[Any] = cv2.cvtColor(tiff, cv2.COLOR_RGB2BGR) if tiff.shape[2:] == (3,) else tiff
        return bgr
    img = cv2.imdecode(buf, flags)
    if img is None:
        raise ValueError("not a readable image")
    result: npt.NDArray[Any] = img
    return result


def _read_image(path: Path, reduce_to: int | None = None) -> npt.NDArray[Any]:
    try:
        return _decode(path.read_bytes(), reduce_to)
    except ValueError:
        _fail(415, f"{path.name} is not an image this service can show")


def _for_display(img: npt.NDArray[Any], display: DisplayConfig | None = None) -> npt.NDArray[np.uint8]:
    """8 bits for a browser (BGR, as cv2 encodes): mono through the camera's ``display`` settings or
    stretched, 16-bit colour stretched, 8-bit colour as it is."""
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return display_8bit(img, display, bgr=True)


def _display_of(file: str) -> DisplayConfig | None:
    """The display settings of the camera a session file belongs to (``<camera_id>/…``); None for a
    preview (already an 8-bit display copy) or a folder that names no configured camera."""
    camera_id, _, rest = file.partition("/")
    camera = settings().config.cameras.get(camera_id)
    if camera is None or rest.startswith("previews/"):
        return None
    return camera.display


def _fit(img: npt.NDArray[Any], max_side: int) -> npt.NDArray[Any]:
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small: npt.NDArray[Any] = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return small


def _encode(img: npt.NDArray[np.uint8], ext: str) -> tuple[bytes, str]:
    """An 8-bit image (grey, or BGR) as PNG or JPEG bytes, and its mimetype."""
    if ext == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        mimetype = "image/png"
    else:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        mimetype = "image/jpeg"
    if not ok:
        raise ValueError(f"could not encode a {ext} image")
    return bytes(buf), mimetype
