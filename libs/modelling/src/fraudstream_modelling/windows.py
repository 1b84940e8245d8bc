"""The days a training run reads: a training window, the label delay, a holdout, the label
delay again, up to the cutoff (the latest label known)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Windows:
    """Half-open day ranges; laid out as the trainer's settings describe (fraudstream_trainer.settings)."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    holdout_start: pd.Timestamp
    holdout_end: pd.Timestamp
    cutoff: pd.Timestamp

    @classmethod
    def ending_at(cls, cutoff: pd.Timestamp, *, train_days: int, delay_days: int, holdout_days: int) -> Windows:
        cutoff = cutoff.tz_convert("UTC") if cutoff.tzinfo else cutoff.tz_localize("UTC")
        holdout_end = cutoff.floor("D") - delay_days * _DAY
        holdout_start = holdout_end - holdout_days * _DAY
        train_end = holdout_start - delay_days * _DAY
        return cls(train_end - train_days * _DAY, train_end, holdout_start, holdout_end, cutoff)
