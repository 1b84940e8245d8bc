"""A simulated history, with ids of its own, produced to `transactions` and `labels` the way
ingest and the label feed write them; and the features service against the real platform."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraudstream_cli.backfill import final_states, label_events, transaction_events
from fraudstream_common.features.history import (
    FeatureStates,
    LabelEvent,
    TransactionEvent,
)
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import FeatureStateStore, apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from tests.platform import PLATFORM, ServiceProcess, Topics, feast_env

WORLD = SimulationConfig(n_customers=300, n_terminals=600, nb_days=45)  # 25,298 transactions


@dataclass
class History:
    world: Simulation

    @property
    def transactions(self) -> pd.DataFrame:
        return self.world.transactions

    @property
    def labels(self) -> pd.DataFrame:
        return self.world.labels

    def events(self) -> tuple[list[TransactionEvent], list[LabelEvent]]:
        return transaction_events(self.transactions), label_events(self.labels)

    def final_states(self) -> FeatureStates:
        return final_states(self.transactions, self.labels)


def simulated_history(config: SimulationConfig = WORLD) -> History:
    """The simulator's world with every id prefixed by a fresh run id: the online store is
    shared by every test, its entities are not."""
    run = uuid.uuid4().hex[:8]
    world = simulate(config)
    transactions = world.transactions.copy()
    labels = world.labels.copy()
    for frame in (transactions, labels):
        for column in ("transaction_id", "customer_id", "terminal_id"):
            frame[column] = f"{run}-" + frame[column].astype(str)
    return History(dataclasses.replace(world, transactions=transactions, labels=labels))


def produce_history(topics: Topics, history: History, pacing: Pacing | None = None) -> None:
    """Transactions keyed by customer, labels by transaction, interleaved in event time, as
    ingest and the label feed write them; as fast as they can be written unless paced."""
    replay_to_kafka(
        history.world,
        ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=topics.prefix),
        pacing=pacing or Pacing.fast(),
        transactions_topic=Topic.TRANSACTIONS,
    )


def feature_store(directory: Path) -> FeatureStateStore:
    return FeatureStateStore(
        apply_repository(PLATFORM.feature_store_redis_url, directory / "registry.db", directory / "offline")
    )


def features_service(topics: Topics, directory: Path, **env: str) -> ServiceProcess:
    return ServiceProcess(
        prefix=topics.prefix,
        log_dir=directory,
        module="fraudstream_features",
        extra_env={
            **feast_env(PLATFORM.feature_store_redis_url, directory),
            "FRAUDSTREAM_OFFLINE_PART_MAX_SECONDS": "1",
            **env,
        },
    )
