"""The monitor's one core, the judge: every transport (the judge's stream, the console's API)
calls it.

It merges what the input partitions counted (`counting.Partial`) and judges it. Per model
version it keeps the label-free drift of inputs and score (`drift.DriftMonitor`, against the
version's reference) and, apart from it, quality from delayed labels (matured windows of
`quality.WindowCounts`); alerts from either go to the retrainer (`retrain.Retrainer`), which
decides when to ask for a new model. It also keeps what the console shows: traffic, latency,
the statistics over time, the alerts and the requests.

When: an hour is judged once every input partition has moved past it (its `mark`) or is idle,
so that the same inputs give the same alerts however many replicas counted them; hours are
judged in order, and counts that come after their hour was judged are late (counted, not
used). A quality window is judged once every partition that is not idle sent it, and again
when one sends it changed by a late label.

Time: drift and quality run on event time (the transactions' and the labels'); the debounce
and cooldown of retrain requests, and the traffic figures, run on wall time.

Alerts raised while the judge reads again what it had read before a restart (`live=False`)
rebuild the state only: they were sent the first time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert, RetrainRequest, Severity
from fraudstream_common.signing import sign_request
from fraudstream_common.timestamps import seconds_of, timestamp_of
from fraudstream_drift.drift import DriftMonitor, HourCounts
from fraudstream_drift.retrain import LoopClock, Retrainer
from fraudstream_monitor import metrics
from fraudstream_monitor.counting import TRAFFIC_BUCKET_SECONDS, TRAFFIC_BUCKETS, Partial
from fraudstream_monitor.quality import WindowCounts, WindowQuality
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_monitor.versions import Versions


@dataclass
class _VersionState:
    drift: DriftMonitor | None
    reference_settled: bool = False
    # Hour start -> partition -> its counts, for hours not judged yet.
    hours: dict[float, dict[int, HourCounts]] = field(default_factory=dict)
    judged_through: float = float("-inf")
    # Window start -> partition -> its counts, for windows some partition matured.
    windows: dict[float, dict[int, WindowCounts]] = field(default_factory=dict)
    quality_alerted: set[str] = field(default_factory=set)
    drift_history: deque[tuple[float, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=24 * 14))
    quality_history: deque[WindowQuality] = field(default_factory=lambda: deque(maxlen=365))


@dataclass
class _Mark:
    open: float
    idle: bool


class MonitorCore:
    def __init__(
        self,
        settings: MonitorSettings,
        catalogue: Versions,
        partitions: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`partitions`: how many partitions `predictions` (and `labels`) have."""
        self._settings = settings
        self._catalogue = catalogue
        self._partitions = partitions
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[str, _VersionState] = {}
        self._marks: dict[int, _Mark] = {}
        self._seen: dict[int, dict[str, Any]] = {}
        self._retrainer = Retrainer(settings.registered_model, settings.retrain_policy())
        self._loop_clock = LoopClock(clock)
        self.alerts: deque[DriftAlert] = deque(maxlen=500)
        self.requests: deque[RetrainRequest] = deque(maxlen=100)
        self.judging = False

    # --- what the judge's stream hands in -------------------------------------------------

    def apply(self, partial: Partial, *, live: bool = True) -> list[DriftAlert]:
        """One partition's counts; returns the alerts to send."""
        with self._lock:
            alerts: list[DriftAlert] = []
            if partial.kind == "seen":
                self._seen[partial.partition] = partial.body
            elif partial.kind == "mark":
                self._marks[partial.partition] = _Mark(float(partial.body["open"]), bool(partial.body["idle"]))
                for version in list(self._versions):
                    alerts += self._judge_hours(version)
            elif partial.kind == "hour":
                state = self._state(partial.version)
                if partial.start <= state.judged_through:
                    metrics.LATE_PARTIALS.labels("hour").inc()
                else:
                    state.hours.setdefault(partial.start, {})[partial.partition] = HourCounts.from_json(partial.body)
                    alerts += self._judge_hours(partial.version)
            elif partial.kind == "window":
                state = self._state(partial.version)
                state.windows.setdefault(partial.start, {})[partial.partition] = WindowCounts.from_json(partial.body)
                alerts += self._judge_window(partial.version, state, partial.start)
            judged = [s.judged_through for s in self._versions.values() if math.isfinite(s.judged_through)]
            if judged:
                self._loop_clock.event_time(max(judged))
            return self._raised(alerts, live)

    def reset(self, *, judging: bool) -> None:
        """Forgets everything judged (the judge reads it all again), but the operator's pause and
        the requests sent (their topic says what they were, `sent`)."""
        with self._lock:
            self._versions, self._marks, self._seen = {}, {}, {}
            self._retrainer.drop_pending()
            self.alerts.clear()
            self.judging = judging

    def sent(self, request: RetrainRequest) -> None:
        """A request on `retrain.requests`, sent by this process or by one before it (a restart, or
        the replica that judged before): listed, and its cooldown holds."""
        with self._lock:
            if request.model_name != self._settings.registered_model:
                return
            self._retrainer.sent(seconds_of(request.requested_at))
            if all(r.request_id != request.request_id for r in self.requests):
                self.requests.append(request)

    @property
    def deciding(self) -> bool:
        """Whether alerts wait for the retrain debounce (a request, or none, is still to be decided)."""
        with self._lock:
            return self._retrainer.deciding

    def request_due(self) -> bool:
        with self._lock:
            return self._retrainer.debounced(self._loop_clock())

    def due_request(self) -> RetrainRequest | None:
        """The retrain request to send now, if one is due (debounced, outside the cooldown and
        not paused)."""
        with self._lock:
            request = self._retrainer.due(self._loop_clock())
            if request is not None:
                self._requested(request)
            return request

    # --- what an operator does ------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._retrainer.paused

    def pause(self, paused: bool) -> None:
        with self._lock:
            self._retrainer.paused = paused
            metrics.PAUSED.set(1 if paused else 0)

    def force_request(self, requested_by: str) -> RetrainRequest:
        with self._lock:
            request = self._retrainer.force(requested_by, self._loop_clock())
            self._requested(request)
            return request

    # --- what the console shows -----------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            predictions: dict[str, int] = {}
            buckets: dict[int, list[Any]] = {}
            for seen in self._seen.values():
                for version, count in seen["versions"].items():
                    predictions[version] = predictions.get(version, 0) + int(count)
                for bucket_id, (count, degraded, latencies) in seen["traffic"].items():
                    bucket = buckets.setdefault(int(bucket_id), [0, 0, []])
                    bucket[0] += count
                    bucket[1] += degraded
                    bucket[2] += latencies
            latest = int(now // TRAFFIC_BUCKET_SECONDS)
            traffic = []
            for bucket_id in range(latest - TRAFFIC_BUCKETS + 1, latest + 1):
                count, degraded, latencies = buckets.get(bucket_id, [0, 0, []])
                traffic.append(
                    {
                        "at": bucket_id * TRAFFIC_BUCKET_SECONDS,
                        "per_second": count / TRAFFIC_BUCKET_SECONDS,
                        "degraded": degraded,
                        "p50_ms": float(np.quantile(latencies, 0.5)) if latencies else None,
                        "p99_ms": float(np.quantile(latencies, 0.99)) if latencies else None,
                    }
                )
            versions = []
            for version in sorted(set(self._versions) | set(predictions)):
                state = self._versions.get(version)
                drift = state.drift if state is not None else None
                versions.append(
                    {
                        "version": version,
                        "predictions": predictions.get(version, 0),
                        "drift_watched": drift is not None,
                        "drift": drift.statistics if drift is not None else {},
                        "drift_judged_at": drift.judged_at if drift is not None else None,
                        "drift_history": [{"at": at, "psi": v} for at, v in state.drift_history] if state else [],
                        "quality": [dataclasses.asdict(w) for w in state.quality_history] if state else [],
                    }
                )
            return {
                "model_name": self._settings.registered_model,
                "judging": self.judging,
                "paused": self._retrainer.paused,
                "cooling": self._retrainer.cooling(self._loop_clock()),
                "labels_seen": sum(int(seen.get("labels", 0)) for seen in self._seen.values()),
                "traffic": traffic,
                "versions": versions,
                "alerts": [_alert_json(a) for a in reversed(self.alerts)],
                "requests": [_request_json(r) for r in reversed(self.requests)],
            }

    # --- inside ---------------------------------------------------------------------------

    def _state(self, version: str) -> _VersionState:
        state = self._versions.get(version)
        if state is None:
            state = self._versions[version] = _VersionState(drift=None)
        if state.drift is None and not state.reference_settled:
            # Until the version's record is read, its reference is asked for again.
            reference = self._catalogue.reference(version)
            state.reference_settled = self._catalogue.get(version) is not None
            if reference is not None:
                settings = self._settings
                state.drift = DriftMonitor(settings.registered_model, version, reference, settings.drift_policy())
        return state

    def _frontier(self) -> float:
        """Hours starting before this are complete: every partition moved past them or is idle."""
        opens = [self._marks[p].open for p in range(self._partitions) if p in self._marks and not self._marks[p].idle]
        if any(p not in self._marks for p in range(self._partitions)):
            opens.append(float("-inf"))  # not heard of yet: it may hold anything
        return min(opens, default=float("inf"))

    def _judge_hours(self, version: str) -> list[DriftAlert]:
        state = self._state(version)
        frontier = self._frontier()
        alerts: list[DriftAlert] = []
        for start in sorted(s for s in state.hours if s < frontier):
            parts = state.hours.pop(start)
            state.judged_through = start
            drift = state.drift
            if drift is None:
                continue
            alerts += drift.judge_hour(HourCounts.merged([parts[p] for p in sorted(parts)]))
            if drift.judged_at is not None and (
                not state.drift_history or state.drift_history[-1][0] != drift.judged_at
            ):
                state.drift_history.append((drift.judged_at, {n: s["psi"] for n, s in drift.statistics.items()}))
                for subject, statistics in drift.statistics.items():
                    for statistic, value in statistics.items():
                        metrics.DRIFT.labels(version, subject, statistic).set(value)
        return alerts

    def _judge_window(self, version: str, state: _VersionState, start: float) -> list[DriftAlert]:
        parts = state.windows[start]
        waiting = [
            p for p in range(self._partitions) if p not in parts and not (p in self._marks and self._marks[p].idle)
        ]
        if waiting:
            return []
        window = WindowCounts.merged([parts[p] for p in sorted(parts)]).quality()
        horizon = start - (self._settings.label_maturity_hours + self._settings.late_label_hours) * 3600
        for old in [s for s in state.windows if s < horizon]:
            del state.windows[old]
        return self._judge_quality(version, state, window)

    def _judge_quality(self, version: str, state: _VersionState, window: WindowQuality) -> list[DriftAlert]:
        state.quality_history.append(window)
        for name in ("average_precision", "precision_at_budget", "recall_at_budget", "alert_rate"):
            metrics.QUALITY.labels(version, name).set(getattr(window, name))
        published = self._catalogue.get(version)
        reference_ap = published.metrics.get("average_precision") if published is not None else None
        if reference_ap is None or window.frauds < self._settings.quality_min_frauds:
            return []
        limit = reference_ap * (1 - self._settings.quality_max_drop)
        if window.average_precision >= limit:
            return []
        identity = f"{self._settings.registered_model}|{version}|quality|{window.start}"
        if identity in state.quality_alerted:
            return []  # a late label changed a window that alerted already: one alert per window
        state.quality_alerted.add(identity)
        return [
            DriftAlert(
                alert_id=hashlib.sha256(identity.encode()).hexdigest()[:24],
                kind=AlertKind.ALERT_KIND_QUALITY,
                severity=Severity.SEVERITY_CRITICAL,
                model_name=self._settings.registered_model,
                model_version=version,
                subject="average_precision",
                detector="matured-window",
                statistic=window.average_precision,
                threshold=limit,
                window_start=timestamp_of(window.start),
                window_end=timestamp_of(window.end),
                window_size=window.predictions,
                raised_at=timestamp_of(self._clock()),
                details={
                    "frauds": str(window.frauds),
                    "holdout_average_precision": f"{reference_ap:.4f}",
                    "precision_at_budget": f"{window.precision_at_budget:.4f}",
                    "recall_at_budget": f"{window.recall_at_budget:.4f}",
                },
            )
        ]

    def _raised(self, alerts: list[DriftAlert], live: bool) -> list[DriftAlert]:
        self.alerts.extend(alerts)
        if not live:
            return []
        now = self._loop_clock()
        for alert in alerts:
            metrics.ALERTS.labels(AlertKind.Name(alert.kind), alert.subject).inc()
            self._retrainer.alert(alert, now)
        return alerts

    def _requested(self, request: RetrainRequest) -> None:
        sign_request(request, self._settings.retrain_request_secret.get_secret_value())
        self.requests.append(request)
        metrics.RETRAIN_REQUESTS.labels(request.reason).inc()


def _alert_json(alert: DriftAlert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "kind": AlertKind.Name(alert.kind).removeprefix("ALERT_KIND_").lower(),
        "severity": Severity.Name(alert.severity).removeprefix("SEVERITY_").lower(),
        "model_version": alert.model_version,
        "subject": alert.subject,
        "detector": alert.detector,
        "statistic": alert.statistic,
        "threshold": alert.threshold,
        "window_start": seconds_of(alert.window_start),
        "window_end": seconds_of(alert.window_end),
        "window_size": alert.window_size,
        "details": dict(alert.details),
    }


def _request_json(request: RetrainRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "requested_at": seconds_of(request.requested_at),
        # requested_at is the loop clock (retrain.LoopClock), ahead of the wall clock in a replay;
        # the evidence's event time says when in the traffic the request was made.
        "evidence_until": max((seconds_of(a.window_end) for a in request.evidence), default=None),
        "force": request.force,
        "evidence": [f"{a.subject}/{a.detector}" for a in request.evidence],
    }
