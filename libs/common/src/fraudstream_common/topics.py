"""The topics that couple fraudstream's services, with their partition counts and keys.

Topic names are fixed; a deployment may prefix them all (`FRAUDSTREAM_TOPIC_PREFIX`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Topic(StrEnum):
    TRANSACTIONS_RAW = "transactions.raw"
    TRANSACTIONS = "transactions"
    TRANSACTIONS_ENRICHED = "transactions.enriched"
    LABELS = "labels"
    PREDICTIONS = "predictions"
    DEADLETTER = "deadletter"
    MONITOR_ALERTS = "monitor.alerts"
    MONITOR_PARTIALS = "monitor.partials"
    RETRAIN_REQUESTS = "retrain.requests"
    MODELS_PUBLISHED = "models.published"
    MODELS_ROLLOUT = "models.rollout"
    AUDIT = "audit"
    FEATURES_BY_TERMINAL = "features.by-terminal"
    FEATURES_CUSTOMER_STATE = "features.customer-state"
    FEATURES_TERMINAL_STATE = "features.terminal-state"


class Writer(StrEnum):
    """Who writes to fraudstream's topics: each service, the operators' command line, and
    the systems outside that send transactions and fraud reports (a card processor, an issuer's
    case management). On a cluster with ACLs each is a Kafka user of its own."""

    INGEST = "ingest"
    FEATURES = "features"
    INFERENCE = "inference"
    MONITOR = "monitor"
    TRAINER = "trainer"
    ADMIN = "admin"
    PRODUCER = "producer"


SERVICES_WITH_DEAD_LETTERS = frozenset(
    {Writer.INGEST, Writer.FEATURES, Writer.INFERENCE, Writer.MONITOR, Writer.TRAINER}
)


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    partitions: int
    key: str
    writers: frozenset[Writer]
    config: dict[str, str] = field(default_factory=dict)
    # A stream that replicas share by partition: its count is the deployment's
    # `stream_partitions` (the same for all of them, so that co-partitioned topics stay so).
    scales: bool = False
    # A changelog: partition p holds the state of the keys that partition p of this topic carries.
    state_of: Topic | None = None


_DAY_MS = 24 * 3600 * 1000
_COMPACT = {"cleanup.policy": "compact"}

TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        Topic.TRANSACTIONS_RAW, 4, "any (producer's choice)", frozenset({Writer.PRODUCER, Writer.INGEST}), scales=True
    ),
    TopicSpec(Topic.TRANSACTIONS, 4, "customer_id", frozenset({Writer.INGEST}), scales=True),
    TopicSpec(Topic.TRANSACTIONS_ENRICHED, 4, "customer_id", frozenset({Writer.FEATURES}), scales=True),
    TopicSpec(Topic.LABELS, 4, "transaction_id", frozenset({Writer.PRODUCER}), scales=True),
    TopicSpec(Topic.PREDICTIONS, 4, "transaction_id", frozenset({Writer.INFERENCE}), scales=True),
    TopicSpec(Topic.DEADLETTER, 1, "original key", SERVICES_WITH_DEAD_LETTERS, {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(Topic.MONITOR_ALERTS, 1, "model name", frozenset({Writer.MONITOR})),
    # What each monitor replica counted of its input partitions, for the one that judges: one
    # partition, kept for a quality window, its label maturity and its late labels.
    TopicSpec(
        Topic.MONITOR_PARTIALS,
        1,
        "kind|version|input partition|start",
        frozenset({Writer.MONITOR}),
        {"retention.ms": str(17 * _DAY_MS)},
    ),
    TopicSpec(Topic.RETRAIN_REQUESTS, 1, "model name", frozenset({Writer.MONITOR})),
    # The trainer publishes; the monitor's promote and roll back, and `fraudstream train --publish`, too.
    TopicSpec(
        Topic.MODELS_PUBLISHED,
        1,
        "model name",
        frozenset({Writer.TRAINER, Writer.MONITOR, Writer.ADMIN}),
        {"retention.ms": "-1"},
    ),
    TopicSpec(
        Topic.MODELS_ROLLOUT, 1, "model name", frozenset({Writer.INFERENCE}), {"retention.ms": str(90 * _DAY_MS)}
    ),
    # Administrative acts, kept as long as the cluster: an audit trail is not pruned by age.
    TopicSpec(Topic.AUDIT, 1, "action", frozenset({Writer.MONITOR, Writer.ADMIN}), {"retention.ms": "-1"}),
    # The features service's stages: the customer stage repartitions by terminal for the terminal
    # stage; each logs its state to a compacted changelog co-partitioned with its input.
    TopicSpec(Topic.FEATURES_BY_TERMINAL, 4, "terminal_id", frozenset({Writer.FEATURES}), scales=True),
    TopicSpec(
        Topic.FEATURES_CUSTOMER_STATE,
        4,
        "customer_id (partition of its transactions)",
        frozenset({Writer.FEATURES}),
        _COMPACT,
        scales=True,
        state_of=Topic.TRANSACTIONS,
    ),
    TopicSpec(
        Topic.FEATURES_TERMINAL_STATE,
        4,
        "terminal_id (partition of features.by-terminal)",
        frozenset({Writer.FEATURES}),
        _COMPACT,
        scales=True,
        state_of=Topic.FEATURES_BY_TERMINAL,
    ),
)


def topic_name(topic: Topic, prefix: str = "") -> str:
    return f"{prefix}{topic.value}"


def topic_partitions(prefix: str = "", stream_partitions: int = 4) -> dict[str, int]:
    """Every topic's name and partition count, for a deployment whose shared streams have
    `stream_partitions` partitions (the most replicas of a stage that all have work)."""
    return {topic_name(s.topic, prefix): stream_partitions if s.scales else s.partitions for s in TOPIC_SPECS}


# librdkafka's default, named in every producer's config (fraudstream_common.kafka) because
# partition_of reproduces it: a changelog's keys are checked against it when state is restored.
PARTITIONER = "consistent_random"


def partition_of(key: bytes, partitions: int) -> int:
    """The partition fraudstream's producers give `key` (PARTITIONER: the key's CRC-32)."""
    return zlib.crc32(key) % partitions


class PartitionLayoutError(Exception):
    """A changelog whose partitions no longer line up with those of the topic its state belongs
    to: Kafka can add partitions to a topic, and a key then moves to another partition, away
    from its state. Starting over cannot mend that, so the stream stops and says why."""

    ADVICE = (
        "partition counts are fixed once the topics hold state: to run on more partitions, start on new "
        "topics (docs/configuration.md, 'Partition counts')"
    )

    @classmethod
    def counts(
        cls, changelog: str, changelog_partitions: int, source: str, source_partitions: int
    ) -> PartitionLayoutError:
        return cls(
            f"{changelog} has {changelog_partitions} partitions and {source} {source_partitions}: the state of "
            f"the keys in a partition of {source} is kept in the same partition of {changelog}, so both need "
            f"as many; {cls.ADVICE}"
        )

    @classmethod
    def moved(cls, changelog: str, partition: int, key: bytes, source: str, now: int) -> PartitionLayoutError:
        return cls(
            f"{changelog} partition {partition} holds the state of key {key.decode(errors='replace')!r}, which "
            f"{source} now puts in partition {now}: {source} gained partitions after that state was written, "
            f"and the key's new events would not find it; {cls.ADVICE}"
        )


def partition_layout_errors(counts: Mapping[str, int], prefix: str = "") -> list[PartitionLayoutError]:
    """For each changelog in `counts` (topic name -> partitions) whose source topic is there
    too with another partition count, the error that says so."""
    errors = []
    for spec in TOPIC_SPECS:
        if spec.state_of is None:
            continue
        changelog, source = topic_name(spec.topic, prefix), topic_name(spec.state_of, prefix)
        if changelog in counts and source in counts and counts[changelog] != counts[source]:
            errors.append(PartitionLayoutError.counts(changelog, counts[changelog], source, counts[source]))
    return errors
