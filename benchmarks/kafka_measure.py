"""Measuring helpers the benchmarks share (run them from the repository root)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream_cli.platform.settings import PlatformSettings

PLATFORM = PlatformSettings()


def output_rate(topic: str, expected: int, timeout: float, since: float | None = None) -> float:
    """Messages per second on `topic`, from its messages' timestamps, once `expected` are there:
    from the first message, or from `since` (epoch seconds) when given."""
    consumer = Consumer(
        {
            "bootstrap.servers": PLATFORM.kafka_bootstrap,
            "group.id": f"bench-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    while len(stamps) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"{topic}: only {len(stamps)} of {expected} after {timeout}s")
        for message in consumer.consume(5000, timeout=0.5):
            error = message.error()
            if error is None:
                stamps.append(message.timestamp()[1])
            elif error.code() != KafkaError._PARTITION_EOF:
                raise SystemExit(str(error))
    consumer.close()
    start = min(stamps) / 1000 if since is None else since
    return len(stamps) / max(max(stamps) / 1000 - start, 1e-3)


def delete_topics(prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": PLATFORM.kafka_bootstrap})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=60).values():
        future.result()
