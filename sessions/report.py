"""The session report: ``report.html`` in the session folder, one self-contained page of plots.

Built from ``session.json`` alone (through :mod:`sessions.manifest`), after the session is saved (an
aftercare hook of the capture service, never on the recording path) and on demand by
``GET /sessions/<id>/report``. The page carries everything it needs inline — the data as JSON, the
charting library (uPlot, vendored in ``report_assets/vendor/uplot``: no build step, no network), its
own script and style — so it opens from disk, with no server, wherever the session folder travels.

What it shows, each from what ``session.json`` keeps:

* pan and tilt against time with the targets and the settle point marked (``telemetry``: the
  pan-tilt's state messages during the recording; older sessions: the pose kept with each frame);
* the settle proof per device: command → start of the steady run → settle point, residuals (the
  state samples before the settle point are not kept in a session: the page says so);
* per camera the frame intervals against time and their histogram (camera timestamps where both
  frames have one, else arrival times), frames per second per second of recording;
* gaps in ``frame_index`` and stream outages (tables, and shaded on the charts);
* range-finder distance against time (``telemetry``; else the distance kept with each frame);
* frame counts, rejected frames and their reasons, unreadable messages, write errors, problems.

Numbers are computed here (numpy); the page's script only draws. Cost: see ``bench/report_bench.py``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rigcore.atomic import write_bytes_atomic
from rigcore.config import redact_url
from sessions.manifest import MANIFEST_NAME, CameraRecord, SessionManifest, read_manifest

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
REPORT_VERSION = 1  # in the page's data; bump when the page's layout or data changes
ASSETS = Path(__file__).with_name("report_assets")
UPLOT_VERSION = "1.6.32"
MAX_HISTOGRAM_BINS = 40
_DIGITS = 4  # seconds and milliseconds in the data are rounded to this many decimals

Json = dict[str, Any]


# -- files -----------------------------------------------------------------------------------------
def write_report(folder: Path, manifest: SessionManifest | None = None) -> Path:
    """Build the report of the session in ``folder`` and write ``report.html`` there atomically.
    ``manifest``: the session's manifest when the caller has it (else read from the folder)."""
    if manifest is None:
        manifest = read_manifest(folder)
    path = folder / REPORT_NAME
    write_bytes_atomic(path, [build_report(manifest).encode("utf-8")])
    return path


def refresh_report(folder: Path) -> bytes | None:
    """None when ``report.html`` is current (serve the file); else the page, built now and written to
    the folder for the next time (a folder that cannot be written still gets its page). ManifestError
    when ``session.json`` cannot be read."""
    if report_is_current(folder):
        return None
    page = build_report(read_manifest(folder)).encode("utf-8")
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


# -- the page --------------------------------------------------------------------------------------
def build_report(manifest: SessionManifest) -> str:
    """The report page of ``manifest`` as one HTML string."""
    data = report_data(manifest)
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
        header=_header_html(manifest),
        tables=_tables_html(manifest, data),
        settle=_settle_html(data["settle"]),
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
def report_data(manifest: SessionManifest) -> Json:
    """What the page's charts draw, times in seconds from the start of the recording."""
    t0 = _origin(manifest)
    telemetry = _telemetry(manifest)
    return {
        "report_version": REPORT_VERSION,
        "session_id": manifest.session_id,
        "t0": t0,
        "window": [_rel(manifest.record_started_at, t0), _rel(manifest.record_ended_at, t0)],
        "settle_point": _rel(manifest.settled_at, t0),
        "pose": _pose_series(manifest, telemetry, t0),
        "targets": _targets(manifest),
        "settle": _settle_data(manifest, t0),
        "cameras": {cam: _camera_data(cam, rec, manifest, t0) for cam, rec in manifest.cameras.items()},
        "fps": _fps_series(manifest, t0),
        "range": _range_series(manifest, telemetry, t0),
        "outages": [_outage(o, t0) for o in manifest.stream_outages],
        "notes": _notes(manifest, telemetry),
    }


