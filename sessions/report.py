"""The session report: ``report.html`` in the session folder, one self-contained page of plots.

Built from ``session.json`` (through :mod:`sessions.manifest`) and the state samples kept with the
session (``state.jsonl``, through :func:`sessions.state_log.read_state_log`), after the session is
saved (an aftercare hook of the capture service, never on the recording path) and on demand by
``GET /sessions/<id>/report``. The page carries everything it needs inline — the data as JSON, the
charting library (uPlot, vendored in ``report_assets/vendor/uplot``: no build step, no network), its
own script and style — so it opens from disk, with no server, wherever the session folder travels.

What it shows:

* the settle trace: pan and tilt against time with the targets and the settle point marked, from the
  pan-tilt's state samples (from the batch's first command, so the move before the settle too;
  sessions saved before ``state.jsonl``: their ``telemetry`` in the window, else the pose kept with
  each frame);
* the settle proof per device: command → start of the steady run → settle point, residuals;
* capture time per camera: how its frames' capture times were known (time sources), how late they
  arrived (the settle proof's ``delay_s``), the camera clock's verdict; the window in capture time,
  what was dropped at its edges and the wait for late frames (sessions.report_html);
* per camera the frame intervals against time and their histogram, frames per second of the
  recording: on capture times when the session has them, else camera timestamps where every frame
  has one, else arrival times;
* gaps in ``frame_index`` and stream outages (tables, and shaded on the charts);
* range-finder distance against time (state samples; else the distance kept with each frame);
* frame counts, rejected frames and their reasons, unreadable messages, write errors, problems.

Tables show degrees (the hundredths in each cell's tooltip) and a zoom with the name of its field
(``zoom_fields``: the configuration's ``cameras.<id>.zoom_field``, else the field the settle proof
names).

Numbers are computed here (numpy); the page's script only draws. Cost: see ``bench/report_bench.py``.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rigcore.atomic import write_bytes_atomic
from rigcore.config import Config, redact_url
from rigcore.state import is_number
from sessions.manifest import MANIFEST_NAME, CameraRecord, FrameRecord, SessionManifest, read_manifest
from sessions.report_html import capture_html, header_html, settle_html, tables_html
from sessions.state_log import StateRecord, read_state_log

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
REPORT_VERSION = 2  # in the page's data; bump when the page's layout or data changes
ASSETS = Path(__file__).with_name("report_assets")
UPLOT_VERSION = "1.6.32"
MAX_HISTOGRAM_BINS = 40
_DIGITS = 4  # seconds and milliseconds in the data are rounded to this many decimals

Json = dict[str, Any]


# -- files -----------------------------------------------------------------------------------------
ZoomFields = Mapping[str, str]  # camera id -> its zoom's state field (cameras.<id>.zoom_field)


def write_report(
    folder: Path, manifest: SessionManifest | None = None, zoom_fields: ZoomFields | None = None
) -> Path:
    """Build the report of the session in ``folder`` and write ``report.html`` there atomically.
    ``manifest``: the session's manifest when the caller has it (else read from the folder)."""
    if manifest is None:
        manifest = read_manifest(folder)
    path = folder / REPORT_NAME
    page = build_report(manifest, read_state_log(folder, manifest.model_extra), zoom_fields)
    write_bytes_atomic(path, [page.encode("utf-8")])
    return path


def refresh_report(folder: Path, zoom_fields: ZoomFields | None = None) -> bytes | None:
    """None when ``report.html`` is current (serve the file); else the page, built now and written to
    the folder for the next time (a folder that cannot be written still gets its page). ManifestError
    when ``session.json`` cannot be read."""
    if report_is_current(folder):
        return None
    manifest = read_manifest(folder)
    page = build_report(manifest, read_state_log(folder, manifest.model_extra), zoom_fields).encode("utf-8")
    try:
        write_bytes_atomic(folder / REPORT_NAME, [page])
    except OSError as exc:
        log.warning("cannot write %s: %s", folder / REPORT_NAME, exc)
    return page


def report_is_current(folder: Path) -> bool:
    """True when ``report.html`` exists (a regular file) and is no older than ``session.json``."""
    report, manifest = folder / REPORT_NAME, folder / MANIFEST_NAME
    if report.is_symlink() or not report.is_file():
        return False
    try:
        return report.stat().st_mtime_ns >= manifest.stat().st_mtime_ns
    except OSError:
        return False


def write_session_report(manifest: SessionManifest, folder: Path) -> None:
    """The aftercare hook: ``report.html`` for each saved session."""
    write_report(folder, manifest)


