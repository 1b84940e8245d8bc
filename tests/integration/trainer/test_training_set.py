"""A training set built from Feast's offline store (the backfill's vectors, joined
point-in-time) and the labels known by a given time, then checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_feature_store.repository import PartsOfOtherDefinitionsError, transaction_features_dir
from fraudstream_modelling.checks import DataBounds, check_training_set
from fraudstream_simulator.config import SimulationConfig
from fraudstream_trainer.dataset import fingerprint, training_set
from fraudstream_trainer.pipeline import Outcome, Trainer, TrainRequest
from fraudstream_trainer.settings import TrainerSettings
from tests.integration.trainer.history import history_in_feast
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = pytest.mark.integration


def test_training_set_from_feast_with_labels_known_by_the_cutoff(tmp_path: Path) -> None:
    world, feast = history_in_feast(SimulationConfig(n_customers=400, n_terminals=800, nb_days=40), tmp_path)

    start = pd.Timestamp("2018-04-21", tz="UTC")
    end = start + pd.Timedelta(days=7)
    frame = training_set(feast, world.labels, start=start, end=end, labels_known_at=end + pd.Timedelta(days=7))
    in_window = world.transactions[
        (world.transactions["event_time"] >= start) & (world.transactions["event_time"] < end)
    ]
    assert set(frame["transaction_id"]) == set(in_window["transaction_id"])  # every label known 7 days on
    expected = backfill(world.transactions, world.labels).set_index("transaction_id")
    assert_same(frame.set_index("transaction_id"), expected.loc[frame["transaction_id"]], list(FEATURE_NAMES))
    truth = in_window.set_index("transaction_id")["is_fraud"]
    assert (frame.set_index("transaction_id")["is_fraud"] == truth.loc[frame["transaction_id"]]).all()
    summary = check_training_set(
        frame, DataBounds(min_rows=1_000, min_frauds=10), labels_known_at=end + pd.Timedelta(days=7)
    )
    assert summary["rows"] == len(in_window)

    # Known only three days after the window: genuine labels (7 days) and late fraud reports are not.
    early = training_set(feast, world.labels, start=start, end=end, labels_known_at=end + pd.Timedelta(days=3))
    assert len(early) < len(frame)
    assert early["is_fraud"].mean() > frame["is_fraud"].mean()  # frauds are reported sooner
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(early)


def test_parts_of_other_definitions_fail_the_join_with_what_to_do(tmp_path: Path) -> None:
    world, feast = history_in_feast(SimulationConfig(n_customers=200, n_terminals=400, nb_days=20), tmp_path)
    parts = transaction_features_dir(tmp_path / "offline")
    (backfilled,) = parts.glob("backfill-*.parquet")
    # The same rows as written before the last feature was defined.
    pd.read_parquet(backfilled).drop(columns=[FEATURE_NAMES[-1]]).to_parquet(parts / "older.parquet", index=False)

    start = pd.Timestamp("2018-04-08", tz="UTC")
    with pytest.raises(PartsOfOtherDefinitionsError, match=r"older\.parquet") as raised:
        training_set(feast, world.labels, start=start, end=start + pd.Timedelta(days=3), labels_known_at=start)
    assert raised.value.differences == {parts / "older.parquet": ([FEATURE_NAMES[-1]], [])}
    # A training run refuses the data with that message, as it refuses data that fails its checks.
    trainer = Trainer(TrainerSettings(mlflow_tracking_uri="http://127.0.0.1:9"), feast, lambda: world.labels, None)
    result = trainer.run(TrainRequest("r", "test", cutoff=start + pd.Timedelta(days=14)))
    assert result.outcome is Outcome.DATA_CHECK_FAILED
    assert result.reasons == (str(raised.value),)