def _origin(manifest: SessionManifest) -> float:
    """Time zero of every chart: the recording's start, else the first frame, else the settle point."""
    if manifest.record_started_at is not None:
        return manifest.record_started_at
    arrivals = [f.received_at for c in manifest.cameras.values() for f in c.frames if f.received_at]
    if arrivals:
        return min(arrivals)
    return manifest.settled_at or 0.0


def _rel(t: Any, t0: float) -> float | None:
    return round(float(t) - t0, _DIGITS) if _number(t) else None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _num(v: Any) -> float | None:
    """``v`` as a float when it is a finite number (not a bool), else None."""
    return float(v) if _number(v) else None


def _telemetry(manifest: SessionManifest) -> list[Json] | None:
    """The state samples the recording kept (pan-tilt and range finder), or None when not kept."""
    extra = manifest.model_extra or {}
    samples = extra.get("telemetry")
    if not isinstance(samples, list):
        return None
    return [s for s in samples if isinstance(s, dict) and _number(s.get("received_at"))]


def _frame_poses(manifest: SessionManifest) -> list[tuple[float, dict[str, Any]]]:
    """(arrival, pose) of every frame that has both, one per arrival time, in order."""
    seen: dict[float, dict[str, Any]] = {}
    for record in manifest.cameras.values():
        for frame in record.frames:
            if frame.received_at is not None and frame.pose:
                seen.setdefault(frame.received_at, frame.pose)
    return sorted(seen.items(), key=lambda item: item[0])


def _pose_series(manifest: SessionManifest, telemetry: list[Json] | None, t0: float) -> Json:
    """Pan and tilt in degrees against time: from telemetry, else from the frames' poses."""
    source = "telemetry"
    points = [
        (s["received_at"], s.get("pan_deg_x100"), s.get("tilt_deg_x100"))
        for s in telemetry or []
        if "pan_deg_x100" in s or "tilt_deg_x100" in s
    ]
    if not points:
        source = "frames"
        points = [(t, p.get("pan_deg_x100"), p.get("tilt_deg_x100")) for t, p in _frame_poses(manifest)]
    points.sort(key=lambda p: p[0])
    return {
        "source": source if points else None,
        "t": [_rel(t, t0) for t, _, _ in points],
        "pan": [_deg(pan) for _, pan, _ in points],
        "tilt": [_deg(tilt) for _, _, tilt in points],
    }


def _deg(x100: Any) -> float | None:
    return round(float(x100) / 100.0, 4) if _number(x100) else None


def _targets(manifest: SessionManifest) -> Json:
    """The pan and tilt targets of the settle, in degrees (None when the session has none)."""
    out: Json = {"pan": None, "tilt": None}
    for proof in _settle_devices(manifest).values():
        for name, target in (proof.get("targets") or {}).items():
            axis = "pan" if "pan" in name else "tilt" if "tilt" in name else None
            if axis is not None and _number(target):
                out[axis] = _deg(target)
    return out


def _settle_devices(manifest: SessionManifest) -> dict[str, Json]:
    devices = (manifest.settle or {}).get("devices")
    if not isinstance(devices, dict):
        return {}
    return {str(dev): proof for dev, proof in devices.items() if isinstance(proof, dict)}


def _settle_data(manifest: SessionManifest, t0: float) -> Json:
    """Per device: the command (when state started to count), the steady run's start, the settle
    point, in seconds from the recording's start; the values, targets and residuals."""
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
    samples_kept = any("samples" in p for p in _settle_devices(manifest).values())
    return {"devices": devices, "range_m": (manifest.settle or {}).get("range_m"), "samples": samples_kept}


