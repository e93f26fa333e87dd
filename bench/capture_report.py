"""Capture benchmark: the targets, the medians, and the tables printed."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from bench.capture_common import (
    FAST_FORMATS,
    FAST_LAG_PER_DURATION,
    FAST_SESSION_PER_RAW,
    MIN_OF_NOMINAL,
    RSS_SLACK_MIB,
)
from bench.capture_workloads import Workload, nominal_mb_s

# -- targets and reporting ---------------------------------------------------------------------------


def evaluate(wl: Workload, fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the value, the bound it is held to, pass or not.

    Targets are ratios taken within one run; on medians, the median of each run's ratio is held to
    the bound (not the ratio of medians).
    """
    out: dict[str, dict[str, Any]] = {}
    need = wl.min_completeness
    for cid, ratio in fig["completeness"].items():
        out[f"completeness {cid}"] = {
            "value": ratio,
            "bound": f">= {need:.0%}",
            "pass": ratio is not None and ratio >= need - 1e-9,
        }
    if wl.lag_per_duration is not None:
        ratio, bound = fig["save_lag_ratio_duration"], wl.lag_per_duration
        text = f"lag / duration <= {bound:g}"
    else:
        assert wl.lag_per_limit is not None
        ratio, bound = fig["save_lag_ratio_limit"], wl.lag_per_limit
        text = f"lag / save limit <= {bound:g}"
    out["save lag"] = {"value": ratio, "bound": text, "pass": ratio is not None and ratio <= bound}
    ratio = fig["rss_ratio_target"]
    out["peak RSS"] = {
        "value": ratio,
        "bound": "peak / (1.3 x raw + 300 MiB) <= 1",
        "pass": ratio is not None and ratio <= 1.0,
    }
    if wl.memory_cap_mb is not None:
        cap_bound = wl.memory_cap_mb + RSS_SLACK_MIB
        out["peak RSS under cap"] = {
            "value": fig["peak_rss_mib"],
            "bound": f"< cap + 300 MiB = {cap_bound:.0f} MiB",
            "pass": fig["peak_rss_mib"] < cap_bound,
        }
        lost = sum(d["lost_after_send"] for d in fig["completeness_detail"].values())
        rejected = sum(d["rejected_frames"] for d in fig["completeness_detail"].values())
        lost_total = lost + rejected + fig["write_errors"]
        out["nothing lost (sent, not saved)"] = {"value": lost_total, "bound": "= 0", "pass": lost_total == 0}
    out.update(fast_format_targets(wl, fig))
    s2f = fig["settle_to_first_frame_ms"]
    out["settle to first frame"] = {"value": s2f, "bound": "<= 50 ms", "pass": s2f is not None and s2f <= 50}
    return out


