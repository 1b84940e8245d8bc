"""Drift of a model's inputs and of its score, without labels.

Two kinds of evidence, per subject (each feature, and the score):

- the share of values outside the range the reference covers, in the same window: values the
  version never saw (a terminal with no history where every reference one had some);
- a windowed distribution comparison: the last `window_hours` of predictions (in event time)
  against the reference distribution stored with the model version (the deciles of each
  subject on the trainer's holdout), by PSI, judged each time an hour of event time completes.
  A whole-day window does not see the daily cycle; the calendar features themselves (weekend,
  night) are not compared, a day being all weekend or none of it.
- new patterns in the joint distribution of feature pairs (`regions.JointRegions`), when the
  reference has a joint grid: a region the reference left almost empty that many cards fill;
- online detectors from River on the score: ADWIN (a change in its mean) and PageHinkley (a
  sustained rise), fed hourly means, so that one update costs nothing per prediction and the
  daily cycle is smoothed into the mean of a full hour.

A subject that alerted stays quiet for `quiet_hours` of event time: one drift, one alert.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from river import drift

from fraudstream_common.reference import SCORE, Reference
from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert, Severity
from fraudstream_common.timestamps import timestamp_of
from fraudstream_monitor.regions import HourSightings, JointRegions, RegionPolicy

HOUR = 3600.0


def psi(expected_shares: np.ndarray, counts: np.ndarray) -> float:
    actual = counts / max(counts.sum(), 1)
    e, a = np.clip(expected_shares, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class DriftPolicy:
    window_hours: int = 24
    psi_threshold: float = 0.2
    min_window_predictions: int = 2000
    quiet_hours: int = 48
    adwin_delta: float = 1e-5
    page_hinkley_threshold: float = 0.05
    # Values outside the reference's range: a window with more than this share of them, and at
    # least `out_of_range_min` of them, alerts (a new terminal has a count the reference never had).
    out_of_range_share: float = 0.002
    out_of_range_min: int = 20
    # Set by the calendar, not by the world: a day's window is all weekend or none of it.
    calendar_subjects: tuple[str, ...] = ("tx_during_weekend", "tx_during_night")
    regions: RegionPolicy | None = field(default_factory=RegionPolicy)


@dataclass
class _Hour:
    start: float
    counts: dict[str, np.ndarray]
    outside: dict[str, int] = field(default_factory=dict)
    cell_rows: np.ndarray | None = None
    sightings: HourSightings | None = None
    score_sum: float = 0.0
    n: int = 0


@dataclass
class DriftMonitor:
    """Watches one model version's predictions."""

    model_name: str
    model_version: str
    reference: Reference
    policy: DriftPolicy = field(default_factory=DriftPolicy)

    def __post_init__(self) -> None:
        self._hours: deque[_Hour] = deque()
        self._current: _Hour | None = None
        self._quiet_until: dict[str, float] = {}
        self._adwin = drift.ADWIN(delta=self.policy.adwin_delta)  # type: ignore[no-untyped-call]  # River is untyped here
        self._page_hinkley = drift.PageHinkley(threshold=self.policy.page_hinkley_threshold, mode="up")
        reference, regions = self.reference, self.policy.regions
        self._regions = (
            JointRegions(reference.joint, reference.joint_shares, regions)
            if reference.joint is not None and reference.joint_shares is not None and regions is not None
            else None
        )
        # The statistics of the last judged window, per subject: {"psi": ..., "out_of_range": ...}.
        self.statistics: dict[str, dict[str, float]] = {}
        self.judged_at: float | None = None

    def observe(
        self, event_time: float, values: Mapping[str, float], card: str = "", terminal: str = ""
    ) -> list[DriftAlert]:
        """One prediction: its subjects' values (features, and SCORE), its card and terminal."""
        return self.observe_batch(
            np.asarray([event_time], dtype=np.float64),
            {n: np.asarray([v], dtype=np.float64) for n, v in values.items()},
            [card],
            [terminal],
        )

    def observe_batch(
        self,
        event_times: np.ndarray,
        columns: Mapping[str, np.ndarray],
        cards: Sequence[str] | None = None,
        terminals: Sequence[str] | None = None,
    ) -> list[DriftAlert]:
        """Predictions in arrival order: their event times, per subject (features, and SCORE)
        their values, and their cards and terminals (without them, joint regions are not
        watched). Returns the alerts that the hours they complete raise. Counting is done per
        run of predictions in the same hour, a handful of array operations per run, so that one
        prediction costs about a microsecond per subject."""
        starts = event_times - event_times % HOUR
        boundaries = np.flatnonzero(np.diff(starts)) + 1
        alerts: list[DriftAlert] = []
        for first, last in zip(np.r_[0, boundaries], np.r_[boundaries, len(starts)], strict=True):
            entities = None if cards is None or terminals is None else (cards[first:last], terminals[first:last])
            alerts += self._count(float(starts[first]), {n: c[first:last] for n, c in columns.items()}, entities)
        return alerts

    def _count(
        self,
        start: float,
        columns: Mapping[str, np.ndarray],
        entities: tuple[Sequence[str], Sequence[str]] | None,
    ) -> list[DriftAlert]:
        alerts: list[DriftAlert] = []
        current = self._current
        if current is None or start > current.start:
            if current is not None:
                alerts = self._close(current)
            current = self._current = _Hour(start, {n: np.zeros(len(e) + 1) for n, e in self.reference.edges.items()})
        elif start < current.start:
            return []  # late for its hour, which was judged already: not counted
        reference = self.reference
        for name, edges in reference.edges.items():
            values = columns.get(name)
            if values is None or not len(values):
                continue
            counts = current.counts[name]
            counts += np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(counts))
            outside = int(np.count_nonzero((values < reference.lows[name]) | (values > reference.highs[name])))
            if outside:
                current.outside[name] = current.outside.get(name, 0) + outside
        if self._regions is not None and entities is not None:
            cell_rows = self._regions.count(columns, *entities)
            if cell_rows is not None:
                current.cell_rows = cell_rows if current.cell_rows is None else current.cell_rows + cell_rows
        scores = columns.get(SCORE)
        if scores is not None:
            current.score_sum += float(scores.sum())
            current.n += len(scores)
        return alerts

    def _close(self, hour: _Hour) -> list[DriftAlert]:
        if self._regions is not None:
            hour.sightings = self._regions.close_hour()
        self._hours.append(hour)
        while len(self._hours) > self.policy.window_hours:
            self._hours.popleft()
        end = hour.start + HOUR
        alerts = []
        window_n = sum(h.n for h in self._hours)
        if len(self._hours) == self.policy.window_hours and window_n >= self.policy.min_window_predictions:
            for name, shares in self.reference.shares.items():
                if name in self.policy.calendar_subjects:
                    continue
                counts = np.sum([h.counts[name] for h in self._hours], axis=0)
                statistic = psi(shares, counts)
                self.statistics[name] = {"psi": statistic, "out_of_range": 0.0}
                if statistic > self.policy.psi_threshold:
                    alerts += self._alert(name, "PSI", statistic, self.policy.psi_threshold, end, window_n)
                outside = sum(h.outside.get(name, 0) for h in self._hours)
                share = outside / window_n
                self.statistics[name]["out_of_range"] = share
                if outside >= self.policy.out_of_range_min and share > self.policy.out_of_range_share:
                    alerts += self._alert(name, "OutOfRange", share, self.policy.out_of_range_share, end, window_n)
            alerts += self._judge_regions(end, window_n)
            self.judged_at = end
        if hour.n:
            mean = hour.score_sum / hour.n
            self._adwin.update(mean)  # type: ignore[no-untyped-call]
            if self._adwin.drift_detected:
                alerts += self._alert(SCORE, "ADWIN", mean, self.policy.adwin_delta, end, hour.n)
            self._page_hinkley.update(mean)  # type: ignore[no-untyped-call]
            if self._page_hinkley.drift_detected:
                alerts += self._alert(SCORE, "PageHinkley", mean, self.policy.page_hinkley_threshold, end, hour.n)
        return alerts

    def _judge_regions(self, end: float, window_n: int) -> list[DriftAlert]:
        counted = [
            (h.cell_rows, h.sightings) for h in self._hours if h.cell_rows is not None and h.sightings is not None
        ]
        if self._regions is None or not counted:
            return []
        finding = self._regions.judge(
            window_n, np.sum([rows for rows, _ in counted], axis=0), [sightings for _, sightings in counted]
        )
        if finding is None:
            return []
        details = {
            "region": finding.region,
            "entities": str(finding.entities),
            "rows": str(finding.rows),
            "expected": f"{finding.expected:.2f}",
            "p_value": f"{finding.p_value:.3g}",
        }
        fold = finding.entities / finding.expected
        # One new pattern fills several cells at once: one alert for all of them.
        return self._alert(
            finding.pair, "JointRegion", fold, self._regions.policy.ratio, end, window_n, details, quiet_key="joint"
        )

    def _alert(
        self,
        subject: str,
        detector: str,
        statistic: float,
        threshold: float,
        end: float,
        size: int,
        details: Mapping[str, str] | None = None,
        quiet_key: str | None = None,
    ) -> list[DriftAlert]:
        key = f"{quiet_key or subject}/{detector}"
        if end < self._quiet_until.get(key, float("-inf")):
            return []
        self._quiet_until[key] = end + self.policy.quiet_hours * HOUR
        start = end - (HOUR if detector in ("ADWIN", "PageHinkley") else self.policy.window_hours * HOUR)
        alert_id = hashlib.sha256(f"{self.model_name}|{self.model_version}|{key}|{end}".encode()).hexdigest()[:24]
        return [
            DriftAlert(
                alert_id=alert_id,
                kind=AlertKind.ALERT_KIND_SCORE_DRIFT if subject == SCORE else AlertKind.ALERT_KIND_INPUT_DRIFT,
                severity=Severity.SEVERITY_WARNING,
                model_name=self.model_name,
                model_version=self.model_version,
                subject=subject,
                detector=detector,
                statistic=statistic,
                threshold=threshold,
                window_start=timestamp_of(start),
                window_end=timestamp_of(end),
                window_size=size,
                raised_at=timestamp_of(end),
                details=details,
            )
        ]