def _camera_data(camera_id: str, record: CameraRecord, manifest: SessionManifest, t0: float) -> Json:
    frames = [f for f in record.frames if f.received_at is not None]
    arrivals = np.array([f.received_at for f in frames], dtype=np.float64)
    stamps = [f.timestamp_ns for f in frames]
    use_camera = len(frames) > 1 and all(s is not None for s in stamps)
    clock = np.array(stamps, dtype=np.float64) / 1e9 if use_camera else arrivals
    intervals = np.diff(clock) * 1000.0 if len(clock) > 1 else np.zeros(0)
    gaps = [g for g in manifest.gaps if g.get("camera_id") == camera_id]
    return {
        "frame_count": record.frame_count,
        "rejected_frames": record.rejected_frames,
        "rejection_reasons": list(record.rejection_reasons),
        "missing_frames": sum(int(g.get("missing_frames", 0)) for g in gaps),
        "clock": "camera" if use_camera else "arrival",
        "t": _rounded(arrivals[1:] - t0),
        "interval_ms": _rounded(intervals),
        "stats": _interval_stats(intervals, clock, manifest.duration_second, record.frame_count),
        "histogram": _histogram(intervals),
        "gaps": [
            {
                "from": _rel(g.get("from_received_at"), t0),
                "to": _rel(g.get("to_received_at"), t0),
                "missing_frames": g.get("missing_frames"),
                "frame_index": g.get("missing_frame_index"),
            }
            for g in gaps
        ],
    }


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), _DIGITS) for v in values]


