from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fraudstream_cli.backfill import backfill, backfill_directory
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.features.history import replay
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from fraudstream_simulator.sinks import write_parquet
from tests.unit.common.features.test_one_definition import events


def test_backfill_from_parquet_equals_the_replay(tmp_path: Path) -> None:
    world = simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=45))
    write_parquet(world, tmp_path / "history")
    rows = backfill_directory(tmp_path / "history", tmp_path / "features.parquet")
    written = pd.read_parquet(tmp_path / "features.parquet").set_index("transaction_id")
    assert rows == len(world.transactions) == len(written)
    assert list(written.columns[3:]) == list(FEATURE_NAMES)
    transactions, labels = events(world)
    for tx, vector in replay(transactions, labels):
        assert written.loc[tx.transaction_id, list(FEATURE_NAMES)].to_dict() == vector


def test_backfill_needs_a_history(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"transactions\.parquet"):
        backfill_directory(tmp_path, tmp_path / "out.parquet")


def test_backfill_keeps_ids_with_their_rows() -> None:
    world = simulate(SimulationConfig(n_customers=50, n_terminals=100, nb_days=10))
    features = backfill(world.transactions.sample(frac=1.0, random_state=1), world.labels)
    assert features["event_time"].is_monotonic_increasing
    merged = features.merge(world.transactions, on="transaction_id", suffixes=("", "_source"))
    assert (merged["customer_id"] == merged["customer_id_source"]).all()
    assert (merged["tx_amount"] == merged["amount"]).all()
