"""The consume-transform-produce loop from `transactions.raw` to `transactions` and `deadletter`.

Commit order, and why:
- exactly-once (default): begin a Kafka transaction; produce the batch's outputs; add the
  input offsets to the same transaction (send_offsets_to_transaction); commit. Outputs and
  offsets become visible together or not at all. A crash before the commit leaves an open
  transaction that the restarted replica (same transactional id) aborts: read_committed
  consumers never see those outputs, and the batch is processed again. The Redis dedupe
  record of a message holds its own position, so the replay is not mistaken for a duplicate.
- at-least-once: produce the outputs, flush, and only when every one is acknowledged commit
  the offsets synchronously. A crash in between replays the batch (outputs may repeat).
In both, when Redis cannot decide dedupe, nothing is produced: the consumer seeks back to
the batch's first offsets and retries with backoff, so no message is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fraudstream_common.deadletter import produce_outputs
from fraudstream_common.kafka import consumer_config, next_offsets, offset_ranges, producer_config, usable
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.settings import ProcessingGuarantee
from fraudstream_ingest import metrics
from fraudstream_ingest.core import BatchResult, IngestCore
from fraudstream_ingest.settings import IngestSettings

logger = logging.getLogger(__name__)

GROUP_ID = "ingest"


class BatchNotCommittedError(Exception):
    """The batch's output was not committed; its input must be read again."""


class StreamProcessor(BlockingLoop):
    name = "stream"

    def __init__(self, settings: IngestSettings, core: IngestCore) -> None:
        super().__init__()
        self._settings = settings
        self._core = core
        self._exactly_once = settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE
        self._delivery_errors: list[KafkaError] = []

    def _loop(self) -> None:
        settings = self._settings
        consumer = Consumer(consumer_config(settings, group_id=GROUP_ID, client_id=f"{settings.instance_id}-consumer"))
        producer = Producer(
            producer_config(
                settings,
                client_id=f"{settings.instance_id}-producer",
                transactional_id=f"ingest-{settings.instance_id}" if self._exactly_once else None,
            )
        )
        try:
            if self._exactly_once:
                # Fences any earlier incarnation of this replica and aborts its open transaction.
                producer.init_transactions(30)
            consumer.subscribe([self._core.raw_topic])
            self._ready.set()
            metrics.STREAM_READY.set(1)
            backoff = 0.1
            while not self._stopping.is_set():
                messages = consumer.consume(
                    self._settings.batch_max_messages, timeout=self._settings.batch_max_wait_seconds
                )
                records = [m for m in messages if usable(m)]
                if not records:
                    continue
                try:
                    self._process(records, consumer, producer)
                    backoff = 0.1
                    self._ready.set()
                    metrics.STREAM_READY.set(1)
                except BatchNotCommittedError as reason:
                    self._ready.clear()
                    metrics.STREAM_READY.set(0)
                    logger.warning("batch held back, replaying: %s", reason)
                    self._rewind(consumer, records)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self._settings.redis_retry_max_seconds)
        finally:
            self._ready.clear()
            metrics.STREAM_READY.set(0)
            remaining = producer.flush(10)
            if remaining:
                logger.error("%d messages still queued at shutdown", remaining)
            consumer.close()
            logger.info("stream loop stopped")

    def _process(self, records: Sequence[Message], consumer: Consumer, producer: Producer) -> None:
        started = time.perf_counter()
        try:
            result = self._core.transform(records)
        except redis.RedisError as exc:
            metrics.REDIS_UNAVAILABLE.inc()
            raise BatchNotCommittedError(f"redis unavailable: {exc}") from exc
        offsets = next_offsets(records)
        if self._exactly_once:
            self._commit_transactionally(result, offsets, consumer, producer)
        else:
            self._produce_then_commit(result, offsets, consumer, producer)
        metrics.MESSAGES.labels("valid").inc(result.valid)
        metrics.MESSAGES.labels("duplicate").inc(result.duplicates)
        metrics.MESSAGES.labels("rejected").inc(result.rejected)
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _commit_transactionally(
        self,
        result: BatchResult,
        offsets: list[TopicPartition],
        consumer: Consumer,
        producer: Producer,
    ) -> None:
        try:
            producer.begin_transaction()
            produce_outputs(producer, result.outputs)
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort() or error.retriable():
                metrics.TRANSACTION_ABORTS.inc()
                producer.abort_transaction(30)
                raise BatchNotCommittedError(f"transaction aborted: {error}") from exc
            raise  # fatal (e.g. fenced by a newer replica with our id): stop the service

    def _produce_then_commit(
        self,
        result: BatchResult,
        offsets: list[TopicPartition],
        consumer: Consumer,
        producer: Producer,
    ) -> None:
        self._delivery_errors.clear()
        produce_outputs(producer, result.outputs, on_delivery=self._on_delivery)
        if producer.flush(60) or self._delivery_errors:
            raise BatchNotCommittedError(f"outputs not acknowledged: {self._delivery_errors[:3]}")
        consumer.commit(offsets=offsets, asynchronous=False)

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(error)

    @staticmethod
    def _rewind(consumer: Consumer, records: Sequence[Message]) -> None:
        for (topic, partition), (first, _last) in offset_ranges(records).items():
            try:
                consumer.seek(TopicPartition(topic, partition, first))
            except KafkaException as exc:
                # The partition was revoked meanwhile: its new owner resumes from the committed offset.
                logger.info("not rewinding %s[%d]: %s", topic, partition, exc)
