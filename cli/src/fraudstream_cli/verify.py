"""`fraudstream features verify`: the vectors the stream computed against a backfill of the
same input, on a running platform.

Reads `transactions` and `labels` to their ends, then `transactions.enriched`, backfills the
transactions with the labels (fraudstream_cli.backfill) and compares the vectors transaction by
transaction, and counts transactions enriched more than once. The contract
(fraudstream_common.features.definitions): a vector flagged neither late nor early equals the
backfill's; a flagged one was computed from the history that had arrived, and may differ.
Transactions read but not enriched yet are counted, not compared.

Where Kafka's retention has removed the start of an input partition, the backfill lacks the
history before it: only transactions at least TERMINAL_HORIZON after the latest first record
of those partitions are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from confluent_kafka import KafkaError, TopicPartition
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES, TERMINAL_HORIZON
from fraudstream_common.kafka import whole_topic_reader
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.timestamps import seconds_of
from fraudstream_common.topics import Topic, topic_name

Row = TypeVar("Row")

# Features that count: equal to the last bit. The others are sums and ratios, which the stream
# may add up in another order than the backfill.
COUNT_FEATURES = frozenset(n for n in FEATURE_NAMES if "_nb_" in n or n.startswith("tx_during"))
RELATIVE_TOLERANCE = 1e-9


def mismatches(actual: pd.DataFrame, expected: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """For each feature, the positions of the rows where `actual` and `expected` (aligned) differ."""
    found = {}
    for name in names:
        a, e = actual[name].to_numpy(float), expected[name].to_numpy(float)
        same = a == e if name in COUNT_FEATURES else np.isclose(a, e, rtol=RELATIVE_TOLERANCE, atol=0.0)
        found[name] = np.flatnonzero(~same)
    return found


@dataclass
class Verification:
    compared: int = 0
    # By flag ("neither", "late", "early", "late and early"): vectors compared, and those that differ.
    vectors: dict[str, int] = field(default_factory=dict)
    differing: dict[str, int] = field(default_factory=dict)
    # Feature -> vectors flagged neither where it differs from the backfill's.
    features: dict[str, int] = field(default_factory=dict)
    # Unflagged vectors that differ, first few.
    examples: list[str] = field(default_factory=list)
    not_enriched: int = 0
    enriched_twice: int = 0  # transactions with more than one committed vector (exactly-once broken)
    compared_from: float | None = None  # event time; None: from the start of the input

    @property
    def holds(self) -> bool:
        """Whether every vector flagged neither late nor early equals the backfill's, and no
        transaction was enriched twice."""
        return self.differing.get("neither", 0) == 0 and self.enriched_twice == 0


def verify(settings: ServiceSettings) -> Verification:
    prefix = settings.topic_prefix
    transactions, tx_start = _read(settings, topic_name(Topic.TRANSACTIONS, prefix), _transaction_row)
    labels, label_start = _read(settings, topic_name(Topic.LABELS, prefix), _label_row)
    enriched, _ = _read(settings, topic_name(Topic.TRANSACTIONS_ENRICHED, prefix), _enriched_row)
    result = Verification()
    if tx_start is not None or label_start is not None:
        result.compared_from = max(s for s in (tx_start, label_start) if s is not None) + TERMINAL_HORIZON
    if not transactions:
        return result

    tx = pd.DataFrame(transactions, columns=["transaction_id", "customer_id", "terminal_id", "amount", "event_time"])
    tx = tx.drop_duplicates("transaction_id")
    label_frame = pd.DataFrame(
        labels, columns=["transaction_id", "terminal_id", "transaction_time", "is_fraud", "label_time"]
    )
    expected = backfill(tx, label_frame).set_index("transaction_id")
    if result.compared_from is not None:
        expected = expected[expected["event_time"] >= pd.Timestamp(result.compared_from, unit="s", tz="UTC")]

    streamed = pd.DataFrame(enriched, columns=["transaction_id", "flag", *FEATURE_NAMES])
    twice = streamed["transaction_id"].duplicated()
    result.enriched_twice = int(streamed.loc[twice, "transaction_id"].nunique())
    streamed = streamed[~twice].set_index("transaction_id")
    both = expected.index.intersection(streamed.index)
    result.not_enriched = len(expected) - len(both)
    result.compared = len(both)
    actual, wanted = streamed.loc[both], expected.loc[both]
    flags = actual["flag"].to_numpy()
    unflagged = flags == "neither"
    differs = np.zeros(len(both), dtype=bool)
    for name, positions in mismatches(actual, wanted, FEATURE_NAMES).items():
        differs[positions] = True
        if unflagged_there := int(unflagged[positions].sum()):
            result.features[name] = unflagged_there
    for flag in pd.unique(flags):
        of_flag = flags == flag
        result.vectors[flag] = int(of_flag.sum())
        result.differing[flag] = int((differs & of_flag).sum())
    result.examples = [str(t) for t in actual.index[differs & unflagged][:5]]
    return result


def _read(
    settings: ServiceSettings, topic: str, decode: Callable[[bytes], tuple[Row, float] | None]
) -> tuple[list[Row], float | None]:
    """Every decodable record of `topic` up to its end, and, where retention removed the start
    of a partition, the latest event time among those partitions' first records (None when no
    partition lost its start)."""
    consumer, partitions = whole_topic_reader(settings, topic, client_id="fraudstream-verify")
    rows: list[Row] = []
    truncated: set[int] = set()
    for partition in range(partitions):
        low, _high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        if low > 0:
            truncated.add(partition)
    firsts: dict[int, float] = {}
    at_end: set[int] = set()
    try:
        while len(at_end) < partitions:
            for message in consumer.consume(10000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {topic}: {error}")
                    at_end.add(message.partition() or 0)
                    continue
                decoded = decode(message.value() or b"")
                if decoded is None:
                    continue
                row, seconds = decoded
                rows.append(row)
                partition = message.partition() or 0
                if partition in truncated:
                    firsts.setdefault(partition, seconds)
    finally:
        consumer.close()
    return rows, max(firsts.values()) if firsts else None


def _transaction_row(value: bytes) -> tuple[tuple[str, str, str, float, pd.Timestamp], float] | None:
    tx = _parsed(Transaction, value)
    if tx is None or not tx.transaction_id:
        return None
    return (tx.transaction_id, tx.customer_id, tx.terminal_id, tx.amount, _time(tx.event_time)), seconds_of(
        tx.event_time
    )


def _label_row(value: bytes) -> tuple[tuple[str, str, pd.Timestamp, bool, pd.Timestamp], float] | None:
    label = _parsed(Label, value)
    if label is None or not label.transaction_id:
        return None
    return (
        label.transaction_id,
        label.terminal_id,
        _time(label.transaction_time),
        label.is_fraud,
        _time(label.label_time),
    ), seconds_of(label.label_time)


def _enriched_row(value: bytes) -> tuple[tuple[object, ...], float] | None:
    enriched = _parsed(EnrichedTransaction, value)
    if enriched is None or not enriched.transaction.transaction_id:
        return None
    if list(enriched.feature_names) != list(FEATURE_NAMES):
        return None
    flag = {(False, False): "neither", (True, False): "late", (False, True): "early"}.get(
        (enriched.late, enriched.early), "late and early"
    )
    return (enriched.transaction.transaction_id, flag, *enriched.feature_values), seconds_of(
        enriched.transaction.event_time
    )


M = TypeVar("M", Transaction, Label, EnrichedTransaction)


def _parsed(kind: type[M], value: bytes) -> M | None:
    try:
        return kind.FromString(value)
    except DecodeError:  # not this topic's message: not input
        return None


def _time(timestamp: Timestamp) -> pd.Timestamp:
    """A protobuf timestamp as the tz-aware time the backfill takes, to the nanosecond."""
    return pd.Timestamp(timestamp.seconds * 1_000_000_000 + timestamp.nanos, unit="ns", tz="UTC")