def fast_format_targets(wl: Workload, fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Issue 15's targets for the fast compressed format on W2: lag and session size."""
    if wl.name != "W2" or fig.get("image_format") not in FAST_FORMATS:
        return {}
    lag = fig["save_lag_ratio_duration"]
    size = fig["session_ratio_raw"]
    nominal = {
        f"of nominal {cid}": {
            "value": ratio,
            "bound": f">= {MIN_OF_NOMINAL:g} (frames saved / fps x duration: the rig's share of the CPU)",
            "pass": ratio is not None and ratio >= MIN_OF_NOMINAL,
        }
        for cid, ratio in (fig.get("of_nominal") or {}).items()
    }
    return {
        **nominal,
        "save lag (fast format)": {
            "value": lag,
            "bound": f"lag / duration <= {FAST_LAG_PER_DURATION:g}",
            "pass": lag is not None and lag <= FAST_LAG_PER_DURATION,
        },
        "session size (fast format)": {
            "value": size,
            "bound": f"session / raw bytes <= {FAST_SESSION_PER_RAW:g}",
            "pass": size is not None and size <= FAST_SESSION_PER_RAW,
        },
    }


def median_of(values: list[Any]) -> Any:
    """Median of numbers; per key for dicts; the common value (or None) otherwise."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, bool | str):
        return first if all(v == first for v in present) else None
    if isinstance(first, int | float):
        return statistics.median(present)
    if isinstance(first, dict):
        return {k: median_of([v.get(k) for v in present if isinstance(v, dict)]) for k in first}
    return None


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _num(v: Any, fmt: str = ".2f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{fmt}}{unit}"


def print_table(wl: Workload, runs: int, fig: dict[str, Any], targets: dict[str, dict[str, Any]]) -> None:
    label = f"median of {runs} runs" if runs > 1 else "1 run"
    print(f"\n{wl.name}: {wl.description}; {wl.duration_s:g} s; {label}")
    rows: list[tuple[str, str, str, str]] = []

    def verdict(name: str) -> str:
        t = targets.get(name)
        return "" if t is None else ("PASS" if t["pass"] else "FAIL")

    for cid in wl.cameras:
        d = fig["completeness_detail"][cid]
        lim = fig["limit_completeness"].get(cid)
        rows.append(
            (
                f"completeness {cid}",
                f"{_pct(fig['completeness'][cid])} "
                f"({_num(d['saved'], '.0f')}/{_num(d['expected'], '.0f')}, "
                f"skipped {_num(d['skipped_by_rig'], '.0f')})",
                f"bare {_pct(lim)}; {targets[f'completeness {cid}']['bound']}",
                verdict(f"completeness {cid}"),
            )
        )
    nominal = nominal_mb_s(wl)
    rows.append(
        (
            "ingest",
            f"{_num(fig['ingest_mb_s'], '.1f')} MB/s, {_num(fig['ingest_fps'], '.1f')} fps "
            f"({_num(fig['ingest_ratio_to_limit'])} of bare)",
            f"bare {_num(fig['ingest_limit_mb_s'], '.1f')} MB/s, {_num(fig['ingest_limit_fps'], '.1f')} fps"
            + (f"; nominal {nominal:.1f} MB/s" if nominal else ""),
            "",
        )
    )
    rows.append(
        (
            "save lag",
            f"{_num(fig['save_lag_s'])} s ({_num(fig['save_lag_ratio_duration'], '.3f')} x dur, "
            f"{_num(fig['save_lag_ratio_limit'])} x limit)",
            targets["save lag"]["bound"],
            verdict("save lag"),
        )
    )
    for name in (
        "save lag (fast format)",
        "session size (fast format)",
        *(f"of nominal {c}" for c in wl.cameras),
    ):
        if name in targets:
            rows.append((name, _num(targets[name]["value"], ".3f"), targets[name]["bound"], verdict(name)))
    rows.append(("encode settings", encodings_text(fig.get("encodings") or {}), "frames per setting", ""))
    rows.append(
        (
            f"encoding ({fig.get('image_format') or 'n/a'})",
            "; ".join(
                f"{cid}: {_num(fig['encode_cpu_ms_per_mb'].get(cid))} CPU-ms/MB, "
                f"ratio {_num(fig['size_ratio'].get(cid))}"
                for cid in wl.cameras
                if fig["encode_cpu_ms_per_mb"].get(cid) is not None
            )
            or "n/a (no raw camera)",
            f"session {_num(fig['bytes_written_mb'], '.0f')} MB = "
            f"{_num(fig['session_ratio_raw'], '.3f')} x raw",
            "",
        )
    )
    rows.append(
        (
            "save limit",
            f"{_num(fig['save_limit_s'])} s",
            f"max(encode {_num(fig['encode_cpu_s'], '.1f')} CPU-s / cores = {_num(fig['encode_limit_s'])} s, "
            f"{_num(fig['bytes_written_mb'], '.0f')} MB / {_num(fig['disk_write_mb_s'], '.0f')} MB/s = "
            f"{_num(fig['disk_limit_s'])} s)",
            "",
        )
    )
    rows.append(
        (
            "peak RSS",
            f"{_num(fig['peak_rss_mib'], '.0f')} MiB ({_num(fig['rss_ratio_raw'])} x raw "
            f"{_num(fig['raw_mib'], '.0f')} MiB; {_num(fig['rss_ratio_target'])} of the bound)",
            targets["peak RSS"]["bound"],
            verdict("peak RSS"),
        )
    )
    if "peak RSS under cap" in targets:
        rows.append(
            (
                "peak RSS, memory cap",
                f"{_num(fig['peak_rss_mib'], '.0f')} MiB, spilled {_num(fig['spilled_frames'], '.0f')} "
                f"frames (~{_num(fig['spilled_mib_estimate'], '.0f')} MiB)",
                targets["peak RSS under cap"]["bound"],
                verdict("peak RSS under cap"),
            )
        )
        t = targets["nothing lost (sent, not saved)"]
        rows.append(
            (
                "frames sent, not saved",
                _num(t["value"], ".0f"),
                t["bound"],
                verdict("nothing lost (sent, not saved)"),
            )
        )
    rows.append(
        (
            "settle -> first frame",
            f"{_num(fig['settle_to_first_frame_ms'], '.1f')} ms",
            targets["settle to first frame"]["bound"],
            verdict("settle to first frame"),
        )
    )
    rows.append(
        (
            "other programs' CPU",
            f"{_num(fig['other_load_cores'])} cores during the job, {_num(fig['limit_other_load_cores'])} "
            "during the bare receiver",
            "should be ~0",
            "",
        )
    )
    rows.append(
        (
            "CPU during job",
            f"service {_num(fig['service_cpu_s'], '.1f')} CPU-s, bench+rig "
            f"{_num(fig['bench_process_cpu_s'], '.1f')} CPU-s in {_num(fig['job_wall_s'], '.1f')} s",
            "",
            "",
        )
    )
    widths = [max(len(r[i]) for r in [("figure", "value", "limit / target", ""), *rows]) for i in range(3)]
    header = ("figure", "value", "limit / target", "pass")
    for r in [header, *rows]:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")


def encodings_text(encodings: Mapping[str, Mapping[str, Any]]) -> str:
    """``swir zstd1+pred 540, none 60; rgb_1 zstd1+pred 300``: frames per setting, per raw camera."""
    parts = []
    for cid, counts in encodings.items():
        if counts:
            each = ", ".join(f"{name} {_num(n, '.0f')}" for name, n in counts.items())
            parts.append(f"{cid.removeprefix('cameradevice_')} {each}")
    return "; ".join(parts) or "n/a"


def print_content_table(by_content: Mapping[str, Any]) -> None:
    """Per content, format and workload (medians): save lag, encode CPU-ms per MB (the settings used,
    and the best setting's), session ÷ raw, the settings used, completeness and share of nominal."""
    print("\ncontents compared (medians; CPU-ms per MB of raw pixels: as written / at the best setting):")
    header = ("content", "format", "workload", "save lag", "CPU-ms/MB", "session/raw", "settings", "complete")
    rows: list[tuple[str, ...]] = [header]
    for content, entry in by_content.items():
        for image_format, workloads in entry.items():
            for name, result in workloads.items():
                fig = result.get("median")
                if fig is None:
                    rows.append((content, image_format, name, "failed", "", "", "", ""))
                    continue
                top = fig.get("encode_top_cpu_ms_per_mb") or {}
                cpu = "; ".join(
                    f"{cid.removeprefix('cameradevice_')} {_num(ms, '.2f')}/{_num(top.get(cid), '.2f')}"
                    for cid, ms in fig["encode_cpu_ms_per_mb"].items()
                    if ms is not None
                )
                lag = f"{_num(fig['save_lag_s'])} s ({_num(fig['save_lag_ratio_duration'], '.3f')} x)"
                nominal = fig.get("of_nominal") or {}
                complete = " / ".join(
                    f"{_pct(v)} ({_num(nominal.get(cid), '.2f')} nom)"
                    for cid, v in fig["completeness"].items()
                )
                settings = encodings_text(fig.get("encodings") or {})
                session = _num(fig["session_ratio_raw"], ".3f")
                rows.append((content, image_format, name, lag, cpu or "n/a", session, settings, complete))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)))


