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
    RETRAIN_REQUESTS = "retrain.requests"
    MODELS_PUBLISHED = "models.published"
    MODELS_ROLLOUT = "models.rollout"
    FEATURES_STATE = "features.state"


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    partitions: int
    key: str
    config: dict[str, str] = field(default_factory=dict)


_DAY_MS = 24 * 3600 * 1000

TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(Topic.TRANSACTIONS_RAW, 4, "any (producer's choice)"),
    TopicSpec(Topic.TRANSACTIONS, 4, "customer_id"),
    TopicSpec(Topic.TRANSACTIONS_ENRICHED, 4, "customer_id"),
    TopicSpec(Topic.LABELS, 4, "transaction_id"),
    TopicSpec(Topic.PREDICTIONS, 4, "transaction_id"),
    TopicSpec(Topic.DEADLETTER, 1, "original key", {"retention.ms": str(30 * _DAY_MS)}),
    TopicSpec(Topic.MONITOR_ALERTS, 1, "model name"),
    TopicSpec(Topic.RETRAIN_REQUESTS, 1, "model name"),
    TopicSpec(Topic.MODELS_PUBLISHED, 1, "model name", {"retention.ms": "-1"}),
    TopicSpec(Topic.MODELS_ROLLOUT, 1, "model name", {"retention.ms": str(90 * _DAY_MS)}),
    # The features service's state changelog: the latest state of every customer and terminal.
    TopicSpec(Topic.FEATURES_STATE, 4, "c:customer_id or t:terminal_id", {"cleanup.policy": "compact"}),
)


def topic_name(topic: Topic, prefix: str = "") -> str:
    return f"{prefix}{topic.value}"
