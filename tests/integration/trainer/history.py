"""A simulated history backfilled into a Feast offline store of the test's own."""

from __future__ import annotations

from pathlib import Path

from feast import FeatureStore

from fraudstream_cli.backfill import backfill_offline_store
from fraudstream_feature_store.store import apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import write_parquet
from tests.platform import PLATFORM


def history_in_feast(config: SimulationConfig, directory: Path) -> tuple[Simulation, FeatureStore]:
    world = simulate(config)
    write_parquet(world, directory / "history")
    feast = apply_repository(PLATFORM.feature_store_redis_url, directory / "registry.db", directory / "offline")
    backfill_offline_store(directory / "history", directory / "offline")
    return world, feast
