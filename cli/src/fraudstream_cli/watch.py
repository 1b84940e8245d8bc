"""`fraudstream watch`: the loop as the ops console sees it, one line at a time while it runs
(`make demo` runs it beside the simulator), and a report at the end.

It reads only the console's JSON (`/api/overview`): what the monitor judged, the versions and
aliases in the registry, the alerts, the retrain requests and the trainer's runs. Given when a
drift began, the report also judges the loop as `fraudstream evaluate loop` does: detection
delay, alerts before it, and the day quality came back within a tolerance of its level before.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import mean, median
from typing import Any

Overview = dict[str, Any]
DAY_SECONDS = 86400.0


def fetch(console_url: str, timeout: float = 5.0) -> Overview | None:
    """The console's overview, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{console_url.rstrip('/')}/api/overview", timeout=timeout) as answer:  # noqa: S310 (an operator's URL)
            document: Overview = json.loads(answer.read())
            return document
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _day(seconds: float | None) -> str:
    return "-" if not seconds else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def simulated_time(overview: Overview) -> float | None:
    """How far in event time the monitor has judged: the end of its latest judged hour."""
    judged = [v["drift_judged_at"] for v in overview.get("versions", []) if v.get("drift_judged_at")]
    return max(judged) if judged else None


def _serving(overview: Overview) -> str:
    aliases = overview.get("aliases") or {}
    if not aliases:
        wait = overview.get("first_model_wait")
        return f"no model yet ({wait})" if wait else "no model yet"
    return ", ".join(f"{alias} v{version}" for alias, version in sorted(aliases.items()))


def _recent_traffic(overview: Overview) -> tuple[float, float | None]:
    busy = [t for t in overview.get("traffic", [])[-6:] if t.get("per_second")]
    if not busy:
        return 0.0, None
    p99 = [t["p99_ms"] for t in busy if t.get("p99_ms") is not None]
    return median(t["per_second"] for t in busy), (median(p99) if p99 else None)


def status_line(overview: Overview | None, now: float, stopped: Sequence[str] = ()) -> str:
    """One line of the loop as the console shows it, naming the services given as `stopped`."""
    clock = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S")
    down = f"  stopped: {', '.join(stopped)}" if stopped else ""
    if overview is None:
        return f"{clock}  console not answering yet{down}"
    rate, p99 = _recent_traffic(overview)
    alerts = overview.get("alerts", [])
    last = f" (last {alerts[0]['detector']} on {alerts[0]['subject']})" if alerts else ""
    runs = overview.get("runs", [])
    run = f"  last run: {runs[0]['outcome']}" if runs else ""
    latency = f"  p99 {p99:.1f} ms" if p99 is not None else ""
    state = "paused" if overview.get("paused") else ("cooling down" if overview.get("cooling") else "watching")
    return (
        f"{clock}  simulated {_day(simulated_time(overview))}  {rate:.0f} predictions/s{latency}  "
        f"{_serving(overview)}  alerts {len(alerts)}{last}  requests {len(overview.get('requests', []))}"
        f"{run}  loop {state}{down}"
    )


def daily_quality(overview: Overview) -> list[tuple[float, str, float]]:
    """(window start, version, average precision) per matured quality window with frauds, oldest
    first. Where a swap splits a window between versions, the one that scored most of it stands."""
    latest = _latest_windows(overview)
    chosen: dict[float, tuple[str, dict[str, Any]]] = {}
    for (start, version), window in latest.items():
        if start not in chosen or window["predictions"] > chosen[start][1]["predictions"]:
            chosen[start] = (version, window)
    return [(start, v, w["average_precision"]) for start, (v, w) in sorted(chosen.items()) if w["frauds"]]


def _latest_windows(overview: Overview) -> dict[tuple[float, str], dict[str, Any]]:
    """Each (window start, version)'s latest figures: a window is judged again as late labels arrive."""
    return {
        (window["start"], version["version"]): window
        for version in overview.get("versions", [])
        for window in version.get("quality", [])
    }


@dataclass(frozen=True)
class Recovery:
    """The loop against a drift that began at `drift_start` (event time, seconds).

    `before`: the mean of the daily average precision over the `span` windows before the drift.
    `recovered_day`: the first day k (from the drift's start) from which the mean over `span`
    windows is back within `tolerance` of `before` (None: not within the run)."""

    drift_start: float
    before: float | None
    serving_at_drift: str | None
    detection_hours: float | None
    alerts_before: int
    versions_after: tuple[str, ...]
    recovered_day: int | None
    tolerance: float
    span: int


