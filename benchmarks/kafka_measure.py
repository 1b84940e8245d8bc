"""Measuring helpers the benchmarks share (run them from the repository root)."""

from __future__ import annotations

import time
import uuid

import redis
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
    """Deletes a run's topics and the keys its services left in Redis (decisions, seen
    transactions), so that the next run finds the broker and Redis as the last one did: a
    Redis grown by every earlier run rewrites its append-only file for tens of seconds at a
    time, on the cores being measured."""
    admin = AdminClient({"bootstrap.servers": PLATFORM.kafka_bootstrap})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=60).values():
        future.result()
    client = redis.Redis.from_url(PLATFORM.redis_url)
    for pattern in (f"fraudstream:{prefix}*", f"{prefix}fraudstream:*"):
        batch = []
        for key in client.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) == 10_000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
