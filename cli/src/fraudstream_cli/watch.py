"""`fraudstream watch`: the loop as the ops console sees it, one line at a time while it runs
(`make demo` runs it beside the simulator), and a report at the end.

It reads only the console's JSON (`/api/overview`): what the monitor judged, the versions and
aliases in the registry, the alerts, the retrain requests and the trainer's runs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from statistics import median
from typing import Any

Overview = dict[str, Any]


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


def status_line(overview: Overview | None, now: float) -> str:
    clock = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S")
    if overview is None:
        return f"{clock}  console not answering yet"
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
        f"{run}  loop {state}"
    )


def report(overview: Overview) -> str:
    """What the loop did: the versions, what was detected and when, what was asked and what
    the trainer and its gate made of it, quality per matured window with its version, traffic."""
    lines = ["", "== fraudstream: what the loop did ==", f"serving: {_serving(overview)}", ""]
    alerts = list(reversed(overview.get("alerts", [])))
    lines.append(f"alerts ({len(alerts)}), oldest first:")
    for alert in alerts[:20]:
        lines.append(
            f"  {_day(alert.get('window_end'))}  v{alert['model_version']}  {alert['detector']} on {alert['subject']}"
            f"  {alert['statistic']:.3g} > {alert['threshold']:.3g}"
        )
    requests = list(reversed(overview.get("requests", [])))
    lines += ["", f"retrain requests ({len(requests)}):"]
    lines += [
        f"  {_day(r['requested_at'])}  {r['reason']}{' (forced)' if r.get('force') else ''}  "
        f"evidence: {', '.join(r['evidence']) or '-'}"
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
    # A window is judged again as late labels arrive: its latest figures stand.
    latest = {
        (w["start"], version["version"]): w
        for version in overview.get("versions", [])
        for w in version.get("quality", [])
    }
    windows = [(start, version, latest[(start, version)]) for start, version in sorted(latest)]
    if not windows:
        lines.append("  no window matured yet")
    lines += [
        f"  {_day(start)}  v{version}  AP {w['average_precision']:.3f}  "
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
