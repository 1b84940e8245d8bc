"""Kafka client configuration shared by every service, and an asyncio-friendly producer.

Defaults follow the project's delivery rules: producers are idempotent with acks=all;
consumers never auto-commit (offsets are committed only after the output is acknowledged)
and read only committed transactional data.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import PARTITIONER

logger = logging.getLogger(__name__)

CONTENT_TYPE_HEADER = "content-type"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_PROTOBUF = "application/x-protobuf"

# librdkafka's own log lines, otherwise written straight to stderr, as the services' log records
# (delivered by the client's poll).
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")

HeaderValue = str | bytes | None
# What confluent-kafka may hand back: a list of pairs or a dict.
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]
HeaderList = list[tuple[str, str | bytes | None]]


def producer_config(
    settings: ServiceSettings,
    *,
    client_id: str,
    transactional_id: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        **settings.kafka_client_config(),
        "client.id": client_id,
        "logger": LIBRDKAFKA_LOGGER,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": PARTITIONER,
        "linger.ms": 5,
        "compression.type": "lz4",
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
    }
    if transactional_id is not None:
        config["transactional.id"] = f"{settings.topic_prefix}{transactional_id}"
        config["transaction.timeout.ms"] = 60000
        # A transaction begun right after a commit finds the coordinator still writing the last
        # one's markers (CONCURRENT_TRANSACTIONS) and retries after this backoff; librdkafka's
        # default (100 ms, growing) made every back-to-back checkpoint wait that long. The Java
        # client retries that error after 20 ms for the same reason (KAFKA-5477).
        config["retry.backoff.ms"] = 10
    config.update(overrides or {})
    return config


def consumer_config(
    settings: ServiceSettings, *, group_id: str, client_id: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        **settings.kafka_client_config(),
        "group.id": f"{settings.topic_prefix}{group_id}",
        "client.id": client_id,
        "logger": LIBRDKAFKA_LOGGER,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": int(settings.kafka_session_timeout_seconds * 1000),
        "heartbeat.interval.ms": int(settings.kafka_session_timeout_seconds * 1000 / 3),
        "fetch.min.bytes": 1,
        "queued.max.messages.kbytes": 65536,
    }
    config.update(overrides or {})
    return config


def partition_counts(settings: ServiceSettings, names: Sequence[str]) -> dict[str, int]:
    """How many partitions these topics have, as created; refuses topics that do not exist."""
    metadata = AdminClient(settings.kafka_client_config()).list_topics(timeout=30)
    missing = [name for name in names if name not in metadata.topics or not metadata.topics[name].partitions]
    if missing:
        raise RuntimeError(f"topics missing: {', '.join(missing)} (`fraudstream platform up` creates them)")
    return {name: len(metadata.topics[name].partitions) for name in names}


def whole_topic_reader(settings: ServiceSettings, topic: str, *, client_id: str) -> tuple[Consumer, int]:
    """A consumer that reads all of `topic` from its first record, in no consumer group of
    consequence (a fresh group id, never committed: every process sees every record), and
    reports each partition's end (`_PARTITION_EOF`), so the caller knows when it caught up.
    Returns it with the topic's partition count."""
    consumer = Consumer(
        consumer_config(
            settings,
            group_id=f"{client_id}-{uuid.uuid4().hex}",
            client_id=client_id,
            overrides={"enable.partition.eof": True},
        )
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer, len(partitions)


def header_value(headers: Headers | None, name: str) -> str | None:
    """The first header called `name` (case-insensitive), decoded as UTF-8."""
    wanted = name.lower()
    for key, value in header_items(headers):
        if key.lower() == wanted and value is not None:
            return value if isinstance(value, str) else value.decode("utf-8", errors="replace")
    return None


def header_items(headers: Headers | None) -> list[tuple[str, HeaderValue]]:
    if not headers:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def usable(message: Message) -> bool:
    """True for a record; False for an error event (logged, unless it only marks a partition's end)."""
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        logger.warning("consumer error: %s", error)
    return False


def offset_ranges(records: Sequence[Message]) -> dict[tuple[str, int], tuple[int, int]]:
    """First and last offset of the records in each partition."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for message in records:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            continue
        first, last = ranges.get((topic, partition), (offset, offset))
        ranges[(topic, partition)] = (min(first, offset), max(last, offset))
    return ranges


def next_offsets(records: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit once `records` are done: one past the last in each partition."""
    return [
        TopicPartition(topic, partition, last + 1) for (topic, partition), (_, last) in offset_ranges(records).items()
    ]


DeliveryCallback = Callable[[KafkaError | None, Message], None]


def produce_waiting(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None = None,
    headers: Headers | None = None,
    on_delivery: DeliveryCallback | None = None,
    partition: int | None = None,
) -> None:
    """`producer.produce`, serving delivery reports while the local queue is full instead of
    failing: back-pressure from the broker slows the caller down, it never drops a message.
    `partition` None lets the partitioner choose by key."""
    items = header_items(headers)
    while True:
        try:
            if partition is None:
                producer.produce(topic, value, key, headers=items, on_delivery=on_delivery)
            else:
                producer.produce(topic, value, key, partition, headers=items, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


class DeliveryError(Exception):
    """The broker did not acknowledge a produced message."""


def produce_acknowledged(
    producer: Producer, topic: str, value: bytes, key: bytes | None, headers: Headers | None, timeout: float
) -> None:
    """Produces one message and returns once the broker acknowledged it; DeliveryError when it
    refused it or did not answer within `timeout` seconds."""
    failures: list[KafkaError] = []
    delivered: list[Message] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is None:
            delivered.append(message)
        else:
            failures.append(error)

    produce_waiting(producer, topic, value, key, headers, on_delivery)
    producer.flush(timeout)
    if failures or not delivered:
        raise DeliveryError(str(failures[0]) if failures else f"no acknowledgement within {timeout:g} s")


class AsyncProducer:
    """A confluent-kafka producer whose `produce` can be awaited until the broker acknowledges.

    A background thread serves delivery callbacks; awaiting never blocks the event loop.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._producer = Producer(dict(config))
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="producer-poll", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)

    async def produce(self, topic: str, value: bytes, key: bytes | None = None, headers: Headers | None = None) -> None:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                loop.call_soon_threadsafe(_fail, delivered, DeliveryError(str(error)))
            else:
                loop.call_soon_threadsafe(_succeed, delivered)

        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=header_items(headers),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                await asyncio.sleep(0.005)  # local queue full: let the poller drain it
            except KafkaException as exc:
                raise DeliveryError(str(exc)) from exc
        await delivered

    def reachable(self, timeout: float = 2.0) -> bool:
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued, stop the poller; returns the number of messages left undelivered."""
        remaining: int = self._producer.flush(timeout)
        self._closing.set()
        self._poller.join()
        return remaining


def _succeed(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
