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
  and each night's quiet hours against the reference's same hours (`regions.NightRegions`),
  judged when the night's last hour completes;
- online detectors from River on the score: ADWIN (a change in its mean) and PageHinkley (a
  sustained rise), fed hourly means, so that one update costs nothing per prediction and the
  daily cycle is smoothed into the mean of a full hour.

A subject that alerted stays quiet for `quiet_hours` of event time: one drift, one alert.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import drift

from fraudstream_common.reference import SCORE, Reference
from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert, Severity
from fraudstream_common.timestamps import timestamp_of
from fraudstream_drift.regions import HourSightings, JointRegions, NightRegions, RegionFinding, RegionPolicy

HOUR = 3600.0
DAY = 24 * HOUR


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
    page_hinkley_threshold: float = 0.1
    # Values outside the reference's range: a window with more than this share of them, and at
    # least `out_of_range_min` of them, alerts (a new terminal has a count the reference never had).
    out_of_range_share: float = 0.002
    out_of_range_min: int = 20
    # Set by the calendar, not by the world: a day's window is all weekend or none of it.
    calendar_subjects: tuple[str, ...] = ("tx_during_weekend", "tx_during_night")
    regions: RegionPolicy | None = field(default_factory=RegionPolicy)
    night_regions: RegionPolicy | None = field(default_factory=lambda: RegionPolicy(prior_rows=0.5))

    @property
    def counted_regions(self) -> RegionPolicy | None:
        """What decides the cells counted (`rare_share`, `max_entities`): both region detectors
        judge the same counts."""
        return self.regions or self.night_regions


@dataclass
class HourCounts:
    """One hour of event time of one version's predictions: counted on one input partition,
    or merged over all of them. Everything in it adds up, so that partitions counted by
    different replicas merge into what one process would have counted."""

    start: float
    counts: dict[str, np.ndarray]
    outside: dict[str, int] = field(default_factory=dict)
    cell_rows: np.ndarray | None = None
    sightings: list[HourSightings] = field(default_factory=list)
    score_sum: float = 0.0
    n: int = 0

    @staticmethod
    def merged(parts: Sequence[HourCounts]) -> HourCounts:
        first = parts[0]
        cell_rows = [p.cell_rows for p in parts if p.cell_rows is not None]
        return HourCounts(
            start=first.start,
            counts={name: np.sum([p.counts[name] for p in parts], axis=0) for name in first.counts},
            outside={
                name: sum(p.outside.get(name, 0) for p in parts) for name in {n for p in parts for n in p.outside}
            },
            cell_rows=np.sum(cell_rows, axis=0) if cell_rows else None,
            sightings=[s for p in parts for s in p.sightings],
            score_sum=sum(p.score_sum for p in parts),
            n=sum(p.n for p in parts),
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "start": self.start,
            "counts": {name: counts.astype(int).tolist() for name, counts in self.counts.items()},
            "outside": self.outside,
            "score_sum": self.score_sum,
            "n": self.n,
            "sightings": [s.to_json() for s in self.sightings],
        }
        if self.cell_rows is not None:
            cells = np.flatnonzero(self.cell_rows)
            document["cell_rows"] = {
                "size": len(self.cell_rows),
                "cells": cells.tolist(),
                "rows": self.cell_rows[cells].astype(int).tolist(),
            }
        return document

    @staticmethod
    def from_json(document: Mapping[str, Any]) -> HourCounts:
        cell_rows = None
        if (sparse := document.get("cell_rows")) is not None:
            cell_rows = np.zeros(sparse["size"], dtype=np.int64)
            cell_rows[np.asarray(sparse["cells"], dtype=np.int64)] = sparse["rows"]
        return HourCounts(
            start=float(document["start"]),
            counts={name: np.asarray(counts, dtype=np.float64) for name, counts in document["counts"].items()},
            outside={name: int(n) for name, n in document["outside"].items()},
            cell_rows=cell_rows,
            sightings=[HourSightings.from_json(s) for s in document["sightings"]],
            score_sum=float(document["score_sum"]),
            n=int(document["n"]),
        )


