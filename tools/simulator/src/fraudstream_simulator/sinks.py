"""Where a simulation goes: parquet files, or a Kafka replay of transactions and labels.

The replay interleaves transactions (to `transactions.raw`) and labels (to `labels`) in event
time, so a label arrives after its transaction, as it would in production. Pacing:
- as fast as it can (`Pacing.fast()`),
- accelerated event time: `speedup` simulated seconds per wall-clock second,
- a fixed rate of transactions per wall-clock second.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
from confluent_kafka import Producer

from fraudstream_common.kafka import (
    CONTENT_TYPE_HEADER,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    produce_waiting,
    producer_config,
)
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic, topic_name
from fraudstream_simulator.simulation import Simulation

logger = logging.getLogger(__name__)

EPOCH = pd.Timestamp(0, tz="UTC")


def write_parquet(simulation: Simulation, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    simulation.transactions.to_parquet(directory / "transactions.parquet", index=False)
    simulation.labels.to_parquet(directory / "labels.parquet", index=False)
    simulation.customers.to_parquet(directory / "customers.parquet", index=False)
    simulation.terminals.to_parquet(directory / "terminals.parquet", index=False)
    (directory / "ground_truth.json").write_text(json.dumps(simulation.ground_truth(), indent=2) + "\n")


class RawFormat(StrEnum):
    JSON = "json"
    PROTOBUF = "protobuf"


# How early a paced message may go rather than sleep for it: at thousands of messages a second,
# a wake-up for each costs the simulator more CPU than producing it, on cores it may share with
# the services it feeds.
PACING_SLACK_SECONDS = 0.002


@dataclass(frozen=True)
class Pacing:
    speedup: float | None = None
    rate: float | None = None
    # The replay's first days go as fast as they can (a recorded history), the rest paced.
    fast_days: float = 0.0

    @classmethod
    def fast(cls) -> Pacing:
        return cls()

    def __post_init__(self) -> None:
        if self.speedup is not None and self.rate is not None:
            raise ValueError("choose a speedup or a rate, not both")
        for value in (self.speedup, self.rate):
            if value is not None and value <= 0:
                raise ValueError("speedup and rate must be positive")


class Pace:
    """When each transaction of a replay is due: at once during the pacing's fast days (and
    with no speedup or rate), else at the wall time its pacing gives, counted from the first
    paced transaction, once `before_paced` (if any) has returned."""

    def __init__(
        self,
        pacing: Pacing,
        event_start: float,
        clock: Callable[[], float] = time.monotonic,
        before_paced: Callable[[], None] | None = None,
    ) -> None:
        self._pacing = pacing
        self._fast_until = event_start + pacing.fast_days * 86400
        self._clock = clock
        self._before_paced = before_paced
        self._paced_from: tuple[float, float, int] | None = None  # wall, event seconds, index

    def deadline(self, index: int, seconds: float) -> float | None:
        pacing = self._pacing
        if seconds < self._fast_until or (pacing.speedup is None and pacing.rate is None):
            return None
        if self._paced_from is None:
            if self._before_paced is not None:
                self._before_paced()
            self._paced_from = (self._clock(), seconds, index)
        wall, event, first = self._paced_from
        if pacing.speedup is not None:
            return wall + (seconds - event) / pacing.speedup
        return wall + (index - first) / cast(float, pacing.rate)


@dataclass
class ReplayStats:
    transactions: int = 0
    labels: int = 0
    seconds: float = 0.0


def encode_transaction_json(
    transaction_id: str,
    customer_id: str,
    terminal_id: str,
    amount: float,
    currency: str,
    event_seconds: float,
) -> bytes:
    # In whole microseconds first, so that a fraction never rounds up to a second of its own.
    whole, micros = divmod(round(event_seconds * 1_000_000), 1_000_000)
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if micros:
        timestamp += f".{micros:06d}"
    timestamp += "Z"
    return orjson.dumps(
        {
            "transaction_id": transaction_id,
            "customer_id": customer_id,
            "terminal_id": terminal_id,
            "amount": amount,
            "currency": currency,
            "timestamp": timestamp,
        }
    )


def encode_transaction_protobuf(
    transaction_id: str,
    customer_id: str,
    terminal_id: str,
    amount: float,
    currency: str,
    event_seconds: float,
) -> bytes:
    message = Transaction(
        transaction_id=transaction_id,
        customer_id=customer_id,
        terminal_id=terminal_id,
        amount=amount,
        currency=currency,
        event_time=timestamp_of(event_seconds),
    )
    return message.SerializeToString()


def replay_to_kafka(
    simulation: Simulation,
    settings: ServiceSettings,
    *,
    pacing: Pacing,
    raw_format: RawFormat = RawFormat.PROTOBUF,
    limit: int | None = None,
    include_labels: bool = True,
    progress: Callable[[ReplayStats], None] | None = None,
    run_id: str = "",
    transactions_topic: Topic = Topic.TRANSACTIONS_RAW,
    after_history: Callable[[], None] | None = None,
) -> ReplayStats:
    """Replays `simulation` to Kafka. A non-empty `run_id` prefixes every transaction id
    ("RUN-tx42"), so that replaying the same world again is not taken for duplicates.
    `after_history` is called between the pacing's fast days and the paced rest, once what came
    before (the labels reported by then too) is acknowledged; pacing starts when it returns.
    `transactions_topic=Topic.TRANSACTIONS` writes validated transactions straight to the
    features service's input, bypassing ingest (for its tests and benchmarks)."""
    if transactions_topic not in (Topic.TRANSACTIONS_RAW, Topic.TRANSACTIONS):
        raise ValueError(f"transactions go to {Topic.TRANSACTIONS_RAW} or {Topic.TRANSACTIONS}")
    if transactions_topic is Topic.TRANSACTIONS and raw_format is not RawFormat.PROTOBUF:
        raise ValueError(f"{Topic.TRANSACTIONS} carries protobuf only")
    producer = Producer(producer_config(settings, client_id="simulator", overrides={"linger.ms": 20}))
    raw_topic = topic_name(transactions_topic, settings.topic_prefix)
    labels_topic = topic_name(Topic.LABELS, settings.topic_prefix)
    encode = encode_transaction_json if raw_format is RawFormat.JSON else encode_transaction_protobuf
    content_type = (CONTENT_TYPE_JSON if raw_format is RawFormat.JSON else CONTENT_TYPE_PROTOBUF).encode()

    tx = simulation.transactions if limit is None else simulation.transactions.iloc[:limit]
    tx_seconds = exact_epoch_seconds(tx["event_time"])
    id_prefix = f"{run_id}-" if run_id else ""
    tx_ids = [id_prefix + t for t in tx["transaction_id"].tolist()]
    tx_customers = tx["customer_id"].tolist()
    tx_terminals = tx["terminal_id"].tolist()
    tx_amounts = tx["amount"].tolist()
    tx_currencies = tx["currency"].tolist()

    labels = simulation.labels
    if limit is not None:
        labels = labels[labels["transaction_id"].isin(set(tx["transaction_id"]))]
    if not include_labels:
        labels = labels.iloc[:0]
    label_seconds = exact_epoch_seconds(labels["label_time"])
    label_tx_seconds = exact_epoch_seconds(labels["transaction_time"])
    label_rows = labels[["transaction_id", "customer_id", "terminal_id", "is_fraud", "fraud_scenario"]].itertuples(
        index=False, name=None
    )

    stats = ReplayStats()
    wall_start = time.monotonic()
    event_start = int(tx_seconds[0]) if len(tx_seconds) else 0
    next_label = next(label_rows, None)
    label_index = 0

    def emit_labels_until(seconds: float) -> None:
        nonlocal next_label, label_index
        while next_label is not None and label_seconds[label_index] <= seconds:
            transaction_id, customer_id, terminal_id, is_fraud, scenario = next_label
            transaction_id = id_prefix + transaction_id
            label = Label(
                transaction_id=transaction_id,
                customer_id=customer_id,
                terminal_id=terminal_id,
                transaction_time=timestamp_of(label_tx_seconds[label_index]),
                is_fraud=bool(is_fraud),
                label_time=timestamp_of(label_seconds[label_index]),
                source="simulator",
                fraud_scenario=int(scenario),
            )
            produce_waiting(
                producer,
                labels_topic,
                label.SerializeToString(),
                transaction_id.encode(),
                [(CONTENT_TYPE_HEADER, CONTENT_TYPE_PROTOBUF.encode())],
            )
            stats.labels += 1
            label_index += 1
            next_label = next(label_rows, None)

    def history_delivered() -> None:
        undelivered = producer.flush(60)
        if undelivered:
            raise RuntimeError(f"{undelivered} simulator messages were not acknowledged by Kafka")
        if after_history is not None:
            after_history()

    pace = Pace(pacing, event_start, before_paced=None if after_history is None else history_delivered)
    for i, seconds in enumerate(tx_seconds.tolist()):
        emit_labels_until(seconds)
        deadline = pace.deadline(i, seconds)
        if deadline is not None:
            _wait_until(deadline)
        value = encode(tx_ids[i], tx_customers[i], tx_terminals[i], tx_amounts[i], tx_currencies[i], seconds)
        produce_waiting(producer, raw_topic, value, tx_customers[i].encode(), [(CONTENT_TYPE_HEADER, content_type)])
        stats.transactions += 1
        if i % 10000 == 0:
            producer.poll(0)
            if progress is not None:
                stats.seconds = time.monotonic() - wall_start
                progress(stats)
    # Labels that fall after the last transaction are emitted at the end of the replay.
    emit_labels_until(float("inf"))
    undelivered = producer.flush(60)
    if undelivered:
        raise RuntimeError(f"{undelivered} simulator messages were not acknowledged by Kafka")
    stats.seconds = time.monotonic() - wall_start
    return stats


def epoch_seconds(times: pd.Series) -> npt.NDArray[np.int64]:
    """Whole seconds since the epoch of a tz-aware datetime column."""
    return np.asarray((times - EPOCH) // pd.Timedelta(seconds=1), dtype=np.int64)


def exact_epoch_seconds(times: pd.Series) -> npt.NDArray[np.float64]:
    """Seconds since the epoch of a tz-aware datetime column, to the microsecond (the handbook's
    worlds are in whole seconds; a world moved to the wall clock is not)."""
    return np.asarray((times - EPOCH) // pd.Timedelta(microseconds=1), dtype=np.int64) / 1e6


def _wait_until(deadline: float) -> None:
    """Sleeps until `deadline`, where it is more than PACING_SLACK_SECONDS away; a message due
    sooner goes at once."""
    delay = deadline - time.monotonic()
    if delay > PACING_SLACK_SECONDS:
        time.sleep(delay)
