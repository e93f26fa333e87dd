"""The static HTML parts of the session report (sessions.report): the header, the settle trace and its
table, the capture-time section and the tables. Everything from the session is escaped here.

What people read: degrees (not the rig's hundredths, which stay in each cell's tooltip), cameras by
their short names (``cameradevice_lwir_1`` → ``lwir_1``), a zoom with the name of its configured field
(``swir_1 3 (zoom_step)``), poses counted from 1, times as local ISO 8601 with the offset.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from typing import Any

import numpy as np

from rigcore.state import is_number
from sessions.manifest import SessionManifest

Json = dict[str, Any]

CAMERA_PREFIX = "cameradevice_"
SVG_WIDTH, SVG_ROW, SVG_LEFT, SVG_RIGHT = 900, 30, 200, 20
_X100_SUFFIX = "_deg_x100"


def short(device_id: Any) -> str:
    """A camera's short name (``lwir_1``); other device ids as they are."""
    return str(device_id).removeprefix(CAMERA_PREFIX)


def _e(value: Any) -> str:
    return html.escape("—" if value is None else str(value))


def _td(text: Any, raw: str = "") -> str:
    """A table cell; ``raw``: the values as the session keeps them (hundredths, field paths), shown
    as its tooltip."""
    title = f' title="{html.escape(raw)}"' if raw else ""
    return f"<td{title}>{_e(text)}</td>"


def raw_text(values: Mapping[str, Any]) -> str:
    """``pan_deg_x100 4500, tilt_deg_x100 -1000``: the values as the session keeps them."""
    return ", ".join(f"{key} {value}" for key, value in values.items())


def field_name(path: Any) -> str:
    """The last part of a dotted state field (``zoom_lens_state.zoom_step`` → ``zoom_step``)."""
    return str(path).rsplit(".", 1)[-1]


def local_iso(t: Any) -> str:
    """Epoch seconds as a local ISO 8601 time to the millisecond, with the offset."""
    if not is_number(t):
        return "—"
    return dt.datetime.fromtimestamp(float(t)).astimezone().isoformat(timespec="milliseconds")


def local_span(start: Any, end: Any) -> str:
    """``<start> → <end>``, the end's date and offset left out when they are the start's."""
    a, b = local_iso(start), local_iso(end)
    if a != "—" and b != "—" and a[:10] == b[:10] and a[23:] == b[23:]:
        b = b[11:23]
    return f"{a} → {b}"


def _degrees(x100: Any) -> str:
    return f"{float(x100) / 100:.2f}°" if is_number(x100) else "—"


def _values_text(values: Mapping[str, Any], signed: bool = False) -> str:
    """``pan 45.00°, tilt -10.00°``: keys in hundredths of a degree as degrees, others as they are."""
    parts = []
    for key, value in values.items():
        if key.endswith(_X100_SUFFIX) and is_number(value):
            number = float(value) / 100
            parts.append(
                f"{key.removesuffix(_X100_SUFFIX)} {number:+.2f}°"
                if signed
                else f"{key.removesuffix(_X100_SUFFIX)} {number:.2f}°"
            )
        elif signed and is_number(value):
            parts.append(f"{field_name(key)} {value:+g}")
        else:
            parts.append(f"{field_name(key)} {value}")
    return ", ".join(parts)


def pose_text(pose: Mapping[str, Any], zoom_fields: Mapping[str, str] | None = None) -> str:
    """The pose at the start as people read it: ``pan 45.00°, tilt -10.00°, 70.5 m, zoom swir_1 4
    (zoom_step)``; ``zoom_fields``: each camera's zoom field (its name says the zoom's unit)."""
    parts = []
    if "pan_deg_x100" in pose or "tilt_deg_x100" in pose:
        parts.append(f"pan {_degrees(pose.get('pan_deg_x100'))}, tilt {_degrees(pose.get('tilt_deg_x100'))}")
    distance: Any = pose.get("distance_m")
    if "distance_m" in pose:
        valid = is_number(distance) and float(distance) > 0
        parts.append(f"{float(distance):g} m" if valid else "no range reading")
    zooms = pose.get("zooms")
    if isinstance(zooms, dict) and zooms:
        parts.append("zoom " + ", ".join(_zoom(cam, z, zoom_fields or {}) for cam, z in zooms.items()))
    known = {"pan_deg_x100", "tilt_deg_x100", "distance_m", "zooms"}
    parts += [f"{key} {value}" for key, value in pose.items() if key not in known]
    return ", ".join(parts)