class HourCounter:
    """Counts one version's predictions into the hours of event time that are open; the caller
    decides when each closes."""

    def __init__(self, reference: Reference, regions: RegionPolicy | None) -> None:
        self.reference = reference
        self._regions = joint_regions(reference, regions)
        self._open: dict[float, HourCounts] = {}

    def count(
        self,
        start: float,
        columns: Mapping[str, np.ndarray],
        entities: tuple[Sequence[str], Sequence[str]] | None,
    ) -> None:
        """Rows of the hour beginning at `start` (open, or opened by them)."""
        current = self._open.get(start)
        if current is None:
            current = self._open[start] = HourCounts(
                start, {n: np.zeros(len(e) + 1) for n, e in self.reference.edges.items()}
            )
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
            cell_rows = self._regions.count(start, columns, *entities)
            if cell_rows is not None:
                current.cell_rows = cell_rows if current.cell_rows is None else current.cell_rows + cell_rows
        scores = columns.get(SCORE)
        if scores is not None:
            current.score_sum += float(scores.sum())
            current.n += len(scores)

    def close(self, start: float | None = None) -> HourCounts | None:
        """The hour beginning at `start` (by default the earliest open), counted; None when it
        is not open."""
        if start is None:
            start = min(self._open, default=None)
        hour = None if start is None else self._open.pop(start, None)
        if hour is not None and self._regions is not None:
            hour.sightings = [self._regions.close_hour(hour.start)]
        return hour

    @property
    def open_hours(self) -> list[float]:
        return sorted(self._open)


@dataclass
class DriftMonitor:
    """Judges one model version's predictions, an hour at a time."""

    model_name: str
    model_version: str
    reference: Reference
    policy: DriftPolicy = field(default_factory=DriftPolicy)

    def __post_init__(self) -> None:
        self._hours: deque[HourCounts] = deque()
        self._open = OpenHours()
        self._open.counters[self.model_version] = HourCounter(self.reference, self.policy.counted_regions)
        self._quiet_until: dict[str, float] = {}
        self._adwin = drift.ADWIN(delta=self.policy.adwin_delta)  # type: ignore[no-untyped-call]  # River is untyped here
        self._page_hinkley = drift.PageHinkley(threshold=self.policy.page_hinkley_threshold, mode="up")
        self._regions = joint_regions(self.reference, self.policy.regions)
        self._night = night_regions(self.reference, self.policy.night_regions)
        # The statistics of the last judged window, per subject: {"psi": ..., "out_of_range": ...}.
        self.statistics: dict[str, dict[str, float]] = {}
        self.judged_at: float | None = None
        # The detectors whose condition held in the last judged hour ("subject/detector"), quiet
        # or not: the hours in alarm, where `judge_hour`'s alerts are only the first of each.
        self.firing: list[str] = []

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
        """Predictions of one stream in arrival order (the monitor service counts each input
        partition apart and judges the merged hours with `judge_hour`): their event times, per
        subject (features, and SCORE) their values, and their cards and terminals (without them,
        joint regions are not watched). Returns the alerts that the hours they complete raise."""
        counter = self._open.counters[self.model_version]

        def count_rows(start: float, rows: np.ndarray) -> None:
            entities = None if cards is None or terminals is None else (_taken(cards, rows), _taken(terminals, rows))
            counter.count(start, {n: c[rows] for n, c in columns.items()}, entities)

        alerts: list[DriftAlert] = []
        for _, hour in self._open.count(event_times, count_rows):
            alerts += self.judge_hour(hour)
        return alerts

    def judge_hour(self, hour: HourCounts) -> list[DriftAlert]:
        """A complete hour, later than any judged before: the alerts of the window it ends."""
        self._hours.append(hour)
        self.firing = []
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
        alerts += self._judge_night(end)
        if hour.n:
            mean = hour.score_sum / hour.n
            self._adwin.update(mean)  # type: ignore[no-untyped-call]
            if self._adwin.drift_detected:
                alerts += self._alert(SCORE, "ADWIN", mean, self.policy.adwin_delta, end, hour.n)
            self._page_hinkley.update(mean)  # type: ignore[no-untyped-call]
            if self._page_hinkley.drift_detected:
                alerts += self._alert(
                    SCORE,
                    "PageHinkley",
                    page_hinkley_statistic(self._page_hinkley),
                    self.policy.page_hinkley_threshold,
                    end,
                    hour.n,
                    {"hour_mean_score": f"{mean:.4f}"},
                )
        return alerts

    def _judge_regions(self, end: float, window_n: int) -> list[DriftAlert]:
        counted = [h for h in self._hours if h.cell_rows is not None]
        rows = [h.cell_rows for h in counted if h.cell_rows is not None]
        if self._regions is None or not rows:
            return []
        finding = self._regions.judge(window_n, np.sum(rows, axis=0), [s for h in counted for s in h.sightings])
        if finding is None:
            return []
        fold = finding.entities / finding.expected
        # One new pattern fills several cells at once: one alert for all of them.
        return self._alert(
            finding.pair,
            "JointRegion",
            fold,
            self._regions.policy.ratio,
            end,
            window_n,
            _finding_details(finding),
            quiet_key="joint",
        )

    def _judge_night(self, end: float) -> list[DriftAlert]:
        """At the end of the night's hours, those of them counted (that night's only)."""
        first, last = self.reference.night_hours
        if self._night is None or (end % DAY) != last * HOUR:
            return []
        start = end - (last - first) * HOUR
        night = [h for h in self._hours if h.start >= start]
        cell_rows = [h.cell_rows for h in night if h.cell_rows is not None]
        if not cell_rows:
            return []
        rows = sum(h.n for h in night)
        finding = self._night.judge(rows, np.sum(cell_rows, axis=0), [s for h in night for s in h.sightings])
        if finding is None:
            return []
        return self._alert(
            finding.pair,
            "NightRegion",
            finding.entities / finding.expected,
            self._night.policy.ratio,
            end,
            rows,
            _finding_details(finding),
            quiet_key="night",
            start=start,
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
        start: float | None = None,
    ) -> list[DriftAlert]:
        key = f"{quiet_key or subject}/{detector}"
        self.firing.append(f"{subject}/{detector}")
        if end < self._quiet_until.get(key, float("-inf")):
            return []
        self._quiet_until[key] = end + self.policy.quiet_hours * HOUR
        if start is None:
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


