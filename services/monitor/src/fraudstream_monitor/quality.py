"""Quality from delayed labels, kept apart from label-free drift.

A fraud label arrives days after its prediction (a chargeback, an investigation); a genuine
transaction never gets one. So quality is judged per window of prediction event time only once
the window has MATURED: the latest label time seen is `maturity` past the window's end, by which
time any fraud in it has been reported (the simulator reports within 7 days). Predictions are
joined to labels by transaction id in either order: a label that arrives before its prediction
waits for it (out of order), one that arrives after its window matured still counts, and the
window's figures are computed again (very late labels are rare and counted). A window matures
only once a later window has predictions too (of any version: a version swapped out scores no
later window), so that all of its own predictions were seen.
A matured window takes very late labels for `late_seconds` more of label time, then it is
dropped with its predictions, and so are fraud labels that waited that long for a prediction
that never came (one from before the monitor's replay horizon).

Memory is bounded whatever the traffic: a window joins at most `sample_size` predictions with
their labels, those whose transaction ids hash lowest (a uniform sample that every replica draws
alike), and counts the rest; its figures are the sample's, weighted up to the window's count.
Fraud labels waiting for their prediction are bounded the same way. A window smaller than the
sample is joined whole.

Per matured window (`WindowCounts`, which add up over input partitions): average precision of
the scores, precision and recall at the review budget (a decision of review or decline), and
the alert rate (the share sent to review or declined). Scores are counted in bins of
1/`SCORE_BINS`; scores in one bin are one threshold, as tied scores are to scikit-learn.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOUR = 3600.0
SCORE_BINS = 10_000


@dataclass(frozen=True)
class WindowQuality:
    start: float
    end: float
    predictions: int
    frauds: int
    average_precision: float
    precision_at_budget: float
    recall_at_budget: float
    alert_rate: float
    late_labels: int


@dataclass(frozen=True)
class WindowCounts:
    """A matured window's joined predictions: weighted counts per (score bin, alerted, fraud)."""

    start: float
    end: float
    predictions: int
    late_labels: int
    # Columns: score bin, alerted (0/1), fraud (0/1); weights: how many predictions each row stands for.
    rows: np.ndarray
    weights: np.ndarray
    frauds_joined: int

    @staticmethod
    def merged(parts: Sequence[WindowCounts]) -> WindowCounts:
        first = parts[0]
        return WindowCounts(
            start=first.start,
            end=first.end,
            predictions=sum(p.predictions for p in parts),
            late_labels=sum(p.late_labels for p in parts),
            rows=np.concatenate([p.rows for p in parts]),
            weights=np.concatenate([p.weights for p in parts]),
            frauds_joined=sum(p.frauds_joined for p in parts),
        )

    def quality(self) -> WindowQuality:
        bins, alerted, truth = self.rows[:, 0], self.rows[:, 1].astype(bool), self.rows[:, 2].astype(bool)
        weights = self.weights
        alerted_weight, fraud_weight = float(weights[alerted].sum()), float(weights[truth].sum())
        hits = float(weights[alerted & truth].sum())
        total = float(weights.sum())
        return WindowQuality(
            start=self.start,
            end=self.end,
            predictions=self.predictions,
            frauds=self.frauds_joined,
            average_precision=average_precision(truth, bins.astype(np.float64), weights),
            precision_at_budget=hits / alerted_weight if alerted_weight else 0.0,
            recall_at_budget=hits / fraud_weight if fraud_weight else 0.0,
            alert_rate=alerted_weight / total if total else 0.0,
            late_labels=self.late_labels,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "predictions": self.predictions,
            "late_labels": self.late_labels,
            "rows": base64.b64encode(self.rows.astype("<i4").tobytes()).decode(),
            "weights": base64.b64encode(self.weights.astype("<f8").tobytes()).decode(),
            "frauds_joined": self.frauds_joined,
        }

    @staticmethod
    def from_json(document: Mapping[str, Any]) -> WindowCounts:
        return WindowCounts(
            start=float(document["start"]),
            end=float(document["end"]),
            predictions=int(document["predictions"]),
            late_labels=int(document["late_labels"]),
            rows=np.frombuffer(base64.b64decode(document["rows"]), dtype="<i4").reshape(-1, 3).astype(np.int64),
            weights=np.frombuffer(base64.b64decode(document["weights"]), dtype="<f8").copy(),
            frauds_joined=int(document["frauds_joined"]),
        )


