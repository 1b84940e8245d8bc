"""The features stream loop: `transactions` and `labels` in, Feast pushes, `transactions.enriched`
and the state changelog out.

Commit order, and why. A micro-batch closes every `push_interval_seconds` (or sooner when
`push_max_rows` states changed), so that freshness stays low at low traffic too:
1. The merger (merge.py) releases events in event-time order; the core applies them to the
   in-memory state and returns the enriched transactions, which are held.
2. The changed states are pushed to Feast's online store. Until that succeeds nothing is
   committed, and while the store is unreachable every input partition is paused and the
   push is retried with backoff: the service stops consuming, it never skips.
3. One Kafka transaction: the held outputs, the changed states on the changelog topic, and
   the input offsets up to what the merger released. Outputs, state and position become
   visible together or not at all.
A crash anywhere before 3 completes loses nothing and counts nothing twice: the restarted
worker restores the state from the changelog (read_committed: an aborted batch's records are
not there), resumes from the committed offsets and computes the same states again. Feast keeps
a state only when it is newer than the one it holds, so the push repeated after the crash is a
no-op. An abortable Kafka error takes the same path in process (restore, seek back).

Only exactly-once is offered: with at-least-once, the changelog and the input offsets could
disagree after a crash and a replayed transaction would be counted twice in the state.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fraudstream_common.deadletter import Output, produce_outputs
from fraudstream_common.kafka import consumer_config, producer_config
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_feature_store.store import FeatureStateStore
from fraudstream_features import metrics
from fraudstream_features.core import ChangedStates, Decoded, FeaturesCore, Invalid, LabelInput, TransactionInput
from fraudstream_features.merge import EventTimeMerger
from fraudstream_features.settings import FeaturesSettings

logger = logging.getLogger(__name__)

GROUP_ID = "features"


class _StopRequestedError(Exception):
    """Shutdown was asked for while the online store was unreachable: leave the batch uncommitted."""


class FeaturesStream(BlockingLoop):
    name = "stream"

    def __init__(self, settings: FeaturesSettings, core: FeaturesCore, store: FeatureStateStore) -> None:
        super().__init__()
        self._settings = settings
        self._core = core
        self._store = store
        self._merger: EventTimeMerger[Decoded] = EventTimeMerger(
            settings.partition_idle_seconds, settings.max_wait_seconds
        )
        self._outputs: list[Output] = []
        self._produced_at: list[float] = []
        self._buffered_max = 0
        self._batch_started: float | None = None
        self._paused: set[tuple[str, int]] = set()
        self._assignment: list[TopicPartition] = []

    # The loop

    def _loop(self) -> None:
        settings = self._settings
        consumer = Consumer(
            consumer_config(
                settings,
                group_id=GROUP_ID,
                client_id=f"{settings.instance_id}-consumer",
                overrides={"enable.partition.eof": True},
            )
        )
        producer = Producer(
            producer_config(
                settings,
                client_id=f"{settings.instance_id}-producer",
                transactional_id=f"features-{settings.instance_id}",
            )
        )
        try:
            producer.init_transactions(30)  # fences an earlier incarnation, aborts its open transaction
            consumer.subscribe(
                [self._core.transactions_topic, self._core.labels_topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
            )
            while not self._stopping.is_set():
                room = settings.max_buffered_events - len(self._merger)
                self._read(
                    consumer,
                    consumer.consume(
                        max(1, min(settings.batch_max_messages, room)), timeout=settings.poll_timeout_seconds
                    ),
                )
                self._apply_released()
                self._hold_back_partitions_ahead(consumer)
                if self._batch_due() or self._deferred_push_due():
                    self._commit_batch(consumer, producer)
            self._commit_batch(consumer, producer, final=True)
        except _StopRequestedError:
            logger.warning("stopped while the online store was unreachable; the open batch will be replayed")
        finally:
            self._ready.clear()
            metrics.READY.set(0)
            consumer.close()
            logger.info("stream loop stopped")

    def _read(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        for message in messages:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._merger.reached_end((topic, partition))
                else:
                    logger.warning("consumer error: %s", error)
                continue
            if offset is None:
                continue
            sortable = self._core.decode(message)
            self._merger.add((topic, partition), offset, sortable.event_time, sortable.rank, sortable.decoded)

    def _apply_released(self) -> None:
        for released in self._merger.release():
            decoded = released.item
            output = self._core.apply(decoded, timing=released.timing)
            if output is not None:
                self._outputs.append(output)
            if isinstance(decoded, TransactionInput):
                metrics.EVENTS.labels("transaction").inc()
                self._produced_at.append(decoded.produced_at)
            elif isinstance(decoded, LabelInput):
                metrics.EVENTS.labels("label").inc()
            elif isinstance(decoded, Invalid):
                metrics.EVENTS.labels("invalid").inc()
            if released.late:
                metrics.LATE_EVENTS.inc()
            elif released.early:
                metrics.EARLY_EVENTS.inc()
            if self._batch_started is None:
                self._batch_started = time.monotonic()
        metrics.BUFFERED.set(len(self._merger))
        if len(self._merger) > self._buffered_max:
            self._buffered_max = len(self._merger)
            metrics.BUFFERED_MAX.set(self._buffered_max)
        if self._merger.watermark > 0:
            metrics.WATERMARK.set(self._merger.watermark)

    def _hold_back_partitions_ahead(self, consumer: Consumer) -> None:
        """Backpressure. A partition is paused while it holds more than its share of
        `max_buffered_events`, or, once they are all taken, while it holds enough for the order
        not to wait on it (two events): then only the partitions the order waits on are read,
        one event at a time, and the buffer stays within a few events of its bound."""
        queued = self._merger.queued()
        share = max(1, self._settings.max_buffered_events // max(1, len(queued)))
        full = len(self._merger) >= self._settings.max_buffered_events
        held = {source for source, n in queued.items() if n > share or (full and n >= 2)}
        resume = self._paused - held
        if resume:
            consumer.resume([TopicPartition(*source) for source in resume])
        pause = held - self._paused
        if pause:
            consumer.pause([TopicPartition(*source) for source in pause])
        self._paused = held

    def _batch_due(self) -> bool:
        if self._batch_started is None:
            return False
        if self._core.changed_count >= self._settings.push_max_rows:
            return True
        return time.monotonic() - self._batch_started >= self._settings.push_interval_seconds

    def _deferred_push_due(self) -> bool:
        return self._core.longest_deferral(time.monotonic()) >= self._settings.terminal_push_max_seconds

    # One micro-batch: push, then one Kafka transaction

    def _commit_batch(self, consumer: Consumer, producer: Producer, *, final: bool = False) -> None:
        changed = self._core.take_changed()
        online = self._core.take_online(
            changed,
            watermark=self._merger.watermark,
            deferred_before=time.monotonic() - self._settings.terminal_push_max_seconds,
            everything=final,
        )
        self._push(consumer, online)
        if self._batch_started is None:
            return  # nothing new consumed: only deferred states were pushed
        pushed_at = time.time()
        for produced_at in self._produced_at:
            metrics.FRESHNESS_SECONDS.observe(max(0.0, pushed_at - produced_at))
        started = time.perf_counter()
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._merger.committable().items()]
        try:
            producer.begin_transaction()
            produce_outputs(producer, self._outputs)
            produce_outputs(producer, self._core.changelog(changed))
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if not (error.txn_requires_abort() or error.retriable()):
                raise  # fatal, e.g. fenced by a newer worker with our transactional id
            metrics.TRANSACTION_ABORTS.inc()
            logger.warning("micro-batch aborted, recovering from the changelog: %s", error)
            producer.abort_transaction(30)
            self._recover(consumer)
            return
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self._clear_batch()
        self._record_lag(consumer, offsets)

    def _push(self, consumer: Consumer, changed: ChangedStates) -> None:
        """Pushes until the online store takes it; meanwhile every input partition is paused."""
        backoff = 0.1
        paused = False
        while True:
            started = time.perf_counter()
            try:
                self._store.push(changed.customers, changed.terminals)
                break
            except (redis.RedisError, OSError) as exc:
                metrics.ONLINE_STORE_UNAVAILABLE.inc()
                if not paused:
                    logger.warning("online store unreachable, consumption paused: %s", exc)
                    self._ready.clear()
                    metrics.READY.set(0)
                    consumer.pause(self._assignment)
                    paused = True
                if self._stopping.wait(backoff):
                    raise _StopRequestedError from exc
                backoff = min(backoff * 2, self._settings.redis_retry_max_seconds)
                # Keeps the consumer in its group; paused partitions deliver nothing new.
                self._read(consumer, consumer.consume(self._settings.batch_max_messages, timeout=0))
        metrics.PUSH_SECONDS.observe(time.perf_counter() - started)
        metrics.ROWS_PUSHED.labels("customer_state").inc(len(changed.customers))
        metrics.ROWS_PUSHED.labels("terminal_state").inc(len(changed.terminals))
        if paused:
            logger.info("online store reachable again, consuming")
            consumer.resume(self._assignment)
            self._paused.clear()
            self._merger.restart_waits()
            self._ready.set()
            metrics.READY.set(1)

    def _clear_batch(self) -> None:
        self._outputs.clear()
        self._produced_at.clear()
        self._batch_started = None

    def _record_lag(self, consumer: Consumer, committed: list[TopicPartition]) -> None:
        positions = {(tp.topic, tp.partition): tp.offset for tp in committed}
        lag: dict[str, int] = {}
        for tp in self._assignment:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            position = positions.get((tp.topic, tp.partition))
            if high >= 0 and position is not None and position >= 0:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - position)
        for topic, messages in lag.items():
            metrics.LAG.labels(topic).set(messages)

    # State: restored from the changelog whenever the partitions are (re)assigned

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._ready.clear()
        metrics.READY.set(0)
        self._assignment = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        self._restore()
        logger.info("assigned %d partitions; state restored", len(partitions))
        self._ready.set()
        metrics.READY.set(1)

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        # An uncommitted batch cannot be committed any more; the next assignment restores.
        self._clear_batch()
        self._paused.clear()

    def _restore(self) -> None:
        started = time.perf_counter()
        self._core.restore(self._read_changelog())
        self._merger.assign((tp.topic, tp.partition) for tp in self._assignment)
        self._clear_batch()
        logger.info(
            "state restored from the changelog",
            extra={
                "customers": len(self._core.states.customers),
                "terminals": len(self._core.states.terminals),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _recover(self, consumer: Consumer) -> None:
        self._restore()
        for tp in consumer.committed(self._assignment, timeout=30):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _read_changelog(self) -> dict[bytes, bytes]:
        """The latest committed record of every key on the changelog topic."""
        topic = self._core.changelog_topic
        reader = Consumer(
            consumer_config(
                self._settings,
                group_id=f"features-restore-{uuid.uuid4().hex}",
                client_id=f"{self._settings.instance_id}-restore",
                overrides={"enable.partition.eof": True},
            )
        )
        records: dict[bytes, bytes] = {}
        try:
            partitions = reader.list_topics(topic, timeout=30).topics[topic].partitions
            pending = set()
            for partition in partitions:
                low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                if high > low:
                    pending.add(partition)
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
            while pending:
                if self._stopping.is_set():
                    raise _StopRequestedError
                for message in reader.consume(10000, timeout=1.0):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(error)
                        pending.discard(message.partition())
                        continue
                    key, value = message.key(), message.value()
                    if key is None:
                        continue
                    if value is None:
                        records.pop(key, None)
                    else:
                        records[key] = value
        finally:
            reader.close()
        return records
