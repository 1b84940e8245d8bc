"""The topics that couple fraudstream's services, with their partition counts and keys.

Topic names are fixed; a deployment may prefix them all (`FRAUDSTREAM_TOPIC_PREFIX`).
"""

from __future__ import annotations

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
    ),
    TopicSpec(
        Topic.FEATURES_TERMINAL_STATE,
        4,
        "terminal_id (partition of features.by-terminal)",
        frozenset({Writer.FEATURES}),
        _COMPACT,
        scales=True,
    ),
)


def topic_name(topic: Topic, prefix: str = "") -> str:
    return f"{prefix}{topic.value}"


def topic_partitions(prefix: str = "", stream_partitions: int = 4) -> dict[str, int]:
    """Every topic's name and partition count, for a deployment whose shared streams have
    `stream_partitions` partitions (the most replicas of a stage that all have work)."""
    return {topic_name(s.topic, prefix): stream_partitions if s.scales else s.partitions for s in TOPIC_SPECS}