def zoom_fields_of(config: Config) -> dict[str, str]:
    """Each camera's zoom field in ``config`` (cameras without a zoom left out)."""
    return {cam: c.zoom_field for cam, c in config.cameras.items() if c.zoom_field}


def session_report_hook(zoom_fields: Callable[[], ZoomFields]) -> Callable[[SessionManifest, Path], None]:
    """The aftercare hook with the zoom fields of the configuration in force (read at each session)."""

    def hook(manifest: SessionManifest, folder: Path) -> None:
        write_report(folder, manifest, zoom_fields())

    return hook


# -- the page --------------------------------------------------------------------------------------
def build_report(
    manifest: SessionManifest, states: Sequence[StateRecord] = (), zoom_fields: ZoomFields | None = None
) -> str:
    """The report page of ``manifest`` as one HTML string; ``states``: the session's state samples
    (``read_state_log(folder, manifest.model_extra)``; none: pan, tilt and distance from the frames);
    ``zoom_fields``: each camera's zoom field, whose name says the zoom's unit."""
    data = report_data(manifest, states)
    title = f"Session {manifest.session_id}"
    # "<" escaped: the JSON cannot end the script element whatever a message in it says.
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return _TEMPLATE.format(
        title=html.escape(title),
        uplot_css=_asset("vendor/uplot/uPlot.min.css"),
        report_css=_asset("report.css"),
        uplot_js=_asset("vendor/uplot/uPlot.iife.min.js"),
        report_js=_asset("report.js"),
        data=payload,
        header=header_html(manifest, {**_settled_zoom_fields(manifest), **(zoom_fields or {})}),
        tables=tables_html(manifest, data),
        settle=settle_html(data["settle"]),
        capture=capture_html(manifest, data["capture"]),
    )


@cache
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>
{uplot_css}
{report_css}
</style>
</head>
<body>
<main>
{header}
<section id="pose"><h2>Pan and tilt</h2><div class="note" data-note="pose"></div>
<div class="chart" id="chart-pose"></div></section>
<section id="settle"><h2>Settle</h2>{settle}</section>
<section id="capture"><h2>Capture time</h2>{capture}</section>
<section id="frames"><h2>Frames per camera</h2><div class="note" data-note="frames"></div>
<div id="cameras"></div>
<h3>Frames per second</h3><div class="chart" id="chart-fps"></div></section>
<section id="range"><h2>Range finder</h2><div class="note" data-note="range"></div>
<div class="chart" id="chart-range"></div></section>
{tables}
<footer>rigcapture session report, charts by uPlot {uplot_version} (MIT License)</footer>
</main>
<script id="report-data" type="application/json">{data}</script>
<script>
{uplot_js}
</script>
<script>
{report_js}
</script>
</body>
</html>
""".replace("{uplot_version}", UPLOT_VERSION)


# -- data ------------------------------------------------------------------------------------------
def report_data(manifest: SessionManifest, states: Sequence[StateRecord] = ()) -> Json:
    """What the page's charts draw, times in seconds from the start of the recording."""
    t0 = _origin(manifest)
    samples = sorted(states, key=lambda s: s.received_at)
    return {
        "report_version": REPORT_VERSION,
        "session_id": manifest.session_id,
        "t0": t0,
        "window": [_rel(manifest.record_started_at, t0), _rel(manifest.record_ended_at, t0)],
        "settle_point": _rel(manifest.settled_at, t0),
        "pose": _pose_series(manifest, samples, t0),
        "targets": _targets(manifest),
        "settle": _settle_data(manifest, samples, t0),
        "capture": _capture_data(manifest),
        "cameras": {cam: _camera_data(cam, rec, manifest, t0) for cam, rec in manifest.cameras.items()},
        "fps": _fps_series(manifest, t0),
        "range": _range_series(manifest, samples, t0),
        "outages": [_outage(o, t0) for o in manifest.stream_outages],
        "notes": _notes(manifest, samples),
    }


def _origin(manifest: SessionManifest) -> float:
    """Time zero of every chart: the recording's start, else the first frame, else the settle point."""
    if manifest.record_started_at is not None:
        return manifest.record_started_at
    times = [t for c in manifest.cameras.values() for f in c.frames if (t := _frame_time(f))]
    if times:
        return min(times)
    return manifest.settled_at or 0.0


def _frame_time(frame: FrameRecord) -> float | None:
    """When a frame was taken on the service's clock: its capture time, else (older sessions) arrival."""
    return frame.captured_at if frame.captured_at is not None else frame.received_at


