"""A simulated history backfilled into a Feast offline store of the test's own, and the trainer
service pointed at it."""

from __future__ import annotations

from pathlib import Path

from feast import FeatureStore

from fraudstream_cli.backfill import backfill_offline_store
from fraudstream_feature_store.store import apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import write_parquet
from tests.platform import PLATFORM, ServiceProcess, feast_env


def history_in_feast(config: SimulationConfig, directory: Path) -> tuple[Simulation, FeatureStore]:
    world = simulate(config)
    write_parquet(world, directory / "history")
    feast = apply_repository(PLATFORM.feature_store_redis_url, directory / "registry.db", directory / "offline")
    backfill_offline_store(directory / "history", directory / "offline")
    return world, feast


def trainer_service(prefix: str, directory: Path, experiment: str, model: str, **settings: str) -> ServiceProcess:
    """The trainer service (not started) on the Feast store `history_in_feast` made in
    `directory`, small enough for a test; `settings` adds or overrides FRAUDSTREAM_ variables.
    It trains only on request unless `first_model="true"`."""
    return ServiceProcess(
        prefix=prefix,
        log_dir=directory,
        module="fraudstream_trainer",
        extra_env={
            "FRAUDSTREAM_MLFLOW_TRACKING_URI": PLATFORM.mlflow_url,
            "FRAUDSTREAM_MLFLOW_EXPERIMENT": experiment,
            "FRAUDSTREAM_REGISTERED_MODEL": model,
            **feast_env(PLATFORM.feature_store_redis_url, directory),
            "FRAUDSTREAM_MIN_ROWS": "5000",
            "FRAUDSTREAM_MIN_FRAUDS": "20",
            "FRAUDSTREAM_LABEL_PART_MAX_SECONDS": "1",
            "FRAUDSTREAM_FIRST_MODEL": "false",
            **{f"FRAUDSTREAM_{name.upper()}": value for name, value in settings.items()},
        },
    )
