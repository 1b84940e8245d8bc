"""The label join: predictions and delayed labels in either order, windows judged only once
mature, very late labels counted and the window judged again; average precision as
scikit-learn computes it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraudstream_monitor.quality import LabelJoin, WindowCounts, WindowQuality, average_precision

DAY = 86400.0


class Join(LabelJoin):
    """The label join, its windows' counts turned into their figures."""

    def prediction(self, transaction_id: str, event_time: float, score: float, alerted: bool) -> list[WindowQuality]:  # type: ignore[override]
        return [c.quality() for c in super().prediction(transaction_id, event_time, score, alerted)]

    def label(self, transaction_id: str, is_fraud: bool, label_time: float) -> list[WindowQuality]:  # type: ignore[override]
        return [c.quality() for c in super().label(transaction_id, is_fraud, label_time)]


def test_average_precision_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.05
    scores = np.round(rng.random(2000) * 0.5 + truth * 0.3, 2)  # rounded: many ties
    assert average_precision(truth, scores) == pytest.approx(average_precision_score(truth, scores), abs=1e-12)


def test_windows_are_judged_once_mature_with_labels_in_any_order() -> None:
    join = Join(window_seconds=DAY, maturity_seconds=8 * DAY)
    # A fraud label before its prediction (out of order), then the predictions of day 0.
    assert join.label("t3", True, label_time=0.5 * DAY) == []
    join.prediction("t1", 0.1 * DAY, score=0.9, alerted=True)
    join.prediction("t2", 0.2 * DAY, score=0.8, alerted=True)
    join.prediction("t3", 0.3 * DAY, score=0.2, alerted=False)
    join.prediction("t4", 0.4 * DAY, score=0.1, alerted=False)
    join.prediction("t1", 0.1 * DAY, score=0.9, alerted=True)  # a replay: counted once
    assert join.label("t1", True, label_time=3 * DAY) == []  # not mature yet
    assert join.prediction("t5", 5 * DAY, score=0.1, alerted=False) == []  # traffic goes on

    (day0,) = join.label("x", False, label_time=9 * DAY)  # the label clock passes day 0 + 1 + 8
    assert (day0.start, day0.predictions, day0.frauds) == (0.0, 4, 2)
    assert day0.precision_at_budget == 0.5  # t1 fraud, t2 not
    assert day0.recall_at_budget == 0.5  # t3 missed
    assert day0.alert_rate == 0.5
    assert day0.average_precision == pytest.approx(average_precision_score([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1]))
    assert day0.late_labels == 0

    # A very late label, after the window matured: counted, and the window judged again.
    (again,) = join.label("t2", True, label_time=20 * DAY)
    assert (again.frauds, again.precision_at_budget, again.late_labels) == (3, 1.0, 1)


def test_a_window_waits_for_its_predictions_when_labels_run_ahead() -> None:
    """A replay reads labels faster than predictions: the label clock passes a window's
    maturity before its predictions are in; the window is judged once a later one begins."""
    join = Join(window_seconds=DAY, maturity_seconds=8 * DAY)
    join.prediction("t1", 0.1 * DAY, score=0.9, alerted=True)
    assert join.label("t2", True, label_time=2 * DAY) == []  # its prediction is not read yet
    assert join.label("x", False, label_time=10 * DAY) == []  # matured labels, day 0 still open
    assert join.prediction("t2", 0.2 * DAY, score=0.3, alerted=False) == []
    (day0,) = join.prediction("t3", 1.5 * DAY, score=0.1, alerted=False)
    assert (day0.predictions, day0.frauds, day0.late_labels) == (2, 1, 0)
    # A waiting fraud whose prediction comes after its window was judged: judged again.
    join.label("t4", True, label_time=10 * DAY)
    (again,) = join.prediction("t4", 0.5 * DAY, score=0.5, alerted=True)
    assert (again.start, again.frauds, again.late_labels) == (0.0, 2, 1)