def _rel(t: Any, t0: float) -> float | None:
    return round(float(t) - t0, _DIGITS) if is_number(t) else None


def _num(v: Any) -> float | None:
    """``v`` as a float when it is a finite number (not a bool), else None."""
    return float(v) if is_number(v) else None


def _all_captured(manifest: SessionManifest) -> bool:
    frames = [f for c in manifest.cameras.values() for f in c.frames]
    return bool(frames) and all(f.captured_at is not None for f in frames)


def _frame_poses(manifest: SessionManifest) -> list[tuple[float, dict[str, Any]]]:
    """(capture time, else arrival; pose) of every frame that has both, one per time, in order."""
    seen: dict[float, dict[str, Any]] = {}
    for record in manifest.cameras.values():
        for frame in record.frames:
            t = _frame_time(frame)
            if t is not None and frame.pose:
                seen.setdefault(t, frame.pose)
    return sorted(seen.items(), key=lambda item: item[0])


def _pantilt_points(samples: Sequence[StateRecord]) -> list[tuple[float, Any, Any]]:
    """(arrival, pan x100, tilt x100) of every pan-tilt sample; an axis a sample does not report
    keeps its last value."""
    points = []
    pan: Any = None
    tilt: Any = None
    for s in samples:
        if "pan_deg_x100" not in s.values and "tilt_deg_x100" not in s.values:
            continue
        pan = s.values.get("pan_deg_x100", pan)
        tilt = s.values.get("tilt_deg_x100", tilt)
        points.append((s.received_at, pan, tilt))
    return points


def _pose_series(manifest: SessionManifest, samples: Sequence[StateRecord], t0: float) -> Json:
    """Pan and tilt in degrees against time: the pan-tilt's state samples, else the frames' poses."""
    source = "state"
    points = _pantilt_points(samples)
    if not points:
        source = "frames"
        points = [(t, p.get("pan_deg_x100"), p.get("tilt_deg_x100")) for t, p in _frame_poses(manifest)]
    return {
        "source": source if points else None,
        "t": [_rel(t, t0) for t, _, _ in points],
        "pan": [_deg(pan) for _, pan, _ in points],
        "tilt": [_deg(tilt) for _, _, tilt in points],
    }


def _deg(x100: Any) -> float | None:
    return round(float(x100) / 100.0, 4) if is_number(x100) else None


def _targets(manifest: SessionManifest) -> Json:
    """The pan and tilt targets of the settle, in degrees (None when the session has none)."""
    out: Json = {"pan": None, "tilt": None}
    for proof in _settle_devices(manifest).values():
        for name, target in (proof.get("targets") or {}).items():
            axis = "pan" if "pan" in name else "tilt" if "tilt" in name else None
            if axis is not None and is_number(target):
                out[axis] = _deg(target)
    return out


def _settled_zoom_fields(manifest: SessionManifest) -> dict[str, str]:
    """The zoom field of each camera the settle proof names (its values are keyed by the field)."""
    zooms = (manifest.pose_at_start or {}).get("zooms")
    cameras = set(manifest.cameras) | (set(zooms) if isinstance(zooms, dict) else set())
    return {
        dev: key
        for dev, proof in _settle_devices(manifest).items()
        if dev in cameras
        for key in (proof.get("values") or {})
        if not str(key).endswith("_deg_x100")
    }


def _settle_devices(manifest: SessionManifest) -> dict[str, Json]:
    devices = (manifest.settle or {}).get("devices")
    if not isinstance(devices, dict):
        return {}
    return {str(dev): proof for dev, proof in devices.items() if isinstance(proof, dict)}


def _settle_data(manifest: SessionManifest, samples: Sequence[StateRecord], t0: float) -> Json:
    """Per device: the command (when state started to count), the steady run's start, the settle
    point, in seconds from the recording's start; the values, targets and residuals. ``samples``:
    whether state samples from before the settle point are kept (the trace then shows the approach)."""
    settled = manifest.settled_at
    devices = {}
    for dev, proof in _settle_devices(manifest).items():
        to_settle, window = _num(proof.get("time_to_settle_s")), _num(proof.get("steady_window_s"))
        devices[dev] = {
            "command": _rel(settled - to_settle, t0) if settled and to_settle is not None else None,
            "steady_from": _rel(settled - window, t0) if settled and window is not None else None,
            "settled": _rel(settled, t0),
            "time_to_settle_s": to_settle,
            "steady_messages": proof.get("steady_messages"),
            "steady_window_s": window,
            "values": proof.get("values") or {},
            "targets": proof.get("targets") or {},
            "residual": proof.get("residual") or {},
        }
    before = settled is not None and any(t < settled for t, _, _ in _pantilt_points(samples))
    samples_kept = before or any("samples" in p for p in _settle_devices(manifest).values())
    return {"devices": devices, "range_m": (manifest.settle or {}).get("range_m"), "samples": samples_kept}


