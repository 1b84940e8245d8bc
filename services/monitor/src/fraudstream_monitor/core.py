"""The monitor's one core: every transport (the Kafka consumer, the console's API) calls it.

Per model version it keeps the label-free drift of inputs and score (`drift.DriftMonitor`,
against the version's reference) and, apart from it, quality from delayed labels
(`quality.LabelJoin`); alerts from either go to the retrainer (`retrain.Retrainer`), which
decides when to ask for a new model. It also keeps what the console shows: traffic, latency,
the statistics over time, the alerts and the requests.

Time: drift and quality run on event time (the transactions' and the labels'); the debounce
and cooldown of retrain requests, and the traffic figures, run on wall time.

Alerts raised while the consumer replays records it had already read before a restart
(`live=False`) rebuild the state only: they were sent the first time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fraudstream_common.reference import SCORE, Reference
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert, RetrainRequest, Severity
from fraudstream_common.schemas.v1.prediction_pb2 import Decision, ModelRole, Prediction
from fraudstream_common.timestamps import seconds_of, timestamp_of
from fraudstream_monitor import metrics
from fraudstream_monitor.drift import DriftMonitor
from fraudstream_monitor.quality import LabelJoin, WindowQuality
from fraudstream_monitor.retrain import Retrainer
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_monitor.versions import Version

HOUR = 3600.0
TRAFFIC_BUCKET_SECONDS = 10
TRAFFIC_BUCKETS = 60
ALERTED = (Decision.DECISION_REVIEW, Decision.DECISION_DECLINE)
ROLE_NAMES = {
    ModelRole.MODEL_ROLE_CHAMPION: "champion",
    ModelRole.MODEL_ROLE_CANARY: "canary",
    ModelRole.MODEL_ROLE_SHADOW: "shadow",
}


class Versions(Protocol):
    """What the core needs to know of the published versions (`versions.VersionCatalogue`)."""

    def get(self, version: str) -> Version | None: ...

    def reference(self, version: str) -> Reference | None: ...


@dataclass
class _TrafficBucket:
    predictions: int = 0
    degraded: int = 0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class _VersionState:
    drift: DriftMonitor | None
    quality: LabelJoin
    predictions: int = 0
    reference_settled: bool = False
    quality_alerted: set[str] = field(default_factory=set)
    drift_history: deque[tuple[float, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=24 * 14))
    quality_history: deque[WindowQuality] = field(default_factory=lambda: deque(maxlen=365))


class MonitorCore:
    def __init__(
        self, settings: MonitorSettings, catalogue: Versions, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[str, _VersionState] = {}
        self._retrainer = Retrainer(settings.registered_model, settings.retrain_policy())
        self._traffic: dict[int, _TrafficBucket] = {}
        self.alerts: deque[DriftAlert] = deque(maxlen=500)
        self.requests: deque[RetrainRequest] = deque(maxlen=100)
        self.labels_seen = 0

    # --- what the consumer hands in -------------------------------------------------------

    def predictions(self, batch: Sequence[Prediction], *, live: bool = True) -> list[DriftAlert]:
        """A batch of predictions in arrival order; returns the alerts to send."""
        by_version: dict[str, list[Prediction]] = {}
        for prediction in batch:
            by_version.setdefault(prediction.model_version, []).append(prediction)
        alerts: list[DriftAlert] = []
        with self._lock:
            for version, predictions in by_version.items():
                alerts += self._observe_version(version, predictions)
            self._count_traffic(batch)
            return self._raised(alerts, live)

    def labels(self, batch: Sequence[Label], *, live: bool = True) -> list[DriftAlert]:
        """A batch of labels; returns the alerts (on quality) to send."""
        alerts: list[DriftAlert] = []
        with self._lock:
            for label in batch:
                label_time = seconds_of(label.label_time)
                for version, state in self._versions.items():
                    for window in state.quality.label(label.transaction_id, label.is_fraud, label_time):
                        alerts += self._judge_quality(version, state, window)
            self.labels_seen += len(batch)
            metrics.LABELS.inc(len(batch))
            return self._raised(alerts, live)

    def due_request(self) -> RetrainRequest | None:
        """The retrain request to send now, if one is due (debounced, outside the cooldown and
        not paused)."""
        with self._lock:
            request = self._retrainer.due(self._clock())
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
            request = self._retrainer.force(requested_by, self._clock())
            self._requested(request)
            return request

    # --- what the console shows -----------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            latest = int(now // TRAFFIC_BUCKET_SECONDS)
            traffic = []
            for bucket_id in range(latest - TRAFFIC_BUCKETS + 1, latest + 1):
                bucket = self._traffic.get(bucket_id, _TrafficBucket())
                latencies = np.asarray(bucket.latencies_ms)
                traffic.append(
                    {
                        "at": bucket_id * TRAFFIC_BUCKET_SECONDS,
                        "per_second": bucket.predictions / TRAFFIC_BUCKET_SECONDS,
                        "degraded": bucket.degraded,
                        "p50_ms": float(np.quantile(latencies, 0.5)) if len(latencies) else None,
                        "p99_ms": float(np.quantile(latencies, 0.99)) if len(latencies) else None,
                    }
                )
            versions = []
            for version, state in self._versions.items():
                drift = state.drift
                versions.append(
                    {
                        "version": version,
                        "predictions": state.predictions,
                        "drift_watched": drift is not None,
                        "drift": drift.statistics if drift is not None else {},
                        "drift_judged_at": drift.judged_at if drift is not None else None,
                        "drift_history": [{"at": at, "psi": values} for at, values in state.drift_history],
                        "quality": [dataclasses.asdict(w) for w in state.quality_history],
                    }
                )
            return {
                "model_name": self._settings.registered_model,
                "paused": self._retrainer.paused,
                "cooling": self._retrainer.cooling(now),
                "labels_seen": self.labels_seen,
                "traffic": traffic,
                "versions": versions,
                "alerts": [_alert_json(a) for a in reversed(self.alerts)],
                "requests": [_request_json(r) for r in reversed(self.requests)],
            }

    # --- inside ---------------------------------------------------------------------------

    def _state(self, version: str) -> _VersionState:
        state = self._versions.get(version)
        if state is None:
            settings = self._settings
            state = self._versions[version] = _VersionState(
                drift=None,
                quality=LabelJoin(
                    window_seconds=settings.quality_window_hours * HOUR,
                    maturity_seconds=settings.label_maturity_hours * HOUR,
                    late_seconds=settings.late_label_hours * HOUR,
                ),
            )
        if state.drift is None and not state.reference_settled:
            # Until the version's record is read, its reference is asked for again each batch.
            reference = self._catalogue.reference(version)
            state.reference_settled = self._catalogue.get(version) is not None
            if reference is not None:
                settings = self._settings
                state.drift = DriftMonitor(settings.registered_model, version, reference, settings.drift_policy())
        return state

    def _observe_version(self, version: str, predictions: list[Prediction]) -> list[DriftAlert]:
        state = self._state(version)
        state.predictions += len(predictions)
        alerts: list[DriftAlert] = []
        times = np.empty(len(predictions))
        scores = np.empty(len(predictions))
        roles: Counter[ModelRole.ValueType] = Counter()
        for i, prediction in enumerate(predictions):
            event_time = seconds_of(prediction.transaction_time)
            times[i], scores[i] = event_time, prediction.score
            for window in state.quality.prediction(
                prediction.transaction_id, event_time, prediction.score, prediction.decision in ALERTED
            ):
                alerts += self._judge_quality(version, state, window)
            roles[prediction.model_role] += 1
        for role, count in roles.items():
            metrics.PREDICTIONS.labels(version, ROLE_NAMES.get(role, "unknown")).inc(count)
        for held, count in zip(("windows", "predictions", "waiting_labels"), state.quality.held, strict=True):
            metrics.QUALITY_HELD.labels(version, held).set(count)
        drift = state.drift
        if drift is None:
            return alerts
        names = [f.name for f in predictions[0].features]
        kept = np.asarray([len(p.features) == len(names) for p in predictions], dtype=bool)
        complete = [p for p, whole in zip(predictions, kept, strict=True) if whole]
        values = np.asarray([[f.value for f in p.features] for p in complete])
        columns = {name: values[:, i] for i, name in enumerate(names)} if len(values) else {}
        columns[SCORE] = scores[kept]
        cards, terminals = [p.customer_id for p in complete], [p.terminal_id for p in complete]
        alerts += drift.observe_batch(times[kept], columns, cards, terminals)
        if drift.judged_at is not None and (not state.drift_history or state.drift_history[-1][0] != drift.judged_at):
            state.drift_history.append((drift.judged_at, {n: s["psi"] for n, s in drift.statistics.items()}))
            for subject, statistics in drift.statistics.items():
                for statistic, value in statistics.items():
                    metrics.DRIFT.labels(version, subject, statistic).set(value)
        return alerts

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
        now = self._clock()
        for alert in alerts:
            metrics.ALERTS.labels(AlertKind.Name(alert.kind), alert.subject).inc()
            self._retrainer.alert(alert, now)
        return alerts

    def _requested(self, request: RetrainRequest) -> None:
        self.requests.append(request)
        metrics.RETRAIN_REQUESTS.labels(request.reason).inc()

    def _count_traffic(self, batch: Sequence[Prediction]) -> None:
        for prediction in batch:
            bucket_id = int(seconds_of(prediction.predicted_at) // TRAFFIC_BUCKET_SECONDS)
            bucket = self._traffic.get(bucket_id)
            if bucket is None:
                bucket = self._traffic[bucket_id] = _TrafficBucket()
            bucket.predictions += 1
            bucket.degraded += prediction.degraded
            if len(bucket.latencies_ms) < 5000:
                bucket.latencies_ms.append(prediction.latency_ms)
        oldest = int(self._clock() // TRAFFIC_BUCKET_SECONDS) - TRAFFIC_BUCKETS
        for bucket_id in [b for b in self._traffic if b <= oldest]:
            del self._traffic[bucket_id]


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
        "force": request.force,
        "evidence": [f"{a.subject}/{a.detector}" for a in request.evidence],
    }