def _taken(values: Sequence[str], rows: np.ndarray) -> list[str]:
    return [values[i] for i in rows.tolist()]


def page_hinkley_statistic(detector: drift.PageHinkley) -> float:
    """What PageHinkley (mode up) compared with its threshold: the cumulative deviation above
    its running minimum. River keeps it private (checked against River 0.26)."""
    return float(detector._sum_increase - detector._min_increase)


@dataclass
class _SourceMark:
    """Where one upstream source of an input partition stands (see OpenHours)."""

    last_seen: float  # by OpenHours' clock
    watermark: float = -math.inf


class OpenHours:
    """The hours of event time open on one stream of predictions (an input partition), for every
    version on it. The stream is not in event-time order: the inference service interleaves its
    input partitions (the upstream sources), by as much as a day of event time while it catches
    up on a backlog, and producers' clocks differ. Each source is in order, or nearly: so, as the
    streaming engines merge partitions, the stream's watermark is the least of its sources'. The
    policy, per prediction in arrival order (the hours closed do not depend on how the stream was
    cut into batches):

    - A source's watermark is its latest event time in step. The stream's is the least of its
      sources' that delivered within `source_idle_seconds` while the stream is `caught_up` (read
      to its end: a source that stopped holds nothing back; when none delivered, the traffic
      stopped and the greatest holds). While it is not, every source holds: what they have yet
      to deliver is waiting to be read (as Kafka Streams does not idle a partition with known
      lag). An hour closes once
      that is `lateness` past its end (`close_idle` closes those that sources turned idle
      since); a prediction of a closed hour is late, and not counted.
    - A prediction of an hour more than `max_ahead` past the greatest of the sources'
      watermarks (a live transaction in a replay, a clock far ahead) is ahead: not counted, and it
      does not move a watermark, unless it is the `confirm_rows`-th ahead in a row (the stream
      moved on: traffic back after a gap, a replay reaching the present). Then its source's
      watermark moves to the earliest of them, and it is counted, as are those after it that are
      not late; the other sources follow as they deliver (or turn idle).

    Without sources (all of one) and with the defaults (no lateness, nothing ahead), an hour
    closes at the first prediction of a later one: for a stream in event-time order, as
    evaluations replay it."""

    def __init__(
        self,
        lateness: float = 0.0,
        max_ahead: float = math.inf,
        confirm_rows: int = 1,
        *,
        sources: int = 1,
        source_idle_seconds: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`sources`: how many upstream sources there are (0 to `sources` - 1; until each has
        delivered, or `source_idle_seconds` passed, no hour closes)."""
        self.lateness = lateness
        self.max_ahead = max_ahead
        self.confirm_rows = confirm_rows
        self.source_idle_seconds = source_idle_seconds
        self.caught_up = True
        self._clock = clock
        now = clock()
        self._sources = {source: _SourceMark(now) for source in range(sources)}
        # Hours beginning before this are closed: nothing more is sent for them.
        self.start = -math.inf
        self.counters: dict[str, HourCounter] = {}
        self.late = 0
        self.ahead = 0
        self._greatest = -math.inf  # the greatest of the sources' watermarks
        # The predictions ahead since the last one that was not: how many, and the earliest.
        self._ahead_rows = 0
        self._ahead_earliest = math.inf

    @property
    def watermark(self) -> float:
        """The least watermark of the sources that delivered lately (or have yet to, early on);
        when none did, the greatest."""
        since = self._idle_before(self._clock())
        recent = [m.watermark for m in self._sources.values() if m.last_seen > since]
        if recent:
            return min(recent)
        return max((m.watermark for m in self._sources.values()), default=-math.inf)

    def count(
        self,
        event_times: np.ndarray,
        count_rows: Callable[[float, np.ndarray], None],
        sources: np.ndarray | None = None,
    ) -> list[tuple[str, HourCounts]]:
        """`count_rows(start, rows)` counts the rows at the indices `rows` (ascending, all of the
        hour beginning at `start`) into `counters`. `sources`: each row's upstream source (none:
        all of one). Returns the hours closed, with their versions. The rows of an hour are
        counted together, once before any hour closes and at the end: a stream of interleaved
        partitions changes hour every few rows, and counting is a handful of array operations
        per subject, whatever the number of rows."""
        if not len(event_times):
            return []
        if sources is not None and len(self._sources) > 1:
            in_step = self._count_in_step(event_times, count_rows, sources)
            if in_step is not None:
                return in_step
        starts = event_times - event_times % HOUR
        changes = np.diff(starts) != 0
        if sources is not None:
            changes |= np.diff(sources) != 0
        boundaries = np.flatnonzero(changes) + 1
        closed: list[tuple[str, HourCounts]] = []
        pending: dict[float, list[np.ndarray]] = {}

        def count_pending() -> None:
            for start, runs in pending.items():
                count_rows(start, runs[0] if len(runs) == 1 else np.concatenate(runs))
            pending.clear()

        now = self._clock()
        for run_first, run_last in zip(np.r_[0, boundaries], np.r_[boundaries, len(starts)], strict=True):
            start, first, last = float(starts[run_first]), int(run_first), int(run_last)
            source = self._sources.setdefault(0 if sources is None else int(sources[first]), _SourceMark(now))
            source.last_seen = now
            if start < self.start:
                self.late += last - first
                self._end_ahead_run()
                continue
            if math.isfinite(self._greatest) and start > self._greatest + self.max_ahead:
                # The `confirm_rows`-th in a row confirms: it and those after it are counted.
                needed = self.confirm_rows - self._ahead_rows
                earliest = min(self._ahead_earliest, float(event_times[first : min(first + needed, last)].min()))
                if last - first < needed:
                    self._ahead_rows += last - first
                    self._ahead_earliest = earliest
                    continue
                self.ahead += self._ahead_rows + needed - 1
                self._ahead_rows, self._ahead_earliest = 0, math.inf
                first += needed - 1
                source.watermark = earliest
                closed += self._close_passed(count_pending)
            else:
                self._end_ahead_run()
            pending.setdefault(start, []).append(np.arange(first, last))
            source.watermark = max(source.watermark, float(event_times[first:last].max()))
            self._greatest = max(self._greatest, source.watermark)
            closed += self._close_passed(count_pending)
        count_pending()
        return closed

    def _count_in_step(
        self, event_times: np.ndarray, count_rows: Callable[[float, np.ndarray], None], sources: np.ndarray
    ) -> list[tuple[str, HourCounts]] | None:
        """`count` for a batch in which no prediction is ahead, in array operations: a run per
        (hour, source) would cost a Python step per prediction where many sources interleave.
        None where one is ahead, or some ahead are pending: the batch takes the step-by-step
        path."""
        if self._ahead_rows:
            return None
        greatest_before = np.maximum.accumulate(np.r_[self._greatest, event_times[:-1]])
        starts = event_times - event_times % HOUR
        if np.any(np.isfinite(greatest_before) & (starts > greatest_before + self.max_ahead)):
            return None
        now = self._clock()
        positions = np.arange(len(event_times))
        after = np.empty(len(event_times))  # each prediction's source's watermark after it
        in_batch: dict[int, np.ndarray] = {}
        for source in np.unique(sources).tolist():
            mark = self._sources.setdefault(source, _SourceMark(now))
            rows = in_batch[source] = np.flatnonzero(sources == source)
            after[rows] = np.maximum.accumulate(np.r_[mark.watermark, event_times[rows]])[1:]
        # The partition's watermark after each prediction: the least of the recent sources'.
        since = self._idle_before(now)
        watermark = np.full(len(event_times), np.inf)
        for source, mark in self._sources.items():
            of_source = in_batch.get(source)
            if of_source is None:
                if mark.last_seen > since:
                    watermark = np.minimum(watermark, mark.watermark)
                continue
            latest = np.searchsorted(of_source, positions, side="right") - 1  # its last row so far
            initial = mark.watermark if mark.last_seen > since else np.inf
            reached = np.where(latest >= 0, after[of_source[np.maximum(latest, 0)]], initial)
            watermark = np.minimum(watermark, reached)
        passed = watermark - self.lateness
        with np.errstate(invalid="ignore"):
            boundaries = np.where(np.isfinite(passed), passed - passed % HOUR, -np.inf)
        closed_before = np.maximum(self.start, np.maximum.accumulate(np.r_[-np.inf, boundaries[:-1]]))
        late = starts < closed_before
        self.late += int(late.sum())
        for start in np.unique(starts[~late]).tolist():
            count_rows(start, np.flatnonzero((starts == start) & ~late))
        for source, rows in in_batch.items():
            mark = self._sources[source]
            mark.watermark, mark.last_seen = float(after[rows[-1]]), now
        self._greatest = max(self._greatest, float(event_times.max()))
        boundary = max(self.start, float(boundaries.max()))
        if boundary <= self.start:
            return []
        self.start = boundary
        return self._close_before(boundary)

    def _idle_before(self, now: float) -> float:
        """A source that delivered last before this is idle."""
        return now - self.source_idle_seconds if self.caught_up else -math.inf

    def close_idle(self) -> list[tuple[str, HourCounts]]:
        """Closes the hours that the watermark passed as sources turned idle since the last
        prediction."""
        return self._close_passed(lambda: None)

    @property
    def closable(self) -> bool:
        """Whether `close_idle` would close an hour now."""
        return self._passed_boundary() is not None

    def close(self) -> list[tuple[str, HourCounts]]:
        """Closes every open hour of every version, in order (the stream has ended)."""
        return self._close_before(math.inf)

    def _close_passed(self, count_pending: Callable[[], None]) -> list[tuple[str, HourCounts]]:
        """Closes the hours the watermark is `lateness` past, their rows counted first; moves
        `start` past them."""
        boundary = self._passed_boundary()
        if boundary is None:
            return []
        count_pending()
        self.start = boundary
        return self._close_before(boundary)

    def _passed_boundary(self) -> float | None:
        """The start of the hour the watermark is `lateness` into, where that is past `start`:
        the hours before it close. None: none closes."""
        passed = self.watermark - self.lateness
        if not math.isfinite(passed):
            return None
        boundary = passed - passed % HOUR
        return boundary if boundary > self.start else None

    def _close_before(self, boundary: float) -> list[tuple[str, HourCounts]]:
        """Closes, in order, every version's open hours that begin before `boundary`."""
        starts = sorted({s for counter in self.counters.values() for s in counter.open_hours if s < boundary})
        closed = [(version, counter.close(start)) for start in starts for version, counter in self.counters.items()]
        return [(version, hour) for version, hour in closed if hour is not None]

    def _end_ahead_run(self) -> None:
        """A prediction not ahead: those ahead before it were not the stream moving on."""
        self.ahead += self._ahead_rows
        self._ahead_rows, self._ahead_earliest = 0, math.inf


def _finding_details(finding: RegionFinding) -> dict[str, str]:
    return {
        "region": finding.region,
        "entities": str(finding.entities),
        "rows": str(finding.rows),
        "expected": f"{finding.expected:.2f}",
        "p_value": f"{finding.p_value:.3g}",
    }


def night_regions(reference: Reference, policy: RegionPolicy | None) -> NightRegions | None:
    shares = reference.joint_shares
    if reference.joint is None or shares is None or reference.night_counts is None or policy is None:
        return None
    return NightRegions(reference.joint, shares, reference.night_counts, reference.night_rows, policy)


def joint_regions(reference: Reference, policy: RegionPolicy | None) -> JointRegions | None:
    if reference.joint is None or reference.joint_shares is None or policy is None:
        return None
    return JointRegions(reference.joint, reference.joint_shares, policy, reference.joint_rows)
