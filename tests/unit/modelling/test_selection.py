"""Model selection on validation folds: they end before the first test day, the search cannot
read a test fold, and the handbook's label setting hides every label for exactly 7 days."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_modelling.evaluation import HANDBOOK_TEST_TRAIN_START, handbook_labels, labelled
from fraudstream_modelling.model import ModelParams, selected_params
from fraudstream_modelling.protocol import days, prequential_folds
from fraudstream_modelling.selection import (
    Search,
    best_mean_rank,
    first_test_day,
    select,
    validation_folds,
    write_selection,
)
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate

# Two test folds training from 2018-05-08 and 2018-05-15: their test days start on 2018-05-22.
TEST_FOLDS = prequential_folds(date(2018, 5, 15), n_folds=2)
SEARCH = Search(trials=3, seed=0)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    world = simulate(SimulationConfig(n_customers=400, n_terminals=800, nb_days=60))
    return labelled(backfill(world.transactions, world.labels), world.labels)


def test_the_validation_folds_are_the_handbooks_and_end_before_the_first_test_day() -> None:
    test_folds = prequential_folds(HANDBOOK_TEST_TRAIN_START)
    folds = validation_folds(test_folds)
    assert [f.train_start.isoformat() for f in folds] == ["2018-07-11", "2018-07-04", "2018-06-27", "2018-06-20"]
    assert max(f.test_end for f in folds) <= first_test_day(test_folds) == date(2018, 8, 8)


def test_the_search_does_not_read_the_test_folds(frame: pd.DataFrame) -> None:
    chosen = select(frame, TEST_FOLDS, SEARCH)
    assert len(chosen.trials) == SEARCH.trials

    # Every row from the first test day on scrambled: the same search chooses the same.
    scrambled = frame.copy()
    later = (days(scrambled) >= first_test_day(TEST_FOLDS)).to_numpy()
    rng = np.random.default_rng(1)
    scrambled.loc[later, "is_fraud"] = rng.random(int(later.sum())) < 0.5
    for name in FEATURE_NAMES:
        scrambled.loc[later, name] = rng.permutation(scrambled.loc[later, name].to_numpy())
    again = select(scrambled, TEST_FOLDS, SEARCH)
    assert (again.params, again.value) == (chosen.params, chosen.value)

    # The check can fail: scrambling the validation folds' test days changes what is measured.
    validation_days = days(frame).between(validation_folds(TEST_FOLDS)[0].test_start, first_test_day(TEST_FOLDS))
    moved = frame.copy()
    moved.loc[validation_days.to_numpy(), "is_fraud"] = ~moved.loc[validation_days.to_numpy(), "is_fraud"]
    assert select(moved, TEST_FOLDS, SEARCH).value != chosen.value


def test_the_choice_is_good_on_every_figure_rather_than_best_on_one() -> None:
    figures = {
        0: {"auc_roc": 0.80, "average_precision": 0.75, "card_precision_at_100": 0.20},  # best AP only
        1: {"auc_roc": 0.88, "average_precision": 0.70, "card_precision_at_100": 0.29},
        2: {"auc_roc": 0.87, "average_precision": 0.69, "card_precision_at_100": 0.28},  # beaten by 1
        3: {"auc_roc": 0.89, "average_precision": 0.60, "card_precision_at_100": 0.285},
    }
    assert best_mean_rank(figures, [0, 1, 3]) == 1
    assert best_mean_rank(figures, [0, 3]) == 3
    tied = {n: {"auc_roc": 0.8, "average_precision": 0.7, "card_precision_at_100": 0.3} for n in (4, 2)}
    assert best_mean_rank(tied, [4, 2]) == 2


def test_the_selection_is_a_trial_no_other_beats_on_every_figure(frame: pd.DataFrame) -> None:
    chosen = select(frame, TEST_FOLDS, Search(trials=4, seed=2))
    figures = [{m: t[m] for m in chosen.value} for t in chosen.trials]
    assert chosen.value in figures
    assert not any(all(other[m] > chosen.value[m] for m in chosen.value) for other in figures)


def test_a_written_selection_is_what_the_trainer_reads(tmp_path: Path, frame: pd.DataFrame) -> None:
    chosen = select(frame, TEST_FOLDS, Search(trials=1, seed=3))
    written = write_selection(chosen, {"labels": "reported"}, tmp_path / "selected.json")
    saved = json.loads(written.read_text())
    assert saved["params"] == asdict(chosen.params)
    assert saved["chosen_on"] == {"labels": "reported"}
    assert saved["validation_folds"][0]["train_start"] == "2018-04-24"
    assert isinstance(selected_params(), ModelParams)


def test_handbook_labels_are_known_exactly_seven_days_after_their_transaction() -> None:
    times = pd.to_datetime(["2018-04-01 10:00", "2018-04-02 23:59"], utc=True)
    labels = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "transaction_time": times,
            "is_fraud": [True, False],
            "label_time": times + pd.to_timedelta([1, 7], unit="D"),
        }
    )
    delayed = handbook_labels(labels)
    assert (delayed["label_time"] - delayed["transaction_time"] == pd.Timedelta(days=7)).all()
    assert labels["label_time"].iloc[0] == times[0] + pd.Timedelta(days=1)  # the input is left as it was
