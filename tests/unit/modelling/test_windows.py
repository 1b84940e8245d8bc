"""The training and holdout windows, laid out back from the cutoff as the settings describe."""

from __future__ import annotations

import pandas as pd

from fraudstream_modelling.windows import Windows


def test_windows_leave_a_label_delay_after_training_and_after_the_holdout() -> None:
    windows = Windows.ending_at(pd.Timestamp("2018-09-30 17:45", tz="UTC"), train_days=7, delay_days=7, holdout_days=7)
    assert windows.holdout_end == pd.Timestamp("2018-09-23", tz="UTC")
    assert windows.holdout_start == pd.Timestamp("2018-09-16", tz="UTC")
    assert windows.train_end == pd.Timestamp("2018-09-09", tz="UTC")
    assert windows.train_start == pd.Timestamp("2018-09-02", tz="UTC")
    assert windows.cutoff == pd.Timestamp("2018-09-30 17:45", tz="UTC")


def test_a_naive_cutoff_is_taken_as_utc() -> None:
    windows = Windows.ending_at(pd.Timestamp("2018-09-30"), train_days=14, delay_days=0, holdout_days=1)
    assert windows.holdout_end == pd.Timestamp("2018-09-30", tz="UTC")
    assert windows.train_start == pd.Timestamp("2018-09-15", tz="UTC")