def _zoom(camera_id: str, value: Any, zoom_fields: Mapping[str, str]) -> str:
    unit = f" ({field_name(zoom_fields[camera_id])})" if camera_id in zoom_fields else ""
    return f"{short(camera_id)} {'—' if value is None else value}{unit}"


# -- header ----------------------------------------------------------------------------------------
def header_html(m: SessionManifest, zoom_fields: Mapping[str, str] | None = None) -> str:
    pose = m.pose_at_start or {}
    raw_pose = {k: v for k, v in pose.items() if k != "zooms"} | dict(pose.get("zooms") or {})
    rows: list[tuple[str, Any, str]] = [
        ("status", m.status.value, ""),
        ("job", m.job_id, ""),
        ("settled at", local_iso(m.settled_at), ""),
        ("recording", local_span(m.record_started_at, m.record_ended_at), ""),
        ("duration", f"{m.duration_second:g} s" if m.duration_second is not None else None, ""),
        ("pose at start", pose_text(pose, zoom_fields) or None, raw_text(raw_pose)),
        ("settle → first frame", f"{m.settle_to_first_frame_s} s" if m.settle_to_first_frame_s else None, ""),
    ]
    if m.scan_id:
        pose_n = f", pose {m.pose_index + 1}" if m.pose_index is not None else ""  # people count from 1
        rows.append(("scan", f"{m.scan_id}{pose_n}", f"pose_index {m.pose_index}"))
    body = "".join(f"<tr><th>{_e(k)}</th>{_td(v, raw)}</tr>" for k, v, raw in rows)
    problems = "".join(
        f"<li><b>{_e(p.type)}</b>{' (' + _e(short(p.camera_id)) + ')' if p.camera_id else ''}: "
        f"{_e(p.message)}</li>"
        for p in m.problems
    )
    problem_html = f'<ul class="problems">{problems}</ul>' if problems else '<p class="ok">No problems.</p>'
    return (
        f'<header><h1>Session {_e(m.session_id)} <span class="status {_e(m.status.value)}">'
        f'{_e(m.status.value)}</span></h1><table class="meta">{body}</table>{problem_html}</header>'
    )


# -- settle ----------------------------------------------------------------------------------------
def settle_html(settle: Json) -> str:
    rows = []
    for dev, d in settle["devices"].items():
        residuals = {k: v for k, v in d["residual"].items() if is_number(v)}
        residual = _values_text(residuals, signed=True) or "—"
        values = _values_text(d["values"]) or "—"
        targets = _values_text(d["targets"]) or "—"
        rows.append(
            f'<tr><td title="{_e(dev)}">{_e(short(dev))}</td><td>{_e(d["time_to_settle_s"])} s</td>'
            f"<td>{_e(d['steady_messages'])}</td><td>{_e(d['steady_window_s'])} s</td>"
            f"{_td(targets, raw_text(d['targets']))}{_td(values, raw_text(d['values']))}"
            f"{_td(residual, raw_text(residuals))}</tr>"
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
        else '<p class="note">This session keeps no state samples from before the settle point (saved '
        "before they were kept); the trace shows the settle proof's times: when the device's state "
        "started to count (its last positioning command), when the steady run began, and the settle "
        "point.</p>"
    )
    return (
        f"{missing}{_settle_svg(settle)}"
        "<table><tr><th>device</th><th>time to settle</th><th>steady messages</th><th>steady run</th>"
        "<th>target</th><th>values at settle</th><th>residual to target</th></tr>"
        f"{''.join(rows)}</table>{range_text}"
    )


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
        parts.append(f'<text x="4" y="{y + 15}">{_e(short(dev))}</text>')
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


# -- capture time ----------------------------------------------------------------------------------
def _seconds(v: Any) -> str:
    return f"{float(v):.3f} s" if is_number(v) else "—"


