"""Data checks refuse a training set with every reason named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_modelling.checks import DataBounds, DataCheckError, check_training_set

KNOWN_AT = pd.Timestamp("2018-05-01", tz="UTC")


def good(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.uniform(0, 1, size=(rows, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    frame["is_fraud"] = np.arange(rows) % 20 == 0
    frame["event_time"] = pd.Timestamp("2018-04-20", tz="UTC")
    frame["label_time"] = pd.Timestamp("2018-04-27", tz="UTC")
    return frame


BOUNDS = DataBounds(min_rows=100, min_frauds=5)


def test_a_good_set_passes_with_its_summary() -> None:
    assert check_training_set(good(), BOUNDS, labels_known_at=KNOWN_AT) == {
        "rows": 200.0,
        "frauds": 10.0,
        "fraud_share": 0.05,
    }


def test_every_failure_is_named() -> None:
    frame = good()
    frame.loc[0, "terminal_risk_7d"] = 1.5
    frame.loc[1, "tx_amount"] = -3.0
    frame.loc[2, "customer_nb_tx_1d"] = np.nan
    frame.loc[3, "label_time"] = KNOWN_AT + pd.Timedelta(days=1)
    with pytest.raises(DataCheckError) as refused:
        check_training_set(frame, BOUNDS, labels_known_at=KNOWN_AT)
    reasons = " | ".join(refused.value.failures)
    for expected in ("outside [0, 1]", "negative values in ['tx_amount']", "nulls in", "label delay not respected"):
        assert expected in reasons


def test_too_few_rows_or_frauds_and_missing_columns() -> None:
    with pytest.raises(DataCheckError, match="rows, outside"):
        check_training_set(good(50), BOUNDS, labels_known_at=KNOWN_AT)
    no_fraud = good().assign(is_fraud=False)
    with pytest.raises(DataCheckError, match="0 frauds"):
        check_training_set(no_fraud, BOUNDS, labels_known_at=KNOWN_AT)
    with pytest.raises(DataCheckError, match="missing columns"):
        check_training_set(good().drop(columns=["label_time"]), BOUNDS, labels_known_at=KNOWN_AT)
