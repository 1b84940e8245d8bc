"""Quality from delayed labels, kept apart from label-free drift.

A fraud label arrives days after its prediction (a chargeback, an investigation); a genuine
transaction never gets one. So quality is judged per window of prediction event time only once
the window has MATURED: the latest label time seen is `maturity` past the window's end, by which
time any fraud in it has been reported (the simulator reports within 7 days). Predictions are
joined to labels by transaction id in either order: a label that arrives before its prediction
waits for it (out of order), one that arrives after its window matured still counts, and the
window's figures are computed again (very late labels are rare and counted). A window matures
only once a later window has predictions too, so that all of its own predictions were seen.
A matured window takes very late labels for `late_seconds` more of label time, then it is
dropped with its predictions, and so are fraud labels that waited that long for a prediction
that never came (one from before the monitor's replay horizon): memory follows the maturity,
not the monitor's age.

Per matured window: average precision of the scores, precision and recall at the review budget
(a decision of review or decline), and the alert rate (the share sent to review or declined).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HOUR = 3600.0


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


@dataclass
class _Window:
    start: float
    # transaction id -> (score, alerted)
    predictions: dict[str, tuple[float, bool]] = field(default_factory=dict)
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
    ) -> None:
        self._window = window_seconds
        self._maturity = maturity_seconds
        self._late = late_seconds
        # Windows ending before this were dropped: a prediction for one of them is not counted.
        self._dropped_before = float("-inf")
        self._windows: dict[float, _Window] = {}
        self._window_of: dict[str, float] = {}
        # Fraud labels whose prediction has not arrived (yet): transaction id -> label time.
        self._waiting: dict[str, float] = {}
        self._label_clock = 0.0
        self._prediction_clock = float("-inf")

    def prediction(self, transaction_id: str, event_time: float, score: float, alerted: bool) -> list[WindowQuality]:
        """Applies a prediction; returns the windows that matured with it (or the matured window
        that a fraud label waiting for it changed), with their figures."""
        start = event_time - event_time % self._window
        if transaction_id in self._window_of or start + self._window <= self._dropped_before:
            return []  # one prediction per transaction (retries and replays are the same decision)
        window = self._windows.setdefault(start, _Window(start))
        window.predictions[transaction_id] = (score, alerted)
        self._window_of[transaction_id] = start
        changed: list[_Window] = []
        if self._waiting.pop(transaction_id, None) is not None:
            window.frauds.add(transaction_id)
            if window.matured:
                window.late_labels += 1
                changed.append(window)
        if start > self._prediction_clock:
            self._prediction_clock = start
            changed += self._mature()
        return [self._quality(w) for w in changed]

    def label(self, transaction_id: str, is_fraud: bool, label_time: float) -> list[WindowQuality]:
        """Applies a label; returns the windows that matured (or, for a very late label, the
        window it changed), with their figures."""
        self._label_clock = max(self._label_clock, label_time)
        changed: list[_Window] = []
        start = self._window_of.get(transaction_id)
        if start is None:
            if is_fraud:
                self._waiting[transaction_id] = label_time
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
        return [self._quality(window) for window in changed]

    @property
    def held(self) -> tuple[int, int, int]:
        """What is in memory: windows, predictions, fraud labels waiting for their prediction."""
        return len(self._windows), len(self._window_of), len(self._waiting)

    def _drop_old(self) -> None:
        horizon = self._label_clock - self._maturity - self._late
        if horizon < self._dropped_before + self._window:
            return  # nothing new to drop before another window's worth of label time
        for start in [s for s, w in self._windows.items() if w.matured and s + self._window <= horizon]:
            for transaction_id in self._windows.pop(start).predictions:
                self._window_of.pop(transaction_id, None)
        self._waiting = {t: at for t, at in self._waiting.items() if at > horizon}
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

    def _quality(self, window: _Window) -> WindowQuality:
        ids = list(window.predictions)
        scores = np.asarray([window.predictions[t][0] for t in ids])
        alerted = np.asarray([window.predictions[t][1] for t in ids], dtype=bool)
        truth = np.asarray([t in window.frauds for t in ids], dtype=bool)
        frauds = int(truth.sum())
        hits = int((alerted & truth).sum())
        return WindowQuality(
            start=window.start,
            end=window.start + self._window,
            predictions=len(ids),
            frauds=frauds,
            average_precision=average_precision(truth, scores),
            precision_at_budget=hits / int(alerted.sum()) if alerted.any() else 0.0,
            recall_at_budget=hits / frauds if frauds else 0.0,
            alert_rate=float(alerted.mean()) if ids else 0.0,
            late_labels=window.late_labels,
        )


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Average precision as scikit-learn defines it: the sum over distinct score thresholds of
    the recall gained times the precision there (tied scores are one threshold)."""
    if not truth.any():
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], truth[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives = np.cumsum(hits)[last_of_each_score]
    precision = true_positives / (last_of_each_score + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
