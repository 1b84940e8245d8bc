"""The customer stage: per-customer state, partitioned like `transactions` (by customer).

Its input partitions (of `transactions` and `labels`) are merged into one event-time order
with bounded waiting (merge.py). Each transaction gets its transaction and customer features
from its customer's state, joins that state, and goes on to the terminal stage through
`features.by-terminal`, keyed by terminal, with its features so far; labels are forwarded
there keyed by terminal too. Between them, the stage writes to every partition of that topic
the watermark of each of its input partitions: how far it has been forwarded, which the
terminal stage waits on (terminals.py).

The state of a customer goes to the changelog partition of its transactions' partition, so
that whichever replica is given the partition restores exactly its customers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Message

from fraudstream_common.deadletter import Output
from fraudstream_common.features.definitions import CUSTOMER_FEATURES, TRANSACTION_FEATURES, transaction_features
from fraudstream_common.features.history import LabelEvent
from fraudstream_common.features.state import CustomerState, Snapshot
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, StreamWatermark, StreamWatermarks
from fraudstream_common.stream import Checkpoint, Source
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic, topic_name
from fraudstream_feature_store.store import FeatureStateStore
from fraudstream_features import metrics
from fraudstream_features.merge import RANK_INVALID, RANK_LABEL, RANK_TRANSACTION, EventTimeMerger, Timing
from fraudstream_features.records import (
    KIND_LABEL,
    KIND_TRANSACTION,
    KIND_WATERMARK,
    DecodedTransaction,
    Invalid,
    decode_label,
    decode_transaction,
    invalid_output,
    kind_headers,
)
from fraudstream_features.settings import FeaturesSettings

CUSTOMER_STAGE_FEATURES = (*TRANSACTION_FEATURES, *CUSTOMER_FEATURES)
# Watermarks go out at most this often while records are forwarded (and with every checkpoint).
MARK_INTERVAL_SECONDS = 0.02


@dataclass(frozen=True)
class ForwardedLabel:
    label: LabelEvent
    value: bytes  # passed on to the terminal stage as read


Decoded = DecodedTransaction | ForwardedLabel | Invalid  # each input is decoded once, when it is read


class CustomerStage:
    name = "customers"

    def __init__(
        self,
        settings: FeaturesSettings,
        store: FeatureStateStore,
        topic_partitions: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        prefix = settings.topic_prefix
        self._settings = settings
        self._store = store
        self._clock = clock
        self._order_waits = metrics.EVENT_TIME_WAIT_SECONDS.labels(self.name)
        self.transactions_topic = topic_name(Topic.TRANSACTIONS, prefix)
        self.labels_topic = topic_name(Topic.LABELS, prefix)
        self.input_topics = (self.transactions_topic, self.labels_topic)
        self.changelog_topic: str | None = topic_name(Topic.FEATURES_CUSTOMER_STATE, prefix)
        self.by_terminal_topic = topic_name(Topic.FEATURES_BY_TERMINAL, prefix)
        self.deadletter_topic = topic_name(Topic.DEADLETTER, prefix)
        self.by_terminal_partitions = topic_partitions[self.by_terminal_topic]
        self.customers: dict[str, CustomerState] = {}
        self._merger: EventTimeMerger[Decoded] = EventTimeMerger(
            settings.partition_idle_seconds,
            settings.partition_max_wait_seconds,
            clock,
            settings.partition_idle_hold_seconds,
            topic_idle_seconds={self.labels_topic: settings.label_partition_idle_seconds},
        )
        self._buffered_max = 0
        self._outputs: list[Output] = []
        self._changed: dict[str, int] = {}  # customer -> its partition
        self._online: dict[str, Snapshot] = {}
        self._produced_at: list[float] = []
        self._pending = False  # something released since the last checkpoint
        self._committed_at = clock()
        self._marks_at = 0.0
        self._marks_sent: tuple[float, frozenset[Source]] | None = None
        self._forwarded_since_marks = False

    # Stage

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self.customers = {key.decode(): CustomerState.from_json(value.decode()) for key, value in changelog.items()}
        self._merger.assign(assignment)
        self._marks_sent = None
        self.committed()
        self._online.clear()

    def add(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            return
        source = (topic, partition)
        if topic == self.labels_topic:
            label = decode_label(message)
            if isinstance(label, Invalid):
                self._merger.add(source, offset, 0.0, RANK_INVALID, label)
            else:
                forwarded = ForwardedLabel(label, message.value() or b"")
                self._merger.add(source, offset, label.label_time, RANK_LABEL, forwarded)
            return
        decoded = decode_transaction(message)
        if isinstance(decoded, Invalid):
            self._merger.add(source, offset, 0.0, RANK_INVALID, decoded)
        else:
            self._merger.add(source, offset, decoded[0].event_time, RANK_TRANSACTION, decoded)

    def at_end(self, sources: Collection[Source]) -> None:
        self._merger.at_end(sources)

    def held_back(self) -> Collection[Source]:
        """A partition holding more than its share of `max_buffered_events`, or, once they are
        all taken, enough for the order not to wait on it (two events): then only the
        partitions the order waits on are read, and the merger stays near its bound."""
        queued = self._merger.queued()
        share = max(1, self._settings.max_buffered_events // max(1, len(queued)))
        full = len(self._merger) >= self._settings.max_buffered_events
        return {source for source, n in queued.items() if n > share or (full and n >= 2)}

    def read_limit(self) -> int:
        """Up to a batch past `max_buffered_events`: with the merger full only the partitions
        its order waits on are read, and librdkafka drops what it had fetched for a partition
        when it is paused, so reading them a message at a time would cost a fetch each."""
        return self._settings.max_buffered_events + self._settings.batch_max_messages - len(self._merger)

    def resumed(self) -> None:
        self._merger.restart_waits()

    def due(self) -> bool:
        if len(self._merger) > self._buffered_max:
            self._buffered_max = len(self._merger)
            metrics.BUFFERED_MAX.labels(self.name).set(self._buffered_max)
        self._apply_released()
        now = self._clock()
        if self._forwarded_since_marks and now - self._marks_at >= MARK_INTERVAL_SECONDS:
            # Watermarks between the records they cover, not only at the checkpoint's end: the
            # terminal stage holds no more than what came since the last ones.
            self._outputs.extend(self._watermarks())
        if self._pending:
            return (
                len(self._changed) >= self._settings.push_max_rows
                or now - self._committed_at >= self._settings.push_interval_seconds
            )
        # Nothing read: still tell the terminal stage when a partition turns idle.
        return now - self._marks_at >= self._settings.push_interval_seconds and self._marks_sent != self._marks_now()

    def checkpoint(self, *, final: bool) -> Checkpoint:
        outputs = self._outputs
        for customer_id, partition in self._changed.items():
            snapshot = self.customers[customer_id].snapshot()
            self._online[customer_id] = snapshot
            outputs.append(
                Output(self.changelog_topic or "", customer_id.encode(), snapshot.json.encode(), [], partition)
            )
        outputs.extend(self._watermarks())
        return Checkpoint(outputs, dict(self._merger.committable()))

    def store(self) -> None:
        if not self._online:
            return
        started = time.perf_counter()
        self._store.push(self._online, {})
        metrics.PUSH_SECONDS.observe(time.perf_counter() - started)
        metrics.ROWS_PUSHED.labels("customer_state").inc(len(self._online))
        pushed_at = time.time()
        for produced_at in self._produced_at:
            metrics.FRESHNESS_SECONDS.observe(max(0.0, pushed_at - produced_at))
        self._online.clear()

    def committed(self) -> None:
        self._outputs = []
        self._changed.clear()
        self._produced_at.clear()
        self._pending = False
        self._committed_at = self._clock()

    # Processing, in event order

    def _apply_released(self) -> None:
        for released in self._merger.release():
            self._order_waits.observe(released.waited)
            item = released.item
            if released.timing is Timing.LATE:
                metrics.BEHIND_ORDER_EVENTS.labels(released.source[0]).inc()
            if isinstance(item, Invalid):
                self._dead_letter(item)
            elif isinstance(item, ForwardedLabel):
                self._forward(item.label.terminal_id, item.value, KIND_LABEL)
                metrics.EVENTS.labels("label").inc()
            else:
                self._apply_transaction(item, released.source, released.timing)
            self._pending = True
        metrics.BUFFERED.labels(self.name).set(len(self._merger))

    def _apply_transaction(self, decoded: DecodedTransaction, source: Source, timing: Timing) -> None:
        event, tx, produced_at = decoded
        customer = self.customers.setdefault(event.customer_id, CustomerState())
        # Only the customer's own history changes its customer features, and it comes in one
        # partition: behind the merged order (`Timing.LATE`) is not late for them. The terminal
        # stage flags it if its terminal's history had gone past it.
        late = event.event_time < customer.as_of
        state_time = customer.as_of
        vector = {
            **transaction_features(event.amount, event.event_time),
            **customer.features(event.event_time, event.amount, event.terminal_id),
        }
        customer.add(event.event_time, event.amount, event.terminal_id)
        self._changed[event.customer_id] = source[1]
        partial = EnrichedTransaction(
            transaction=tx,
            feature_names=CUSTOMER_STAGE_FEATURES,
            feature_values=[vector[name] for name in CUSTOMER_STAGE_FEATURES],
            late=late,
            early=timing is Timing.EARLY,
            customer_state_time=timestamp_of(state_time),
            input_time=timestamp_of(produced_at),
        )
        self._forward(event.terminal_id, partial.SerializeToString(), KIND_TRANSACTION)
        self._produced_at.append(produced_at)
        metrics.EVENTS.labels("transaction").inc()
        if late:
            metrics.LATE_EVENTS.inc()
        elif timing is Timing.EARLY:
            metrics.EARLY_EVENTS.labels(self.name).inc()

    def _forward(self, terminal_id: str, value: bytes, kind: str) -> None:
        self._outputs.append(Output(self.by_terminal_topic, terminal_id.encode(), value, kind_headers(kind)))
        self._forwarded_since_marks = True

    def _dead_letter(self, invalid: Invalid) -> None:
        self._outputs.append(invalid_output(self.deadletter_topic, invalid))
        metrics.EVENTS.labels("invalid").inc()

    # Watermarks

    def _marks_now(self) -> tuple[float, frozenset[Source]]:
        return _marks_summary(self._merger.watermark, self._merger.source_watermarks())

    def _watermarks(self) -> list[Output]:
        self._marks_at = self._clock()
        self._forwarded_since_marks = False
        watermark, by_source = self._merger.watermark, self._merger.source_watermarks()
        self._marks_sent = _marks_summary(watermark, by_source)
        marks = StreamWatermarks(
            watermarks=[
                StreamWatermark(
                    topic=topic,
                    partition=partition,
                    event_time=timestamp_of(max(watermark if mark is None else mark, 0.0)),
                    idle=mark is None,
                )
                for (topic, partition), mark in by_source.items()
            ]
        )
        value = marks.SerializeToString()
        return [
            Output(self.by_terminal_topic, None, value, kind_headers(KIND_WATERMARK), target)
            for target in range(self.by_terminal_partitions)
        ]


def _marks_summary(watermark: float, by_source: Mapping[Source, float | None]) -> tuple[float, frozenset[Source]]:
    """The merger's watermark and the partitions that hold no time back: what, when it changes,
    is sent even with nothing forwarded."""
    return (watermark, frozenset(source for source, mark in by_source.items() if mark is None))
