"""Which model a promoted run serves, and which scores its reference describes: a fake model
whose scores name the rows and the model, so that each choice can be read off."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_modelling.checks import DataBounds
from fraudstream_modelling.choice import Choice, ServedModel, choose
from fraudstream_modelling.gate import GatePolicy
from fraudstream_modelling.windows import Windows

WINDOWS = Windows.ending_at(pd.Timestamp("2018-06-01", tz="UTC"), train_days=7, delay_days=7, holdout_days=7)
BOUNDS = DataBounds(min_rows=100, min_frauds=5)


def frame(start: pd.Timestamp, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    event_time = start + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86400, rows)), unit="s")
    data = {name: rng.uniform(0, 1, rows) for name in FEATURE_NAMES}
    return pd.DataFrame(
        {
            **data,
            "is_fraud": np.arange(rows) % 20 == 0,
            "customer_id": [f"c{i % 50}" for i in range(rows)],
            "event_time": event_time,
            "label_time": event_time + pd.Timedelta(hours=1),
        }
    )


class Model:
    """Scores each row by the model's offset plus the row's own first feature, so that scores
    tell which model scored which rows."""

    def __init__(self, offset: float) -> None:
        self.offset = offset


def run(served_model: ServedModel) -> tuple[Choice[Model], pd.DataFrame, pd.DataFrame]:
    training, holdout = frame(WINDOWS.train_start, 400, 1), frame(WINDOWS.holdout_start, 400, 2)
    fitted = iter([Model(0.0), Model(10.0)])
    choice = choose(
        WINDOWS,
        training,
        holdout,
        fit=lambda _rows, _purpose: next(fitted),
        score=lambda model, rows: model.offset + rows[FEATURE_NAMES[0]].to_numpy() + rows["is_fraud"].to_numpy(),
        champion_scores=lambda _rows: None,
        gate=GatePolicy(),
        bounds=BOUNDS,
        served_model=served_model,
    )
    return choice, training, holdout


def test_a_refit_serves_and_its_reference_is_its_scores_on_the_holdout() -> None:
    choice, _, holdout = run(ServedModel.REFIT)
    assert choice.refit
    assert choice.served.offset == 10.0
    expected = 10.0 + holdout[FEATURE_NAMES[0]].to_numpy() + holdout["is_fraud"].to_numpy()
    # Not the training window's: a first model's lies in the features' warm-up.
    np.testing.assert_array_equal(choice.reference_scores, expected)


def test_the_judged_model_serves_with_its_holdout_scores() -> None:
    choice, _, holdout = run(ServedModel.JUDGED)
    assert not choice.refit
    assert choice.served.offset == 0.0
    np.testing.assert_array_equal(choice.reference_scores, choice.judged_scores)
    assert len(choice.reference_scores) == len(holdout)
