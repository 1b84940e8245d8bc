"""The features service's two stages wired together in memory, as Kafka would: a message of
each stage's input at a time, partitions interleaved at random, each partition in its order,
checkpoints taken as the runtime takes them. Fakes only: the real broker is in the
integration tests."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from fraudstream_common.deadletter import Output
from fraudstream_common.features.history import LabelEvent, TransactionEvent
from fraudstream_common.features.state import Snapshot
from fraudstream_common.kafka import HeaderList
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import (
    EnrichedTransaction,
    StreamWatermark,
    StreamWatermarks,
    Transaction,
)
from fraudstream_common.stream import Source
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import FeatureStateStore
from fraudstream_features.customers import CUSTOMER_STAGE_FEATURES, CustomerStage
from fraudstream_features.records import KIND_TRANSACTION, KIND_WATERMARK, kind_headers
from fraudstream_features.settings import FeaturesSettings
from fraudstream_features.terminals import TerminalStage
from tests.unit.kafka_fakes import FakeMessage

PARTITIONS = 4


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Store:
    """The online store's push, recorded."""

    def __init__(self) -> None:
        self.customers: dict[str, Snapshot] = {}
        self.terminals: dict[str, Snapshot] = {}

    def push(self, customers: Mapping[str, Snapshot], terminals: Mapping[str, Snapshot]) -> None:
        self.customers.update(customers)
        self.terminals.update(terminals)


def partition_of(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


class Topics:
    """Partitioned logs: what was produced, by topic and partition."""

    def __init__(self) -> None:
        self.logs: dict[Source, list[FakeMessage]] = {}

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes, headers: HeaderList) -> None:
        log = self.logs.setdefault((topic, partition), [])
        log.append(FakeMessage(value, len(log), key, headers, topic, partition))

    def produce(self, output: Output) -> None:
        partition = output.partition if output.partition is not None else partition_of(output.key or b"")
        self.append(output.topic, partition, output.key, output.value, output.headers)

    def of(self, topic: str) -> list[FakeMessage]:
        return [m for (t, _), log in sorted(self.logs.items()) if t == topic for m in log]


