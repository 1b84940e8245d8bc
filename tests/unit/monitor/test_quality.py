"""The label join: predictions and delayed labels in either order, windows judged only once
mature, very late labels counted and the window judged again; average precision as
scikit-learn computes it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraudstream_monitor.quality import LabelJoin, average_precision

DAY = 86400.0


def test_average_precision_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.05
    scores = np.round(rng.random(2000) * 0.5 + truth * 0.3, 2)  # rounded: many ties
    assert average_precision(truth, scores) == pytest.approx(average_precision_score(truth, scores), abs=1e-12)


def test_windows_are_judged_once_mature_with_labels_in_any_order() -> None:
    join = LabelJoin(window_seconds=DAY, maturity_seconds=8 * DAY)
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
    join = LabelJoin(window_seconds=DAY, maturity_seconds=8 * DAY)
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


def test_memory_follows_the_maturity_not_the_monitors_age() -> None:
    join = LabelJoin(window_seconds=DAY, maturity_seconds=8 * DAY, late_seconds=7 * DAY)
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
