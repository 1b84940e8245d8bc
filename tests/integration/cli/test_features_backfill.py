"""`fraudstream features backfill` into Feast's offline store: a training set joined
point-in-time by Feast gives every transaction the vector the replay computes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fraudstream_cli.backfill import backfill
from fraudstream_cli.main import app
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_feature_store.repository import TIMESTAMP, TRANSACTION_VIEW, transaction_features_dir
from fraudstream_feature_store.store import apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from fraudstream_simulator.sinks import write_parquet
from tests.platform import PLATFORM
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = pytest.mark.integration


def test_backfill_into_the_offline_store_then_a_point_in_time_join(tmp_path: Path) -> None:
    world = simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=40))
    write_parquet(world, tmp_path / "history")
    feast = apply_repository(PLATFORM.feature_store_redis_url, tmp_path / "registry.db", tmp_path / "offline")
    arguments = [
        "features",
        "backfill",
        "--history",
        str(tmp_path / "history"),
        "--offline-dir",
        str(tmp_path / "offline"),
    ]
    for _ in range(2):  # a second backfill of the same history replaces the first
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
    assert len(list(transaction_features_dir(tmp_path / "offline").glob("backfill-*.parquet"))) == 1

    expected = backfill(world.transactions, world.labels).set_index("transaction_id")
    entities = pd.DataFrame({"transaction_id": expected.index.to_numpy(), TIMESTAMP: expected["event_time"].to_numpy()})
    joined = (
        feast.get_historical_features(entity_df=entities, features=[f"{TRANSACTION_VIEW}:{n}" for n in FEATURE_NAMES])
        .to_df()
        .set_index("transaction_id")
    )
    assert len(joined) == len(expected)
    assert_same(joined.loc[expected.index], expected, list(FEATURE_NAMES))
    # Point in time: asked for before the transaction happened, there is no vector yet.
    early = entities.assign(**{TIMESTAMP: entities[TIMESTAMP] - pd.Timedelta(seconds=1)})
    before = feast.get_historical_features(entity_df=early, features=[f"{TRANSACTION_VIEW}:tx_amount"]).to_df()
    assert before["tx_amount"].isna().all()