@dataclass
class Pipeline:
    settings: FeaturesSettings = field(
        default_factory=lambda: FeaturesSettings(max_wait_seconds=1e9, partition_max_wait_seconds=1e9)
    )
    clock: Clock = field(default_factory=Clock)
    store: Store = field(default_factory=Store)
    topics: Topics = field(default_factory=Topics)
    seed: int | None = 0  # None: partitions read in turn, not at random

    def __post_init__(self) -> None:
        partitions = {str(t): PARTITIONS for t in (Topic.TRANSACTIONS, Topic.LABELS, Topic.FEATURES_BY_TERMINAL)}
        store: FeatureStateStore = self.store  # type: ignore[assignment]
        self.customers = CustomerStage(self.settings, store, partitions, clock=self.clock)
        self.terminals = TerminalStage(self.settings, store, partitions, clock=self.clock)
        self.customers.restore([(t, p) for t in self.customers.input_topics for p in range(PARTITIONS)], {}, {})
        self.terminals.restore([(t, p) for t in self.terminals.input_topics for p in range(PARTITIONS)], {}, {})
        self._read: dict[Source, int] = {}
        self._rng = random.Random(self.seed)
        self._turns: dict[str, int] = {}

    def produce_history(self, transactions: list[TransactionEvent], labels: list[LabelEvent]) -> None:
        """Transactions keyed by customer, labels by transaction, in event order."""
        timed = [(label.label_time, 0, i) for i, label in enumerate(labels)]
        timed += [(tx.event_time, 1, i) for i, tx in enumerate(transactions)]
        for _, kind, i in sorted(timed):
            if kind == 0:
                self.produce_label(labels[i])
            else:
                self.produce_transaction(transactions[i])

    def produce_transaction(self, tx: TransactionEvent) -> None:
        key = tx.customer_id.encode()
        value = Transaction(
            transaction_id=tx.transaction_id,
            customer_id=tx.customer_id,
            terminal_id=tx.terminal_id,
            amount=tx.amount,
            event_time=timestamp_of(tx.event_time),
        ).SerializeToString()
        self.topics.append(Topic.TRANSACTIONS, partition_of(key), key, value, [])

    def produce_label(self, label: LabelEvent) -> None:
        key = label.transaction_id.encode()
        value = Label(
            transaction_id=label.transaction_id,
            terminal_id=label.terminal_id,
            transaction_time=timestamp_of(label.transaction_time),
            is_fraud=label.is_fraud,
            label_time=timestamp_of(label.label_time),
        ).SerializeToString()
        self.topics.append(Topic.LABELS, partition_of(key), key, value, [])

    def forward_marks(self, marks: Mapping[Source, tuple[float, bool]]) -> None:
        """A customer replica's watermarks (event time, idle) by source, to partition 0 of
        `features.by-terminal`."""
        value = StreamWatermarks(
            watermarks=[
                StreamWatermark(topic=topic, partition=partition, event_time=timestamp_of(at), idle=idle)
                for (topic, partition), (at, idle) in marks.items()
            ]
        ).SerializeToString()
        self.topics.append(Topic.FEATURES_BY_TERMINAL, 0, None, value, kind_headers(KIND_WATERMARK))

    def forward_transaction(self, transaction_id: str, terminal_id: str, at: float) -> None:
        """A transaction as the customer stage forwards it (its features so far all 0), to
        partition 0 of `features.by-terminal`."""
        partial = EnrichedTransaction(
            transaction=Transaction(
                transaction_id=transaction_id, terminal_id=terminal_id, event_time=timestamp_of(at)
            ),
            feature_names=CUSTOMER_STAGE_FEATURES,
            feature_values=[0.0] * len(CUSTOMER_STAGE_FEATURES),
        )
        key = terminal_id.encode()
        self.topics.append(
            Topic.FEATURES_BY_TERMINAL, 0, key, partial.SerializeToString(), kind_headers(KIND_TRANSACTION)
        )

    def run(self, *, chunk: int = 50, until_idle: bool = True) -> None:
        """Both stages read everything there is, in chunks from partitions picked at random."""
        for _ in range(1_000_000):
            moved = self._step(self.customers, chunk) | self._step(self.terminals, chunk)
            self.clock.now += 0.01
            if not moved and until_idle and self._quiet():
                for stage in (self.customers, self.terminals):
                    self._commit(stage, final=True)
                return

    def enriched(self) -> list[EnrichedTransaction]:
        return [EnrichedTransaction.FromString(m.value() or b"") for m in self.topics.of(Topic.TRANSACTIONS_ENRICHED)]

    def _step(self, stage: CustomerStage | TerminalStage, chunk: int) -> bool:
        waiting = [
            source
            for topic in stage.input_topics
            for p in range(PARTITIONS)
            if self._read.get(source := (topic, p), 0) < len(self.topics.logs.get(source, []))
        ]
        if waiting:
            if self.seed is None:
                turn = self._turns[stage.name] = self._turns.get(stage.name, 0) + 1
                source = waiting[turn % len(waiting)]
            else:
                source = self._rng.choice(waiting)
            log = self.topics.logs[source]
            start = self._read.get(source, 0)
            for message in log[start : start + chunk]:
                stage.add(message)  # type: ignore[arg-type]
            self._read[source] = min(len(log), start + chunk)
        stage.at_end(
            [
                (topic, p)
                for topic in stage.input_topics
                for p in range(PARTITIONS)
                if self._read.get((topic, p), 0) >= len(self.topics.logs.get((topic, p), []))
            ]
        )
        if stage.due():
            self._commit(stage, final=False)
            return True
        return bool(waiting)

    def _commit(self, stage: CustomerStage | TerminalStage, *, final: bool) -> None:
        checkpoint = stage.checkpoint(final=final)
        stage.store()
        for output in checkpoint.outputs:
            self.topics.produce(output)
        stage.committed()

    def _quiet(self) -> bool:
        return self.clock.now > 5 and self.customers.due() is False and self.terminals.due() is False