def test_a_window_matures_on_another_versions_predictions() -> None:
    """A version swapped out sends no prediction in a later window; the stream's, its
    successor's, say that its last window has all of its predictions."""
    join = Join(window_seconds=DAY, maturity_seconds=8 * DAY)
    join.prediction("t1", 0.1 * DAY, score=0.9, alerted=True)
    join.label("t1", True, label_time=1 * DAY)
    assert join.label("x", False, label_time=10 * DAY) == []
    assert join.predictions_reached(0.9 * DAY) == []  # the same window
    (day0,) = [counts.quality() for counts in join.predictions_reached(1.2 * DAY)]
    assert (day0.start, day0.predictions, day0.frauds) == (0.0, 1, 1)
    assert join.predictions_reached(1.5 * DAY) == []


def test_memory_follows_the_maturity_not_the_monitors_age() -> None:
    join = Join(window_seconds=DAY, maturity_seconds=8 * DAY, late_seconds=7 * DAY)
    join.label("never-predicted", True, label_time=0.5 * DAY)  # its prediction was before the replay
    for day in range(60):
        for i in range(10):
            join.prediction(f"d{day}-{i}", day * DAY + i, score=0.1, alerted=False)
        join.label(f"d{day}-0", True, label_time=day * DAY + 3 * DAY)
    windows, predictions, waiting = join.held
    # Label time reached day 62: windows ending after 62 - 8 - 7 = 47 are kept (days 47..59).
    assert windows == 13
    assert predictions == 130
    assert waiting == 0  # the label that waited for good was dropped with its time

    # A very late label for a dropped window's prediction changes nothing and is dropped in time;
    # a replayed prediction of a dropped window is not counted again.
    assert join.label("d3-5", True, label_time=62 * DAY) == []
    assert join.prediction("d3-5", 3 * DAY + 5, score=0.1, alerted=False) == []
    assert join.held[1] == 130
    join.label("x", False, label_time=80 * DAY)
    assert join.held[2] == 0


def test_a_window_larger_than_its_sample_is_judged_on_the_sample_and_memory_stays_bounded() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    truth = rng.random(n) < 0.05
    scores = np.clip(rng.normal(0.3 + 0.4 * truth, 0.15), 0, 1)
    whole, sampled = LabelJoin(sample_size=n), LabelJoin(sample_size=2_000)
    for join in (whole, sampled):
        for i in range(n):
            join.prediction(f"t{i}", i, score=float(scores[i]), alerted=bool(scores[i] > 0.6))
        for fraud in np.flatnonzero(truth).tolist():
            join.label(f"t{fraud}", True, label_time=DAY)
        join.prediction("next", 1.5 * DAY, score=0.1, alerted=False)
    assert sampled.held[1] <= 2_000 + 1
    [exact] = whole.label("x", False, label_time=10 * DAY)
    [estimate] = sampled.label("x", False, label_time=10 * DAY)
    assert exact.predictions == estimate.predictions == n
    figures = exact.quality()
    assert figures.average_precision == pytest.approx(average_precision_score(truth, np.round(scores * 1e4)), abs=1e-9)
    assert estimate.quality().average_precision == pytest.approx(figures.average_precision, abs=0.05)
    assert estimate.quality().alert_rate == pytest.approx(figures.alert_rate, abs=0.02)


def test_window_counts_of_partitions_add_up_to_the_whole() -> None:
    rng = np.random.default_rng(2)
    scores, truth = rng.random(3000), rng.random(3000) < 0.1
    joins = [LabelJoin(), LabelJoin(), LabelJoin()]
    for i in range(3000):
        for join in (joins[0], joins[1 + i % 2]):
            join.prediction(f"t{i}", i, score=float(scores[i]), alerted=bool(scores[i] > 0.8))
            if truth[i]:
                join.label(f"t{i}", True, label_time=DAY)
    for join in joins:
        join.prediction("next", 1.5 * DAY, score=0.1, alerted=False)
    whole, *parts = [join.label("x", False, label_time=10 * DAY)[0] for join in joins]
    merged = WindowCounts.from_json(WindowCounts.merged(parts).to_json())
    assert merged.quality() == whole.quality()