def print_format_table(by_format: Mapping[str, Any]) -> None:
    """One row per format and workload with raw cameras: CPU-ms/MB and size ratio per camera, the
    session's size, save lag and completeness (medians)."""
    print("\nformats compared (medians; CPU-ms per MB of raw pixels, ratio = raw bytes / file bytes):")
    header = ("format", "workload", "raw cameras: CPU-ms/MB, ratio", "session / raw", "save lag", "complete")
    rows: list[tuple[str, ...]] = [header]
    for image_format, entry in by_format.items():
        for name, result in entry["workloads"].items():
            fig = result.get("median")
            if fig is None:
                rows.append((image_format, name, "failed", "", "", ""))
                continue
            cams = "; ".join(
                f"{cid.removeprefix('cameradevice_')} {_num(ms, '.1f')}, {_num(fig['size_ratio'].get(cid))}"
                for cid, ms in fig["encode_cpu_ms_per_mb"].items()
                if ms is not None
            )
            lag = f"{_num(fig['save_lag_s'])} s ({_num(fig['save_lag_ratio_duration'], '.3f')} x dur)"
            complete = " / ".join(_pct(v) for v in fig["completeness"].values())
            rows.append(
                (image_format, name, cams or "n/a", _num(fig["session_ratio_raw"], ".3f"), lag, complete)
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)))


def rounded(value: Any) -> Any:
    """Floats to 4 decimals (6 for epoch times, which need the milliseconds), recursively."""
    if isinstance(value, float):
        return round(value, 6 if value > 1e9 else 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value
