"""A simulated history, with ids of its own, produced to `transactions` and `labels` the way
ingest and the label feed write them; and the features service against the real platform."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_cli.backfill import label_events, transaction_events
from fraudstream_common.features.history import (
    FeatureStates,
    LabelEvent,
    TransactionEvent,
    in_event_order,
)
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import FeatureStateStore, apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.platform import PLATFORM, ServiceProcess, Topics, producer

WORLD = SimulationConfig(n_customers=300, n_terminals=600, nb_days=45)  # 25,298 transactions


@dataclass
class History:
    transactions: pd.DataFrame
    labels: pd.DataFrame

    def events(self) -> tuple[list[TransactionEvent], list[LabelEvent]]:
        return transaction_events(self.transactions), label_events(self.labels)

    def final_states(self) -> FeatureStates:
        states = FeatureStates()
        for event in in_event_order(*self.events()):
            if isinstance(event, TransactionEvent):
                states.apply_transaction(event)
            else:
                states.apply_label(event)
        return states


def simulated_history() -> History:
    """The simulator's world with every id prefixed by a fresh run id: the online store is
    shared by every test, its entities are not."""
    run = uuid.uuid4().hex[:8]
    world = simulate(WORLD)
    transactions = world.transactions.copy()
    labels = world.labels.copy()
    for frame in (transactions, labels):
        for column in ("transaction_id", "customer_id", "terminal_id"):
            frame[column] = f"{run}-" + frame[column].astype(str)
    return History(transactions, labels)


def produce_history(topics: Topics, history: History) -> None:
    """Transactions keyed by customer, labels by transaction, interleaved in event time."""
    transactions, labels = history.events()
    customers = dict(zip(history.labels["transaction_id"], history.labels["customer_id"], strict=True))
    kafka = producer()
    for event in in_event_order(transactions, labels):
        if isinstance(event, TransactionEvent):
            tx = Transaction(
                transaction_id=event.transaction_id,
                customer_id=event.customer_id,
                terminal_id=event.terminal_id,
                amount=event.amount,
                currency="EUR",
                event_time=_timestamp(event.event_time),
            )
            kafka.produce(topics(Topic.TRANSACTIONS), tx.SerializeToString(), event.customer_id.encode())
        else:
            label = Label(
                transaction_id=event.transaction_id,
                customer_id=customers[event.transaction_id],
                terminal_id=event.terminal_id,
                transaction_time=_timestamp(event.transaction_time),
                is_fraud=event.is_fraud,
                label_time=_timestamp(event.label_time),
                source="simulator",
            )
            kafka.produce(topics(Topic.LABELS), label.SerializeToString(), event.transaction_id.encode())
        kafka.poll(0)
    assert kafka.flush(60) == 0


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
            "FRAUDSTREAM_FEATURE_STORE_REDIS_URL": PLATFORM.feature_store_redis_url,
            "FRAUDSTREAM_FEATURE_REGISTRY": str(directory / "registry.db"),
            "FRAUDSTREAM_FEATURE_OFFLINE_DIR": str(directory / "offline"),
            "FRAUDSTREAM_OFFLINE_PART_MAX_SECONDS": "1",
            **env,
        },
    )


def _timestamp(seconds: float) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromNanoseconds(round(seconds * 1e9))
    return timestamp
