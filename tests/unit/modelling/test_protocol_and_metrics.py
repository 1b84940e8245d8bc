"""The handbook's protocol and metrics on small, hand-made data."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraudstream_modelling.performance import card_precision_at_k, performance
from fraudstream_modelling.protocol import Fold, prequential_folds, train_test_split


def frame(rows: list[tuple[str, str, bool]]) -> pd.DataFrame:
    """(customer, day 'YYYY-MM-DD', fraud) -> one transaction at noon."""
    return pd.DataFrame(
        {
            "customer_id": [c for c, _, _ in rows],
            "event_time": pd.to_datetime([f"{d} 12:00" for _, d, _ in rows], utc=True),
            "is_fraud": [f for _, _, f in rows],
        }
    )


def test_folds_shift_back_by_the_test_period() -> None:
    folds = prequential_folds(date(2018, 8, 15))
    assert [f.train_start for f in folds] == [date(2018, 8, 15), date(2018, 8, 8), date(2018, 8, 1), date(2018, 7, 25)]
    assert folds[0].test_start == date(2018, 8, 29)
    assert folds[0].test_end == date(2018, 9, 5)


def test_known_compromised_cards_leave_the_test_set() -> None:
    """As the handbook's get_train_test_set: on test day T, the cards frauded up to day
    T - delay - 1 are known (training frauds from the start)."""
    fold = Fold(date(2018, 8, 1), train_days=2, delay_days=2, test_days=2)  # test on 08-05, 08-06
    data = frame(
        [
            ("a", "2018-08-01", True),  # compromised in training: never tested
            ("a", "2018-08-05", True),
            ("b", "2018-08-03", True),  # known from 08-06 (08-03 = 08-06 - 2 - 1)
            ("b", "2018-08-05", False),
            ("b", "2018-08-06", False),
            ("c", "2018-08-04", True),  # known only from 08-07: tested on both days
            ("c", "2018-08-05", True),
            ("c", "2018-08-06", True),
            ("d", "2018-08-06", False),
        ]
    )
    train, test = train_test_split(data, fold)
    assert list(train["customer_id"]) == ["a"]
    tested = sorted(zip(test["customer_id"], test["event_time"].dt.day, strict=True))
    assert tested == [("b", 5), ("c", 5), ("c", 6), ("d", 6)]


def test_card_precision_takes_each_cards_best_score_and_drops_cards_already_detected() -> None:
    test = frame(
        [
            ("a", "2018-08-05", True),
            ("a", "2018-08-05", False),
            ("b", "2018-08-05", False),
            ("a", "2018-08-06", True),  # detected on the 5th: not counted again
            ("c", "2018-08-06", True),
        ]
    )
    scores = np.array([0.1, 0.9, 0.5, 0.99, 0.2])
    # Day 5: top 1 is a (0.9, frauded): 1/1. Day 6: a is gone, top 1 is c: 1/1.
    assert card_precision_at_k(test, scores, k=1) == 1.0
    # k=2: day 5 a and b, one frauded: 1/2; day 6 only c: 1/2.
    assert card_precision_at_k(test, scores, k=2) == 0.5


def test_performance_names_the_three_metrics() -> None:
    test = frame([("a", "2018-08-05", True), ("b", "2018-08-05", False), ("c", "2018-08-05", False)])
    result = performance(test, np.array([0.9, 0.1, 0.2]))
    assert result == pytest.approx({"auc_roc": 1.0, "average_precision": 1.0, "card_precision_at_100": 0.01})