@dataclass
class _Window:
    start: float
    # transaction id -> (score bin, alerted), for the sample; the sample's hashes in a max-heap (negated).
    predictions: dict[str, tuple[int, bool]] = field(default_factory=dict)
    highest: list[tuple[int, str]] = field(default_factory=list)
    count: int = 0
    frauds: set[str] = field(default_factory=set)
    matured: bool = False
    late_labels: int = 0


class LabelJoin:
    def __init__(
        self,
        *,
        window_seconds: float = 24 * HOUR,
        maturity_seconds: float = 8 * 24 * HOUR,
        late_seconds: float = 7 * 24 * HOUR,
        sample_size: int = 25_000,
    ) -> None:
        self._window = window_seconds
        self._maturity = maturity_seconds
        self._late = late_seconds
        self._sample_size = sample_size
        # Windows ending before this were dropped: a prediction for one of them is not counted.
        self._dropped_before = float("-inf")
        self._windows: dict[float, _Window] = {}
        self._window_of: dict[str, float] = {}
        # Fraud labels whose prediction has not arrived (yet): transaction id -> label time,
        # and their hashes in a max-heap (negated), to keep the lowest `sample_size`.
        self._waiting: dict[str, float] = {}
        self._waiting_highest: list[tuple[int, str]] = []
        self._label_clock = 0.0
        self._prediction_clock = float("-inf")

    def prediction(self, transaction_id: str, event_time: float, score: float, alerted: bool) -> list[WindowCounts]:
        """Applies a prediction; returns the windows that matured with it (or the matured window
        that a fraud label waiting for it changed), with their counts."""
        start = event_time - event_time % self._window
        if transaction_id in self._window_of or start + self._window <= self._dropped_before:
            return []  # one prediction per transaction (retries and replays are the same decision)
        window = self._windows.setdefault(start, _Window(start))
        window.count += 1
        changed: list[_Window] = []
        sampled = self._sample(window, transaction_id, score_bin(score), alerted)
        if self._waiting.pop(transaction_id, None) is not None and sampled:
            window.frauds.add(transaction_id)
            if window.matured:
                window.late_labels += 1
                changed.append(window)
        return [self._counts(w) for w in changed] + self.predictions_reached(event_time)

    def predictions_reached(self, event_time: float) -> list[WindowCounts]:
        """The stream of predictions (this version's or another's: the stream is one) reached
        `event_time`; returns the windows that matured with it. A version swapped out sends no
        prediction after its last window, which then matures on its successor's."""
        start = event_time - event_time % self._window
        if start <= self._prediction_clock:
            return []
        self._prediction_clock = start
        return [self._counts(w) for w in self._mature()]

    def label(self, transaction_id: str, is_fraud: bool, label_time: float) -> list[WindowCounts]:
        """Applies a label; returns the windows that matured (or, for a very late label, the
        window it changed), with their counts."""
        self._label_clock = max(self._label_clock, label_time)
        changed: list[_Window] = []
        start = self._window_of.get(transaction_id)
        if start is None:
            if is_fraud:
                self._wait(transaction_id, label_time)
            else:
                self._waiting.pop(transaction_id, None)
        else:
            window = self._windows[start]
            before = transaction_id in window.frauds
            if is_fraud:
                window.frauds.add(transaction_id)
            else:
                window.frauds.discard(transaction_id)  # a later report cleared it
            if window.matured and before != is_fraud:
                window.late_labels += 1
                changed.append(window)
        changed += self._mature()
        self._drop_old()
        return [self._counts(window) for window in changed]

    @property
    def held(self) -> tuple[int, int, int]:
        """What is in memory: windows, predictions, fraud labels waiting for their prediction."""
        return len(self._windows), len(self._window_of), len(self._waiting)

    def _sample(self, window: _Window, transaction_id: str, score_bin: int, alerted: bool) -> bool:
        """Keeps the prediction if its hash is among the window's lowest; True if kept."""
        key = _hash(transaction_id)
        if len(window.predictions) >= self._sample_size:
            if key >= -window.highest[0][0]:
                return False
            _, evicted = heapq.heapreplace(window.highest, (-key, transaction_id))
            del window.predictions[evicted]
            del self._window_of[evicted]
            window.frauds.discard(evicted)
        else:
            heapq.heappush(window.highest, (-key, transaction_id))
        window.predictions[transaction_id] = (score_bin, alerted)
        self._window_of[transaction_id] = window.start
        return True

    def _wait(self, transaction_id: str, label_time: float) -> None:
        if transaction_id not in self._waiting:
            heapq.heappush(self._waiting_highest, (-_hash(transaction_id), transaction_id))
        self._waiting[transaction_id] = label_time
        while len(self._waiting_highest) > self._sample_size:
            _, evicted = heapq.heappop(self._waiting_highest)
            self._waiting.pop(evicted, None)

    def _drop_old(self) -> None:
        horizon = self._label_clock - self._maturity - self._late
        if horizon < self._dropped_before + self._window:
            return  # nothing new to drop before another window's worth of label time
        for start in [s for s, w in self._windows.items() if w.matured and s + self._window <= horizon]:
            for transaction_id in self._windows.pop(start).predictions:
                self._window_of.pop(transaction_id, None)
        self._waiting = {t: at for t, at in self._waiting.items() if at > horizon}
        self._waiting_highest = [(k, t) for k, t in self._waiting_highest if t in self._waiting]
        heapq.heapify(self._waiting_highest)
        self._dropped_before = horizon

    def _mature(self) -> list[_Window]:
        """Windows whose labels have matured and whose predictions have all been seen (a later
        window's began): when labels are read faster than predictions (a replay), a window waits
        for its predictions."""
        matured = []
        for window in self._windows.values():
            if (
                not window.matured
                and self._label_clock >= window.start + self._window + self._maturity
                and self._prediction_clock > window.start
            ):
                window.matured = True
                matured.append(window)
        return matured

    def _counts(self, window: _Window) -> WindowCounts:
        ids = list(window.predictions)
        rows = np.asarray(
            [(window.predictions[t][0], window.predictions[t][1], t in window.frauds) for t in ids], dtype=np.int64
        ).reshape(-1, 3)
        weight = window.count / len(ids) if ids else 0.0
        return WindowCounts(
            start=window.start,
            end=window.start + self._window,
            predictions=window.count,
            late_labels=window.late_labels,
            rows=rows,
            weights=np.full(len(ids), weight),
            frauds_joined=len(window.frauds),
        )


def score_bin(score: float) -> int:
    return round(min(max(score, 0.0), 1.0) * SCORE_BINS)


def _hash(transaction_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(transaction_id.encode(), digest_size=8).digest(), "little")


def average_precision(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Average precision as scikit-learn defines it: the sum over distinct score thresholds of
    the recall gained times the precision there (tied scores are one threshold); each row
    counted `weights` times."""
    if not truth.any():
        return 0.0
    weights = np.ones(len(truth)) if weights is None else weights
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits, weighed = scores[order], truth[order] * weights[order], weights[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives = np.cumsum(hits)[last_of_each_score]
    precision = true_positives / np.cumsum(weighed)[last_of_each_score]
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
