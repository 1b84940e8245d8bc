from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_cli.backfill import backfill, backfill_directory
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.features.history import replay
from fraudstream_common.features.state import CustomerState
from fraudstream_common.timestamps import seconds_of
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


def test_sub_second_times_give_the_streams_features() -> None:
    """The stream reads a Timestamp as seconds + nanos / 1e9; the backfill of the same
    transactions must not round them to whole seconds."""
    times = [pd.Timestamp("2026-12-01T10:00:00.250000Z"), pd.Timestamp("2026-12-01T10:00:00.750123Z")]
    transactions = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "customer_id": ["c", "c"],
            "terminal_id": ["t", "t"],
            "event_time": times,
            "amount": [10.0, 20.0],
        }
    )
    never = pd.to_datetime([], utc=True)
    no_labels = pd.DataFrame(
        {"transaction_id": [], "terminal_id": [], "transaction_time": never, "is_fraud": [], "label_time": never}
    )
    features = backfill(transactions, no_labels).set_index("transaction_id")

    state = CustomerState()
    stamps = [Timestamp(), Timestamp()]
    for stamp, when in zip(stamps, times, strict=True):
        stamp.FromDatetime(when.to_pydatetime())
    first = seconds_of(stamps[0])
    state.add(first, 10.0, "t")
    streamed = state.features(seconds_of(stamps[1]), 20.0, "t")
    assert features.loc["b", "customer_seconds_since_last"] == streamed["customer_seconds_since_last"]
    assert features.loc["b", "customer_seconds_since_last"] == pytest.approx(0.500123)