def _interval_stats(
    intervals: np.ndarray[Any, np.dtype[np.float64]],
    clock: np.ndarray[Any, np.dtype[np.float64]],
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


def _histogram(intervals: np.ndarray[Any, np.dtype[np.float64]]) -> Json:
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
    """Frames received per camera in each whole second of the recording (by arrival)."""
    ends = [_rel(manifest.record_ended_at, t0) or 0.0]
    per_cam = {
        cam: np.array([f.received_at - t0 for f in rec.frames if f.received_at is not None])
        for cam, rec in manifest.cameras.items()
    }
    ends += [float(a.max()) for a in per_cam.values() if a.size]
    seconds = max(1, math.ceil(max(ends)))
    edges = np.arange(0, seconds + 1, dtype=np.float64)
    return {
        "t": [float(e) + 0.5 for e in edges[:-1]],  # the middle of each second
        "cameras": {cam: [int(c) for c in np.histogram(a, bins=edges)[0]] for cam, a in per_cam.items()},
    }


def _range_series(manifest: SessionManifest, telemetry: list[Json] | None, t0: float) -> Json:
    """Range-finder distance (m) against time: telemetry, else the distance kept with each frame."""
    source = "telemetry"
    points = [(s["received_at"], s.get("distance_m")) for s in telemetry or [] if "distance_m" in s]
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


def _notes(manifest: SessionManifest, telemetry: list[Json] | None) -> Json:
    """Where a chart lacks what it needs, why (shown in the page instead of invented data)."""
    notes: Json = {}
    if telemetry is None:
        notes["pose"] = (
            "This session keeps no telemetry (written before it was recorded): pan and tilt are "
            "the pose kept with each frame."
        )
        notes["range"] = "This session keeps no telemetry: distances are those kept with each frame."
    if not any(rec.frames for rec in manifest.cameras.values()):
        notes["frames"] = "No frame was recorded."
    extra = manifest.model_extra or {}
    if extra.get("telemetry_dropped"):
        notes["pose"] = (
            f"{extra['telemetry_dropped']} telemetry sample(s) beyond the recording's limit were not kept."
        )
    return notes


# -- static HTML parts -----------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("—" if value is None else str(value))


def _when(t: float | None) -> str:
    if t is None:
        return "—"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _header_html(m: SessionManifest) -> str:
    pose = m.pose_at_start or {}
    rows = [
        ("status", m.status.value),
        ("job", m.job_id),
        ("settled at", _when(m.settled_at)),
        ("recording", f"{_when(m.record_started_at)} → {_when(m.record_ended_at)}"),
        ("duration", f"{m.duration_second:g} s" if m.duration_second is not None else None),
        ("pose at start", _pose_text(pose) or None),
        ("settle → first frame", f"{m.settle_to_first_frame_s} s" if m.settle_to_first_frame_s else None),
    ]
    if m.scan_id:
        rows.append(("scan", f"{m.scan_id}, pose {m.pose_index}"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    problems = "".join(
        f"<li><b>{_e(p.type)}</b>{' (' + _e(p.camera_id) + ')' if p.camera_id else ''}: {_e(p.message)}</li>"
        for p in m.problems
    )
    problem_html = f'<ul class="problems">{problems}</ul>' if problems else '<p class="ok">No problems.</p>'
    return (
        f'<header><h1>Session {_e(m.session_id)} <span class="status {_e(m.status.value)}">'
        f'{_e(m.status.value)}</span></h1><table class="meta">{body}</table>{problem_html}</header>'
    )


def _pose_text(pose: dict[str, Any]) -> str:
    """``pan_deg_x100 4500, …, zooms: cam 1.0, …`` (one level of nesting flattened)."""
    parts = []
    for key, value in pose.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
            parts.append(f"{key}: {inner or '—'}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def _settle_html(settle: Json) -> str:
    rows = []
    for dev, d in settle["devices"].items():
        residual = ", ".join(f"{k} {v:+g}" for k, v in d["residual"].items() if _number(v)) or "—"
        values = ", ".join(f"{k} {v}" for k, v in d["values"].items()) or "—"
        rows.append(
            f"<tr><td>{_e(dev)}</td><td>{_e(d['time_to_settle_s'])} s</td><td>{_e(d['steady_messages'])}"
            f"</td><td>{_e(d['steady_window_s'])} s</td><td>{_e(values)}</td><td>{_e(residual)}</td></tr>"
        )
    if not rows:
        return '<p class="note">This session keeps no settle proof.</p>'
    rng = settle.get("range_m")
    range_text = (
        f"<p>Range finder over the steady run: {_e(rng.get('readings'))} reading(s), "
        f"{_e(rng.get('min'))}–{_e(rng.get('max'))} m, mean {_e(rng.get('mean'))} m.</p>"
        if isinstance(rng, dict)
        else ""
    )
    missing = (
        ""
        if settle["samples"]
        else '<p class="note">The state samples between the command and the settle point are not kept in '
        "session.json; the trace shows the settle proof's times: when the device's state started to "
        "count (its last positioning command), when the steady run began, and the settle point.</p>"
    )
    return (
        f"{missing}{_settle_svg(settle)}"
        "<table><tr><th>device</th><th>time to settle</th><th>steady messages</th><th>steady run</th>"
        f"<th>values at settle</th><th>residual to target</th></tr>{''.join(rows)}</table>{range_text}"
    )


SVG_WIDTH, SVG_ROW, SVG_LEFT, SVG_RIGHT = 900, 30, 200, 20


def _settle_svg(settle: Json) -> str:
    """The settle trace as an inline SVG timeline: per device, from its command (state counts) to the
    start of the steady run, the steady run, and the settle point; time 0 is the recording's start."""
    devices = {dev: d for dev, d in settle["devices"].items() if d["settled"] is not None}
    if not devices:
        return ""
    times = [
        t for d in devices.values() for t in (d["command"], d["steady_from"], d["settled"]) if t is not None
    ]
    lo, hi = min([*times, 0.0]), max([*times, 0.0])
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.04 * span, hi + 0.04 * span
    plot_w = SVG_WIDTH - SVG_LEFT - SVG_RIGHT

    def x(t: float) -> float:
        return round(SVG_LEFT + (t - lo) / (hi - lo) * plot_w, 1)  # type: ignore[no-any-return]

    height = SVG_ROW * (len(devices) + 1) + 20
    parts = [
        f'<svg class="settle" width="{SVG_WIDTH}" height="{height}" '
        f'viewBox="0 0 {SVG_WIDTH} {height}" role="img" aria-label="settle trace">'
    ]
    for row, (dev, d) in enumerate(devices.items()):
        y = 10 + row * SVG_ROW
        parts.append(f'<text x="4" y="{y + 15}">{_e(dev)}</text>')
        if d["command"] is not None and d["steady_from"] is not None:
            parts.append(_bar(x(d["command"]), x(d["steady_from"]), y, "approach", "command → steady run"))
        if d["steady_from"] is not None:
            parts.append(_bar(x(d["steady_from"]), x(d["settled"]), y, "steady", "steady run"))
        parts.append(f'<circle class="settled" cx="{x(d["settled"])}" cy="{y + 10}" r="4"/>')
    axis_y = 10 + len(devices) * SVG_ROW
    parts.append(f'<line class="axis" x1="{SVG_LEFT}" x2="{SVG_LEFT + plot_w}" y1="{axis_y}" y2="{axis_y}"/>')
    for tick in np.linspace(lo, hi, 7):
        parts.append(f'<text class="tick" x="{x(float(tick))}" y="{axis_y + 16}">{float(tick):.2f} s</text>')
    parts.append(
        f'<line class="zero" x1="{x(0.0)}" x2="{x(0.0)}" y1="4" y2="{axis_y}">'
        "<title>recording start</title></line>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _bar(x1: float, x2: float, y: int, kind: str, title: str) -> str:
    return (
        f'<rect class="{kind}" x="{x1}" y="{y + 3}" width="{max(x2 - x1, 1.0)}" height="14">'
        f"<title>{_e(title)}</title></rect>"
    )


def _tables_html(m: SessionManifest, data: Json) -> str:
    return "".join(
        (
            _camera_table(data),
            _gap_table(data),
            _outage_table(data),
            _rejects_html(m),
        )
    )


def _camera_table(data: Json) -> str:
    rows = []
    for cam, c in data["cameras"].items():
        s = c["stats"]
        rows.append(
            f"<tr><td>{_e(cam)}</td><td>{c['frame_count']}</td><td>{_e(s['fps'])}</td>"
            f"<td>{_e(s['fps_nominal'])}</td><td>{_e(s['median_ms'])}</td><td>{_e(s['p95_ms'])}</td>"
            f"<td>{_e(s['max_ms'])}</td><td>{c['missing_frames']}</td><td>{c['rejected_frames']}</td>"
            f"<td>{_e(c['clock'])}</td></tr>"
        )
    return (
        '<section id="summary"><h2>Cameras</h2><table><tr><th>camera</th><th>frames</th><th>fps</th>'
        "<th>frames / duration</th><th>median interval (ms)</th><th>95th pct (ms)</th><th>longest (ms)</th>"
        "<th>missing (gaps)</th><th>rejected</th><th>interval clock</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def _gap_table(data: Json) -> str:
    rows = [
        f"<tr><td>{_e(cam)}</td><td>{_e(g['frame_index'])}</td><td>{_e(g['missing_frames'])}</td>"
        f"<td>{_e(g['from'])} → {_e(g['to'])} s</td></tr>"
        for cam, c in data["cameras"].items()
        for g in c["gaps"]
    ]
    if not rows:
        return '<section id="gaps"><h2>Gaps</h2><p class="ok">No frame_index gaps.</p></section>'
    return (
        '<section id="gaps"><h2>Gaps</h2><table><tr><th>camera</th><th>missing frame_index</th>'
        f"<th>frames</th><th>between</th></tr>{''.join(rows)}</table></section>"
    )


def _outage_table(data: Json) -> str:
    rows = [
        f"<tr><td>{_e(o['url'])}</td><td>{_e(o['from'])} → {_e(o['to'])} s</td>"
        f"<td>{_e(o['duration_s'])} s</td><td>{_e(o['reason'])}</td></tr>"
        for o in data["outages"]
    ]
    if not rows:
        return '<section id="outages"><h2>Stream outages</h2><p class="ok">No stream outage.</p></section>'
    return (
        '<section id="outages"><h2>Stream outages</h2><table><tr><th>stream</th><th>span</th>'
        f"<th>duration</th><th>reason</th></tr>{''.join(rows)}</table></section>"
    )


def _rejects_html(m: SessionManifest) -> str:
    rows = [
        f"<tr><td>{_e(cam)}</td><td>{rec.rejected_frames}</td>"
        f"<td>{_e('; '.join(rec.rejection_reasons) or None)}</td></tr>"
        for cam, rec in m.cameras.items()
    ]
    extra = (
        f"<p>Unreadable messages (no camera named): {m.unreadable_messages}. "
        f"Write errors: {m.write_error_count}.</p>"
    )
    return (
        '<section id="rejected"><h2>Rejected frames</h2><table><tr><th>camera</th><th>rejected</th>'
        f"<th>first reasons</th></tr>{''.join(rows)}</table>{extra}</section>"
    )


__all__ = [
    "REPORT_NAME",
    "build_report",
    "refresh_report",
    "report_data",
    "report_is_current",
    "write_report",
    "write_session_report",
]