def _capture_data(manifest: SessionManifest) -> Json:
    """Per camera its time sources, delays (the settle proof's ``delay_s``) and clock verdict; the
    settle proof's edges of the window in capture time. ``timed``: the session has capture times."""
    settle = manifest.settle or {}
    found = settle.get("delay_s")
    delays: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "timed": any(f.captured_at is not None for c in manifest.cameras.values() for f in c.frames),
        "cameras": {
            cam: {
                "time_sources": dict(rec.time_sources),
                "delay_s": delays.get(cam) if isinstance(delays.get(cam), dict) else None,
                "clock": rec.clock,
            }
            for cam, rec in manifest.cameras.items()
        },
        "latest_dropped_capture_at": _num(settle.get("latest_dropped_capture_at")),
        "earliest_saved_capture_at": _num(settle.get("earliest_saved_capture_at")),
    }


FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def _interval_clock(frames: Sequence[FrameRecord]) -> tuple[str, FloatArray, FloatArray]:
    """The clock a camera's intervals are measured on, where each frame sits on the charts' time axis
    (the service's clock) and its time on that clock: capture times when every frame has one (sorted:
    listed by arrival, they may cross where a camera fell back to arrival); else camera timestamps
    when every frame that arrived has one; else arrival times."""
    captured = [f.captured_at for f in frames if f.captured_at is not None]
    if len(frames) > 1 and len(captured) == len(frames):
        times = np.sort(np.array(captured, dtype=np.float64))
        return "capture", times, times
    timed = [f for f in frames if f.received_at is not None]
    arrivals = np.array([f.received_at for f in timed], dtype=np.float64)
    stamps = [f.timestamp_ns for f in timed]
    if len(timed) > 1 and all(s is not None for s in stamps):
        return "camera", arrivals, np.array(stamps, dtype=np.float64) / 1e9
    return "arrival", arrivals, arrivals


def _camera_data(camera_id: str, record: CameraRecord, manifest: SessionManifest, t0: float) -> Json:
    clock, axis, times = _interval_clock(record.frames)
    intervals = np.diff(times) * 1000.0 if len(times) > 1 else np.zeros(0)
    gaps = [g for g in manifest.gaps if g.get("camera_id") == camera_id]
    # A gap is kept by the arrivals of the frames around it: on the capture axis, their capture times.
    on_axis = {f.received_at: f.captured_at for f in record.frames} if clock == "capture" else {}
    return {
        "frame_count": record.frame_count,
        "rejected_frames": record.rejected_frames,
        "rejection_reasons": list(record.rejection_reasons),
        "missing_frames": sum(int(g.get("missing_frames", 0)) for g in gaps),
        "clock": clock,
        "t": _rounded(axis[1:] - t0),
        "interval_ms": _rounded(intervals),
        "stats": _interval_stats(intervals, times, manifest.duration_second, record.frame_count),
        "histogram": _histogram(intervals),
        "gaps": [
            {
                "from": _rel(_gap_edge(g, "from", on_axis), t0),
                "to": _rel(_gap_edge(g, "to", on_axis), t0),
                "missing_frames": g.get("missing_frames"),
                "frame_index": g.get("missing_frame_index"),
            }
            for g in gaps
        ],
    }


def _gap_edge(gap: dict[str, Any], edge: str, on_axis: dict[float | None, float | None]) -> Any:
    captured = gap.get(f"{edge}_captured_at")
    if captured is not None:
        return captured
    arrival = gap.get(f"{edge}_received_at")
    found = on_axis.get(arrival) if is_number(arrival) else None
    return arrival if found is None else found


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), _DIGITS) for v in values]


def _interval_stats(
    intervals: FloatArray,
    clock: FloatArray,
    duration: float | None,
    frame_count: int,
) -> Json:
    if intervals.size == 0:
        return {
            "fps": None,
            "fps_nominal": None,
            "mean_ms": None,
            "median_ms": None,
            "p95_ms": None,
            "max_ms": None,
            "min_ms": None,
        }
    span = float(clock[-1] - clock[0])
    return {
        "fps": round(intervals.size / span, 3) if span > 0 else None,  # over first → last frame
        "fps_nominal": round(frame_count / duration, 3) if duration else None,  # frames / duration
        "mean_ms": round(float(intervals.mean()), 3),
        "median_ms": round(float(np.median(intervals)), 3),
        "p95_ms": round(float(np.percentile(intervals, 95)), 3),
        "max_ms": round(float(intervals.max()), 3),
        "min_ms": round(float(intervals.min()), 3),
    }


