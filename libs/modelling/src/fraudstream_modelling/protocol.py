"""The handbook's assessment protocol (Le Borgne et al., "Reproducible Machine Learning for
Credit Card Fraud Detection", chapters 3 and 5), reproduced on fraudstream's data.

A fold trains on `train_days` days of transactions, skips `delay_days` (their labels are not
known yet when the model is used), and is tested on the next `test_days` days. Cards already
known to be compromised are removed from each test day: those with a fraud in the training
period, and on test day T those with a fraud up to day T - delay - 1 (the handbook's
`get_train_test_set`, reproduced as it is). Prequential folds shift
the whole window back by `test_days` days, fold after fold (its `prequentialSplit`).

A frame here has one row per transaction: `customer_id`, `event_time` (UTC), `is_fraud`,
and the feature columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


@dataclass(frozen=True)
class Fold:
    train_start: date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @property
    def test_start(self) -> date:
        return self.train_start + timedelta(days=self.train_days + self.delay_days)

    @property
    def test_end(self) -> date:
        return self.test_start + timedelta(days=self.test_days)


def prequential_folds(
    first_train_start: date, n_folds: int = 4, train_days: int = 7, delay_days: int = 7, test_days: int = 7
) -> list[Fold]:
    """Fold 0 trains from `first_train_start`; each next fold starts `test_days` earlier."""
    return [
        Fold(first_train_start - timedelta(days=n * test_days), train_days, delay_days, test_days)
        for n in range(n_folds)
    ]


def days(frame: pd.DataFrame) -> pd.Series:
    """Each transaction's calendar day (UTC)."""
    day: pd.Series = frame["event_time"].dt.tz_convert("UTC").dt.date
    return day


def train_test_split(frame: pd.DataFrame, fold: Fold) -> tuple[pd.DataFrame, pd.DataFrame]:
    day = days(frame)
    train = frame[(day >= fold.train_start) & (day < fold.train_start + timedelta(days=fold.train_days))]
    known_compromised = set(train.loc[train["is_fraud"], "customer_id"])
    test_days = []
    for n in range(fold.test_days):
        test_day = fold.test_start + timedelta(days=n)
        # Frauds of the delay period are known by the test day, one day at a time.
        revealed = fold.train_start + timedelta(days=fold.train_days + n - 1)
        revealed_rows = frame[(day == revealed) & frame["is_fraud"]]
        known_compromised |= set(revealed_rows["customer_id"])
        rows = frame[day == test_day]
        test_days.append(rows[~rows["customer_id"].isin(known_compromised)])
    return train, pd.concat(test_days)