def recovery(overview: Overview, drift_start: float, *, tolerance: float = 0.1, span: int = 7) -> Recovery:
    days = daily_quality(overview)
    before = [ap for start, _, ap in days if drift_start - span * DAY_SECONDS <= start < drift_start]
    after = [(start, version, ap) for start, version, ap in days if start >= drift_start]
    serving = [version for start, version, _ in days if start < drift_start]
    ends = sorted(a["window_end"] for a in overview.get("alerts", []))
    detected = [end for end in ends if end > drift_start]
    level = mean(before) if before else None
    recovered_day = None
    if level is not None:
        for k in range(len(after) - span + 1):
            if mean(ap for _, _, ap in after[k : k + span]) >= (1 - tolerance) * level:
                recovered_day = int((after[k][0] - drift_start) // DAY_SECONDS)
                break
    versions_after = tuple(dict.fromkeys(v for _, v, _ in after if not serving or v != serving[-1]))
    return Recovery(
        drift_start=drift_start,
        before=level,
        serving_at_drift=serving[-1] if serving else None,
        detection_hours=(detected[0] - drift_start) / 3600 if detected else None,
        alerts_before=sum(end <= drift_start for end in ends),
        versions_after=versions_after,
        recovered_day=recovered_day,
        tolerance=tolerance,
        span=span,
    )


def verdict(found: Recovery) -> list[str]:
    """The recovery in a few lines of the report."""
    detection = (
        "not detected"
        if found.detection_hours is None
        else f"first alert on a window ending {found.detection_hours:.0f} simulated hours after it"
    )
    lines = [
        f"drift from {_day(found.drift_start)}: {detection}; {found.alerts_before} "
        f"{'alert' if found.alerts_before == 1 else 'alerts'} before it (false alarms)",
        f"  quality before: mean daily AP {found.before:.3f} (v{found.serving_at_drift})"
        if found.before is not None
        else "  quality before: no matured window before the drift",
        "  retrained versions serving after it: " + (", ".join(f"v{v}" for v in found.versions_after) or "none"),
    ]
    if found.recovered_day is None:
        lines.append(f"  quality NOT back within {found.tolerance:.0%} of its level before, within this run")
    else:
        lines.append(
            f"  quality back within {found.tolerance:.0%} of its level before from day {found.recovered_day}"
            f" after the drift (mean daily AP over {found.span} matured windows)"
        )
    return lines


def report(overview: Overview, drift_start: float | None = None) -> str:
    """What the loop did: the versions, what was detected and when, what was asked and what
    the trainer and its gate made of it, quality per matured window with its version, traffic."""
    lines = ["", "== fraudstream: what the loop did ==", f"serving: {_serving(overview)}", ""]
    if drift_start is not None:
        lines += [*verdict(recovery(overview, drift_start)), ""]
    alerts = list(reversed(overview.get("alerts", [])))
    # A quality alert is raised once its window's labels have matured, days after the window.
    lines.append(f"alerts ({len(alerts)}) in the order raised, each at the end of its window:")
    for alert in alerts[:20]:
        lines.append(
            f"  {_day(alert.get('window_end'))}  v{alert['model_version']}  {alert['detector']} on {alert['subject']}"
            f"  {alert['statistic']:.3g} > {alert['threshold']:.3g}"
        )
    requests = list(reversed(overview.get("requests", [])))
    lines += ["", f"retrain requests ({len(requests)}) in the order sent, each at the end of its latest evidence:"]
    lines += [
        f"  {_day(r.get('evidence_until') or r['requested_at'])}  {r['reason']}"
        f"{' (forced)' if r.get('force') else ''}  evidence: {', '.join(r['evidence']) or '-'}"
        for r in requests
    ]
    runs = list(reversed(overview.get("runs", [])))
    lines += ["", f"trainer runs and the gate's decisions ({len(runs)}):"]
    lines += [
        f"  {_day(r['started_at'])}  {r['request_id'] or '-'}  {r['outcome']}"
        + (f"  holdout AP {r['average_precision']:.3f}" if r.get("average_precision") is not None else "")
        for r in runs
    ]
    lines += ["", "quality on matured labels, per window and version:"]
    latest = _latest_windows(overview)
    windows = [(start, version, latest[(start, version)]) for start, version in sorted(latest)]
    if not windows:
        lines.append("  no window matured yet")
    lines += [
        # Average precision is undefined without a fraud: "-", not a zero to read as a failure.
        f"  {_day(start)}  v{version}  AP {format(w['average_precision'], '.3f') if w['frauds'] else '-'}  "
        f"precision@budget {w['precision_at_budget']:.3f}  frauds {w['frauds']}  predictions {w['predictions']}"
        for start, version, w in windows
    ]
    rate, p99 = _recent_traffic(overview)
    lines += [
        "",
        f"traffic: {rate:.0f} predictions/s lately" + (f", p99 {p99:.1f} ms" if p99 is not None else ""),
        "console: http://127.0.0.1:8082 (the platform stays up; `make down` stops it)",
    ]
    return "\n".join(lines)