def _histogram(intervals: FloatArray) -> Json:
    """Counts of frame intervals in equal bins (ms): bin centres, counts and the bin width."""
    if intervals.size == 0:
        return {"centre_ms": [], "count": [], "width_ms": None}
    lo, hi = float(intervals.min()), float(intervals.max())
    bins = max(1, min(MAX_HISTOGRAM_BINS, math.ceil(math.sqrt(intervals.size))))
    if hi - lo < 1e-6:  # all equal: one bin 1 ms wide around the value
        lo, hi, bins = lo - 0.5, hi + 0.5, 1
    counts, edges = np.histogram(intervals, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    return {
        "centre_ms": _rounded(centres),
        "count": [int(c) for c in counts],
        "width_ms": round(float(edges[1] - edges[0]), _DIGITS),
    }


def _fps_series(manifest: SessionManifest, t0: float) -> Json:
    """Frames per camera in each whole second of the recording: by capture time when every frame has
    one, else by arrival."""
    clock = "capture" if _all_captured(manifest) else "arrival"

    def at(f: FrameRecord) -> float | None:
        return f.captured_at if clock == "capture" else f.received_at

    per_cam = {
        cam: np.array([t - t0 for f in rec.frames if (t := at(f)) is not None])
        for cam, rec in manifest.cameras.items()
    }
    ends = [_rel(manifest.record_ended_at, t0) or 0.0]
    ends += [float(a.max()) for a in per_cam.values() if a.size]
    seconds = max(1, math.ceil(max(ends)))
    edges = np.arange(0, seconds + 1, dtype=np.float64)
    return {
        "clock": clock,
        "t": [float(e) + 0.5 for e in edges[:-1]],  # the middle of each second
        "cameras": {cam: [int(c) for c in np.histogram(a, bins=edges)[0]] for cam, a in per_cam.items()},
    }


def _range_series(manifest: SessionManifest, samples: Sequence[StateRecord], t0: float) -> Json:
    """Range-finder distance (m) against time: the state samples, else the distance kept with each frame."""
    source = "state"
    points = [(s.received_at, s.values.get("distance_m")) for s in samples if "distance_m" in s.values]
    if not points:
        source = "frames"
        points = [(t, p.get("distance_m")) for t, p in _frame_poses(manifest)]
    points = sorted(((t, _positive(d)) for t, d in points), key=lambda p: p[0])
    if not any(d is not None for _, d in points):
        return {"source": None, "t": [], "distance_m": []}
    return {"source": source, "t": [_rel(t, t0) for t, _ in points], "distance_m": [d for _, d in points]}


def _positive(v: Any) -> float | None:
    n = _num(v)
    return n if n is not None and n > 0 else None


def _outage(outage: dict[str, Any], t0: float) -> Json:
    return {
        "url": redact_url(str(outage.get("url", ""))),
        "from": _rel(outage.get("from"), t0),
        "to": _rel(outage.get("to"), t0),
        "duration_s": outage.get("duration_s"),
        "reason": outage.get("reason"),
    }


def _notes(manifest: SessionManifest, samples: Sequence[StateRecord]) -> Json:
    """Where a chart lacks what it needs, why (shown in the page instead of invented data)."""
    notes: Json = {}
    if not samples:
        notes["pose"] = (
            "This session keeps no state samples (saved before they were kept): pan and tilt are "
            "the pose kept with each frame."
        )
        notes["range"] = "This session keeps no state samples: distances are those kept with each frame."
    if not any(rec.frames for rec in manifest.cameras.values()):
        notes["frames"] = "No frame was recorded."
    extra = manifest.model_extra or {}
    dropped = manifest.state_log.dropped if manifest.state_log is not None else extra.get("telemetry_dropped")
    if dropped:
        notes["pose"] = f"{dropped} state sample(s) beyond the session's limit were not kept."
    return notes


__all__ = [
    "REPORT_NAME",
    "build_report",
    "refresh_report",
    "report_data",
    "report_is_current",
    "session_report_hook",
    "write_report",
    "write_session_report",
    "zoom_fields_of",
]