def _sources_text(sources: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sources.items()) or "—"


def _clock_text(clock: Any) -> str:
    if not isinstance(clock, dict):
        return "—"
    status = str(clock.get("status", "—")).replace("_", " ")
    reasons = [str(r) for r in clock.get("reasons") or []]
    return f"{status}: {'; '.join(reasons)}" if reasons else status


def capture_html(m: SessionManifest, capture: Json) -> str:
    """Per camera how its capture times were known and how late its frames arrived; the window in
    capture time, what was dropped at its edges and the wait for late frames."""
    if not capture["timed"]:
        return (
            '<p class="note">This session was saved before capture times were kept: its frames are '
            "timed by their arrival, and belong to the recording by when they arrived.</p>"
        )
    rows = []
    for cam, c in capture["cameras"].items():
        delay = c["delay_s"] or {}
        rows.append(
            f"<tr><td>{_e(short(cam))}</td><td>{_e(_sources_text(c['time_sources']))}</td>"
            f"<td>{_e(_seconds(delay.get('median')))}</td><td>{_e(_seconds(delay.get('p99')))}</td>"
            f"<td>{_e(_seconds(delay.get('max')))}</td><td>{_e(_clock_text(c['clock']))}</td></tr>"
        )
    table = (
        "<table><tr><th>camera</th><th>time source (frames)</th><th>delay median</th><th>p99</th>"
        f"<th>max</th><th>camera clock</th></tr>{''.join(rows)}</table>"
    )
    legend = (
        '<p class="small">Time source: <b>stamp</b> the camera\'s own timestamp (its clock judged '
        "plausible); <b>arrival</b> the camera sends no stamps, <b>fallback</b> its stamps were judged "
        "implausible: both arrival less the camera's latency. Delay: arrival less capture, over the "
        "recording.</p>"
    )
    return table + legend + _window_html(m, capture)


def _window_html(m: SessionManifest, capture: Json) -> str:
    lines = [f"Window in capture time: {_e(local_span(m.record_started_at, m.record_ended_at))}."]
    info = m.capture
    if info is not None:
        lines.append(
            f"Dropped: {info.dropped_before} frame(s) captured before it, {info.dropped_after} after."
        )
    latest, earliest = capture["latest_dropped_capture_at"], capture["earliest_saved_capture_at"]
    if earliest is not None:
        dropped = (
            "no frame was dropped as captured before the window"
            if latest is None
            else f"the latest dropped as captured before it was captured at {_e(local_iso(latest))}"
        )
        lines.append(f"The earliest frame kept was captured at {_e(local_iso(earliest))}; {dropped}.")
    if info is not None and info.waited_s is not None:
        most = f" (at most {info.late_wait_s:g} s)" if info.late_wait_s is not None else ""
        lines.append(f"After the window the recording waited {info.waited_s:.2f} s{most} for late frames.")
    if info is not None and info.unconfirmed:
        names = ", ".join(short(c) for c in info.unconfirmed)
        lines.append(
            f'<span class="problems">Not confirmed: {_e(names)} (no frame captured after the window '
            "arrived in time: frames of theirs may be missing).</span>"
        )
    return "<p>" + " ".join(lines) + "</p>"


# -- tables ----------------------------------------------------------------------------------------
def tables_html(m: SessionManifest, data: Json) -> str:
    return "".join((_camera_table(data), _gap_table(data), _outage_table(data), _rejects_html(m)))


def _camera_table(data: Json) -> str:
    rows = []
    for cam, c in data["cameras"].items():
        s = c["stats"]
        rows.append(
            f"<tr><td>{_e(short(cam))}</td><td>{c['frame_count']}</td><td>{_e(s['fps'])}</td>"
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
        f"<tr><td>{_e(short(cam))}</td><td>{_e(g['frame_index'])}</td><td>{_e(g['missing_frames'])}</td>"
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
        f"<tr><td>{_e(short(cam))}</td><td>{rec.rejected_frames}</td>"
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
    "capture_html",
    "header_html",
    "local_iso",
    "local_span",
    "pose_text",
    "settle_html",
    "short",
    "tables_html",
]
