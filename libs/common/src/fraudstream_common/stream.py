"""The stream runtime every consume-transform-produce loop runs on: consume, transform,
produce and commit, with state partitioned like the input and restored from a changelog when
partitions move.

A service provides a `Stage` (its transform, with the state of the partitions it is given);
the runtime owns the Kafka clients, the consumer group's rebalances, the commit order, the
delivery guarantee, the retry of an unreachable store, readiness and the lag metrics.

Commit order, and why. A checkpoint closes when the stage says it is due:
1. The stage hands over what its checkpoint commits: the outputs (changelog records among
   them, on the changelog partition of the input partition the state belongs to) and, for
   each input partition, the offset before which everything has been applied.
2. The stage's side effect on a store outside Kafka (a Feast push) runs.
   While a store the stage needs in 1 or 2 is unreachable, nothing is committed: every input
   partition is paused and the step is retried with backoff, so the stage stops, it never
   skips. Writes to that store must be idempotent (a write repeated after a crash changes
   nothing), and a checkpoint that raises must have changed nothing.
3. exactly-once (the default): one Kafka transaction, the outputs and the input offsets,
   visible together or not at all. A crash anywhere before it completes loses nothing and
   counts nothing twice: the partitions' next owner restores their state from the changelog
   (read_committed: an aborted checkpoint's records are not there) and resumes from the
   committed offsets. A checkpoint not committed takes the same path in process: the replica
   starts over with a new consumer and producer (as Kafka Streams closes its tasks dirty and
   rejoins the group), so no client state a broker fault left behind outlives it.
   at-least-once: the outputs are produced and flushed, and only once the broker acknowledged
   every one are the offsets committed. A crash in between replays the checkpoint: outputs may
   repeat, nothing is lost. An output not acknowledged takes the recovery path above.
4. A stage run with `overlap_commits` reads and applies its next input while the broker
   commits the checkpoint (the commit's round trips, not the stage's work, are most of a
   checkpoint's time under load). The next checkpoint closes only once that commit is through:
   one transaction is open at a time, and checkpoints commit in order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from fraudstream_common.deadletter import Output, produce_outputs
from fraudstream_common.kafka import consumer_config, next_offsets, producer_config, whole_topic_reader
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.settings import ProcessingGuarantee, ServiceSettings
from fraudstream_common.topics import PartitionLayoutError, partition_of

logger = logging.getLogger(__name__)

Source = tuple[str, int]  # (topic, partition)
T = TypeVar("T")

COMMIT_SECONDS = Histogram(
    "fraudstream_stream_commit_duration_seconds",
    "Time to commit one checkpoint (outputs, changelog and offsets) to Kafka, by stage.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ABORTS = Counter(
    "fraudstream_stream_transaction_aborts_total",
    "Checkpoints not committed (aborted, or outputs not acknowledged) and recovered from the last one.",
    ["stage"],
)
STORE_UNAVAILABLE = Counter(
    "fraudstream_stream_store_unavailable_total",
    "Side-effect attempts that failed: the store did not answer.",
    ["stage"],
)
STARTS_OVER = Counter(
    "fraudstream_stream_starts_over_total",
    "Times a replica started over from its last committed checkpoint with new Kafka clients.",
    ["stage"],
)
LAG = Gauge(
    "fraudstream_stream_consumer_lag_messages", "Messages not yet committed, per input topic.", ["stage", "topic"]
)
ASSIGNED = Gauge("fraudstream_stream_assigned_partitions", "Input partitions this replica holds.", ["stage"])
READY = Gauge("fraudstream_stream_ready", "1 while consuming, 0 while restoring or held back by a store.", ["stage"])
RESTORE_SECONDS = Histogram(
    "fraudstream_stream_restore_duration_seconds", "Time to restore the state of an assignment.", ["stage"]
)

TRANSACTION_TIMEOUT_MS = 10_000
STORE_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, OSError)
FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
REFENCED_SECONDS = 60.0
SEND_OFFSETS_SECONDS = TRANSACTION_TIMEOUT_MS // 1000
# The coordinator aborts a transaction open longer than its timeout: waiting longer for
# send_offsets_to_transaction gains nothing, and the stage stands still while it waits.
SEND_OFFSETS_GIVE_UP_SECONDS = TRANSACTION_TIMEOUT_MS / 1000 + 5.0


@dataclass
class Checkpoint:
    """What one checkpoint commits."""

    outputs: list[Output] = field(default_factory=list)
    offsets: dict[Source, int] = field(default_factory=dict)


class Batch:
    """Input messages collected for one checkpoint of a stateless stage, run with its batch
    wait as the runtime's poll timeout: whatever one read brought (up to `max_messages`) is due
    at once, as a read waits at most that long. Waiting again for the time since the first
    message would add a second wait."""

    def __init__(self, max_messages: int) -> None:
        self._max_messages = max_messages
        self.messages: list[Message] = []

    def add(self, message: Message) -> None:
        self.messages.append(message)

    def due(self) -> bool:
        return bool(self.messages)

    def room(self) -> int:
        return self._max_messages - len(self.messages)

    def offsets(self) -> dict[Source, int]:
        """For each partition, the offset after its last message."""
        return {(tp.topic, tp.partition): tp.offset for tp in next_offsets(self.messages)}

    def clear(self) -> None:
        self.messages = []


class Stage(Protocol):
    """A stateful transform, partitioned like its first input topic."""

    @property
    def name(self) -> str: ...

    @property
    def input_topics(self) -> Sequence[str]:
        """The topics read; the state is partitioned like the first."""

    @property
    def changelog_topic(self) -> str | None: ...

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        """Start over with these input partitions, the latest changelog record of each key of
        their state, and the offset committed for each (negative: none yet)."""

    def add(self, message: Message) -> None:
        """Take one input message (apply it, or hold it until it can be)."""

    def at_end(self, sources: Collection[Source]) -> None:
        """The input partitions read to their end, given after every read: for each, the
        consumer has had everything up to the end the broker last reported, and the others are
        not at theirs."""

    def due(self) -> bool:
        """Whether a checkpoint should close now."""

    def held_back(self) -> Collection[Source]:
        """The input partitions to pause now (backpressure); the others are read."""

    def read_limit(self) -> int:
        """The most messages the next read may bring."""

    def resumed(self) -> None:
        """Reading starts again after the store was unreachable (the time paused was nobody's
        input's fault)."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        """The outputs and offsets the next commit holds (`final`: the stage stops); may raise
        one of STORE_ERRORS, having changed nothing, while a store it reads is unreachable."""

    def store(self) -> None:
        """The side effect that must succeed before the checkpoint commits; raises one of
        STORE_ERRORS while the store is unreachable."""

    def committed(self) -> None:
        """The checkpoint is committed (or was abandoned by a rebalance)."""


@runtime_checkable
class ReplayedStage(Stage, Protocol):
    """A stage whose state is what its input brought lately: instead of a changelog, it is
    restored by reading its input partitions again, from `replay_seconds` back (by record time;
    infinite: from the beginning) up to the committed offsets, as Kafka Streams restores a
    table from its source topic. A partition with no committed offset is history up to its end
    (that end is committed), and reading goes on from there."""

    @property
    def replay_seconds(self) -> float: ...

    def replay(self, message: Message) -> None:
        """Take one message read again: it rebuilds the state, its outputs were committed."""


class _StopRequestedError(Exception):
    """Shutdown was asked for while restoring or while the store was unreachable."""


class _StartOverError(Exception):
    """The replica cannot go on with its Kafka clients: a checkpoint was not committed (its
    transaction aborted, or an output or the offsets not acknowledged), or an assignment could
    not be restored. It starts over from the last committed checkpoint with new ones.
    `producer_busy`: a call is still blocked in the producer, which is left alone, not closed."""

    def __init__(self, reason: str, *, producer_busy: bool = False) -> None:
        super().__init__(reason)
        self.producer_busy = producer_busy


class _InThread:
    """A call run in a daemon thread of its own, so that the caller can go on or give up on it."""

    def __init__(self, call: Callable[[], None], what: str) -> None:
        self._done = threading.Event()
        self._failures: list[BaseException] = []
        self.returned_at = math.inf  # time.perf_counter()

        def run() -> None:
            try:
                call()
            except BaseException as exc:  # handed to the caller
                self._failures.append(exc)
            finally:
                self.returned_at = time.perf_counter()
                self._done.set()

        threading.Thread(target=run, name=what, daemon=True).start()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, seconds: float | None = None) -> bool:
        """Whether the call returned within `seconds` (None: waits for it); its exception, if
        it raised one, is raised here."""
        if not self._done.wait(seconds):
            return False
        if self._failures:
            raise self._failures[0]
        return True


def _within(seconds: float, call: Callable[[], None], what: str) -> None:
    """Runs a client call that can block past its own timeout in a thread of its own, and gives
    up on it after `seconds` (_StartOverError, producer_busy). librdkafka's
    send_offsets_to_transaction waits for a group coordinator that restarted for as long as
    nothing else re-triggers its request (confluentinc/librdkafka#5456, #5511): minutes, in the
    chaos suite's broker restart."""
    if not _InThread(call, what).wait(seconds):
        raise _StartOverError(f"{what} did not return within {seconds:.0f} s", producer_busy=True)


@dataclass
class _Commit:
    """A checkpoint handed over, its commit waiting on the broker."""

    offsets: list[TopicPartition]
    started: float
    call: _InThread


class StreamRuntime(BlockingLoop):
    def __init__(
        self,
        settings: ServiceSettings,
        stage: Stage,
        *,
        group_id: str,
        transactional_id: str,
        guarantee: ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE,
        max_messages: int = 5000,
        poll_timeout_seconds: float = 0.02,
        store_retry_max_seconds: float = 5.0,
        retried: tuple[type[Exception], ...] = STORE_ERRORS,
        consumer_overrides: Mapping[str, object] | None = None,
        end_within_seconds: float | None = None,
        overlap_commits: bool = False,
    ) -> None:
        """`retried`: the errors of the stage's checkpoint and store that mean a store is
        unreachable (the step is retried with backoff); any other stops the stream.

        `end_within_seconds`: for a stage that waits on the ends of its partitions (`at_end`),
        how soon after the last record it hears that a partition is at its end. librdkafka
        reports an end only with a fetch answer that brings nothing new. On a transactional
        input the last record is followed by its commit marker, so the answer that brought the
        record cannot say so; the next one comes after the broker's long poll
        (`fetch.wait.max.ms`, 500 ms by default) when nothing follows. None: that default.

        `overlap_commits`: the stage goes on reading and applying its input while a checkpoint
        waits for the broker to commit it, up to its `read_limit` (the next checkpoint waits for
        that commit). The stage is told `committed()` as soon as its checkpoint is handed over,
        so `checkpoint()` must hand over all it returns; a commit that then fails starts the
        replica over from the last committed checkpoint, as any other."""
        super().__init__()
        self.name = stage.name
        self._settings = settings
        self._stage = stage
        self._group_id = group_id
        self._transactional_id = transactional_id
        self._exactly_once = guarantee is ProcessingGuarantee.EXACTLY_ONCE
        self._max_messages = max_messages
        self._poll_timeout = poll_timeout_seconds
        self._store_retry_max = store_retry_max_seconds
        self._retried = retried
        self._consumer_overrides = dict(consumer_overrides or {})
        if end_within_seconds is not None:
            self._consumer_overrides.setdefault("fetch.wait.max.ms", max(1, round(end_within_seconds * 1000)))
        self._assignment: list[TopicPartition] = []
        self._paused: set[Source] = set()  # by backpressure
        self._ends: dict[Source, int] = {}  # partitions read to their end: the offset of that end
        self._fenced_at = float("-inf")
        self._progressed = False  # a checkpoint committed since the last start
        self._overlap_commits = overlap_commits
        self._in_flight: _Commit | None = None

    def _loop(self) -> None:
        backoff = 0.0
        first = True
        while not self._stopping.is_set():
            self._progressed = False
            try:
                self._run(first=first)
                return
            except _StartOverError as exc:
                STARTS_OVER.labels(self.name).inc()
                # Straight away after a checkpoint went through; with backoff while nothing does.
                backoff = 0.0 if self._progressed else min(max(0.1, backoff * 2), self._store_retry_max)
                logger.warning(
                    "starting over from the last committed checkpoint in %.1f s: %s",
                    backoff,
                    exc,
                    exc_info=exc,
                    extra={"stage": self.name},
                )
            first = False
            if self._stopping.wait(backoff):
                return

    def _run(self, *, first: bool) -> None:
        """One incarnation: its own consumer in the group and its own producer, until stopped,
        or until it raises _StartOverError. Kafka unreachable at the first start stops the
        stream (a wrong address or credentials must not look like an outage); after that, it
        is waited for."""
        client = self._transactional_id
        consumer = Consumer(
            consumer_config(
                self._settings,
                group_id=self._group_id,
                client_id=f"{client}-consumer",
                overrides={"enable.partition.eof": True, **self._consumer_overrides},
            )
        )
        producer: Producer | None = None
        try:
            try:
                producer = self._producer()
            except KafkaException as exc:
                if first:
                    raise
                raise _StartOverError(f"producer: {exc}") from exc
            consumer.subscribe(list(self._stage.input_topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._stopping.is_set():
                limit = min(self._max_messages, self._stage.read_limit())
                if limit <= 0 and self._in_flight is not None:
                    # Full: reading on, a message a loop, would take the next checkpoint past
                    # its bound for as long as the broker takes to commit this one.
                    self._settle(consumer)
                else:
                    self._read(consumer, consumer.consume(max(1, limit), timeout=self._poll_timeout))
                self._hold_back(consumer)
                self._report_ends(consumer)
                if self._in_flight is not None and self._in_flight.call.done():
                    self._settle(consumer)
                if self._in_flight is None and self._stage.due():
                    self._commit(consumer, producer)
            self._commit(consumer, producer, final=True)
        except _StopRequestedError:
            logger.warning(
                "stopped while restoring or while its store was unreachable; the open checkpoint will be replayed"
            )
        except _StartOverError as exc:
            self._drop_in_flight(consumer)
            self._forget()
            if exc.producer_busy:
                # Its blocked call keeps it alive; the next producer's init_transactions fences it.
                producer = None
            elif producer is not None:
                producer.purge()  # nothing of the abandoned checkpoint is sent by close()
            raise
        finally:
            self._drop_in_flight(consumer)
            self._set_ready(False)
            self._assignment = []
            self._forget_reads()
            try:
                consumer.close()
            except KafkaException as exc:  # leaving the group is the broker's business now
                logger.warning("consumer close: %s", exc)
            if producer is not None:
                try:
                    producer.close()
                except KafkaException as exc:  # its open transaction: the next producer aborts it
                    logger.warning("producer close: %s", exc)
            logger.info("consumer and producer closed", extra={"stage": self.name})

    def _producer(self) -> Producer:
        """A producer of this stage's outputs; with exactly-once, its transactions initialised,
        which fences an earlier incarnation and aborts its open transaction."""
        client = self._transactional_id
        producer = Producer(
            producer_config(
                self._settings,
                client_id=f"{client}-producer",
                transactional_id=self._transactional_id if self._exactly_once else None,
                overrides=(
                    # As Kafka Streams' exactly-once: a replica that died with a transaction open
                    # holds read_committed readers of its outputs back this long at most.
                    {"transaction.timeout.ms": TRANSACTION_TIMEOUT_MS}
                    if self._exactly_once
                    # A report for every output cost inference a tenth of its time under load;
                    # flush() says when none is left unacknowledged, failures are reported.
                    else {"delivery.report.only.error": True}
                ),
            )
        )
        if self._exactly_once:
            producer.init_transactions(30)
        return producer

    def _read(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        for message in messages:
            topic, partition = message.topic(), message.partition()
            if topic is None or partition is None:
                continue
            error = message.error()
            if error is None:
                self._ends.pop((topic, partition), None)
                self._stage.add(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                self._ends[(topic, partition)] = message.offset() or 0
            else:
                logger.warning("consumer error: %s", error)

    def _hold_back(self, consumer: Consumer) -> None:
        wanted = set(self._stage.held_back())
        if wanted == self._paused:
            return
        if resume := self._paused - wanted:
            consumer.resume([TopicPartition(*source) for source in resume])
        if pause := wanted - self._paused:
            consumer.pause([TopicPartition(*source) for source in pause])
            for source in pause:
                self._ends.pop(source, None)  # what arrives while it is paused is not fetched
        self._paused = wanted

    def _report_ends(self, consumer: Consumer) -> None:
        """An end read goes stale once the fetcher has seen the broker's high watermark past it:
        the records after it are in the consumer's queue (behind other partitions' records) or
        on their way, and the partition must not pass for idle meanwhile (as Kafka Streams
        waits on a partition whose lag is known not to be zero, KIP-695). An open transaction
        of the partition's producer counts as records on their way."""
        for source, end in list(self._ends.items()):
            _low, high = consumer.get_watermark_offsets(TopicPartition(*source), cached=True)
            if high > end:
                del self._ends[source]
        self._stage.at_end(frozenset(self._ends))

    # One checkpoint: what it holds, the side effect, then the commit

    def _commit(self, consumer: Consumer, producer: Producer, *, final: bool = False) -> None:
        """Commits the stage's checkpoint, or raises _StartOverError; with `overlap_commits`,
        hands it over and returns while the broker commits it (but the final one). Either way
        the commit runs in a thread of its own (`_settle` waits for it)."""
        self._settle(consumer)
        checkpoint = self._until_reachable(consumer, lambda: self._stage.checkpoint(final=final))
        self._until_reachable(consumer, self._stage.store)
        if not checkpoint.outputs and not checkpoint.offsets:
            self._stage.committed()
            return
        started = time.perf_counter()
        offsets = [TopicPartition(t, p, o) for (t, p), o in checkpoint.offsets.items()]
        try:
            if self._exactly_once:
                finish = self._send_transaction(consumer, producer, checkpoint.outputs, offsets)
            else:
                finish = self._send_then_commit(consumer, producer, checkpoint.outputs, offsets)
        except _StartOverError:
            ABORTS.labels(self.name).inc()
            raise
        self._in_flight = _Commit(offsets, started, _InThread(finish, f"{self.name}-commit"))
        if not self._overlap_commits or final:
            self._settle(consumer)
        self._stage.committed()

    def _settle(self, consumer: Consumer) -> None:
        """Waits for the commit in flight, if any; raises _StartOverError if it failed."""
        commit, self._in_flight = self._in_flight, None
        if commit is None:
            return
        try:
            commit.call.wait()
        except _StartOverError:
            ABORTS.labels(self.name).inc()
            raise
        COMMIT_SECONDS.labels(self.name).observe(commit.call.returned_at - commit.started)
        self._progressed = True
        self._record_lag(consumer, commit.offsets)

    def _drop_in_flight(self, consumer: Consumer) -> None:
        """Waits for the commit in flight, if any, whatever its end: the replica starts over or
        stops, and its clients must be idle before they are purged or closed."""
        try:
            self._settle(consumer)
        except Exception as exc:  # the checkpoint is replayed from the last committed one
            logger.warning("checkpoint not committed: %s", exc, extra={"stage": self.name})

    def _send_transaction(
        self, consumer: Consumer, producer: Producer, outputs: list[Output], offsets: list[TopicPartition]
    ) -> Callable[[], None]:
        """Opens the checkpoint's transaction with its outputs; what commits it."""
        with self._transaction_errors():
            producer.begin_transaction()
            produce_outputs(producer, outputs)
        metadata = consumer.consumer_group_metadata()

        def finish() -> None:
            with self._transaction_errors():
                _within(
                    SEND_OFFSETS_GIVE_UP_SECONDS,
                    lambda: producer.send_offsets_to_transaction(offsets, metadata, SEND_OFFSETS_SECONDS),
                    "send_offsets_to_transaction",
                )
                producer.commit_transaction(60)

        return finish

    @contextlib.contextmanager
    def _transaction_errors(self) -> Iterator[None]:
        try:
            yield
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in FENCED:
                # A broker that restarted can bump the producer's epoch and fence it, with no
                # other worker about: a new producer takes over, as Kafka Streams does. Fenced
                # again soon after, another worker does run with this transactional id.
                now = time.monotonic()
                if now - self._fenced_at < REFENCED_SECONDS:
                    raise
                self._fenced_at = now
            # Not aborted here: a broker that restarted mid-transaction can leave the producer
            # unable even to abort. The next producer's init_transactions aborts it.
            raise _StartOverError(f"transaction: {error}") from exc

    def _send_then_commit(
        self, consumer: Consumer, producer: Producer, outputs: list[Output], offsets: list[TopicPartition]
    ) -> Callable[[], None]:
        """Produces the checkpoint's outputs; what commits the offsets once every one is
        acknowledged."""
        failures: list[KafkaError] = []
        produce_outputs(producer, outputs, lambda error, _m: failures.append(error) if error else None)

        def finish() -> None:
            if producer.flush(60) or failures:
                raise _StartOverError(f"outputs not acknowledged: {failures[:3]}")
            if not offsets:
                return  # outputs of no input (a timer's)
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                raise _StartOverError(f"offsets not committed: {exc}") from exc

        return finish

    def _until_reachable(self, consumer: Consumer, step: Callable[[], T]) -> T:
        """Runs a step of the stage until the store it needs answers; meanwhile every input
        partition is paused."""
        backoff = 0.1
        paused = False
        while True:
            try:
                result = step()
                break
            except self._retried as exc:
                STORE_UNAVAILABLE.labels(self.name).inc()
                if not paused:
                    logger.warning("store unreachable, consumption paused: %s", exc, exc_info=True)
                    self._set_ready(False)
                    consumer.pause(self._assignment)
                    self._forget_reads()
                    paused = True
                if self._stopping.wait(backoff):
                    raise _StopRequestedError from exc
                backoff = min(backoff * 2, self._store_retry_max)
                # Keeps the consumer in its group; paused partitions deliver nothing new.
                self._read(consumer, consumer.consume(self._max_messages, timeout=0))
        if paused:
            logger.info("store reachable again, consuming")
            consumer.resume(self._assignment)
            self._stage.resumed()
            self._set_ready(True)
        return result

    def _record_lag(self, consumer: Consumer, committed: list[TopicPartition]) -> None:
        positions = {(tp.topic, tp.partition): tp.offset for tp in committed}
        lag: dict[str, int] = {}
        for tp in self._assignment:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            position = positions.get((tp.topic, tp.partition))
            if high >= 0 and position is not None and position >= 0:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - position)
        for topic, messages in lag.items():
            LAG.labels(self.name, topic).set(messages)

    # State: restored from the changelog whenever partitions are (re)assigned

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping.is_set():
            # A rebalance while closing (another replica left too): the partitions' next owner
            # restores them; the client being torn down, it could not.
            return
        self._set_ready(False)
        self._assignment = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        ASSIGNED.labels(self.name).set(len(partitions))
        self._forget_reads()
        try:
            starts = self._restore(consumer)
        except KafkaException as exc:  # the coordinator or a partition leader is moving
            raise _StartOverError(f"restoring the assignment: {exc}") from exc
        if isinstance(self._stage, ReplayedStage):
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
        logger.info("assigned %d partitions; state restored", len(partitions), extra={"stage": self.name})
        self._set_ready(True)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle(consumer)
        self._forget()
        # librdkafka keeps a partition paused through a rebalance that gives it back: it would
        # never be read again, as the next assignment starts with nothing paused.
        consumer.resume(partitions)
        self._forget_reads()

    def _forget_reads(self) -> None:
        """Which partitions backpressure paused and which were read to their end no longer
        holds: the assignment changed, or the consumer paused, closed or is closing."""
        self._paused = set()
        self._ends = {}

    def _forget(self) -> None:
        """Drops the open checkpoint and the state with it: what the stage applied since the last
        commit is not committed, and must not be. Until the next assignment restores it, the
        stage holds nothing: a commit of its own in between (a consumer that lost its session,
        or has not joined yet, commits with no generation, which the broker does not fence)
        would mark as done what it applied without the outputs the abandoned checkpoint held."""
        self._stage.committed()
        self._stage.restore([], {}, {})

    def _restore(self, consumer: Consumer) -> dict[Source, int]:
        """Restores the stage; where reading goes on in each partition of the assignment: the
        committed offset (negative: none, the beginning), or where a replay ended."""
        started = time.perf_counter()
        assignment = [(tp.topic, tp.partition) for tp in self._assignment]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(self._assignment, timeout=30)}
        changelog: dict[bytes, bytes] = {}
        topic = self._stage.changelog_topic
        if topic is not None:
            keyed_by = self._stage.input_topics[0]
            changelog = self._read_changelog(topic, keyed_by, sorted(p for t, p in assignment if t == keyed_by))
        self._stage.restore(assignment, changelog, committed)
        if isinstance(self._stage, ReplayedStage):
            starts = self._replay(self._stage, committed)
            # What a partition with no commit held is history only once: its end is committed at
            # once, or its next owner would take what arrived since as history too.
            fresh = [TopicPartition(t, p, starts[(t, p)]) for (t, p), offset in committed.items() if offset < 0]
            if fresh:
                consumer.commit(offsets=fresh, asynchronous=False)
            committed = starts
        RESTORE_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return committed

    def _reader(self) -> Consumer:
        """A consumer outside the group, to read partitions again."""
        return Consumer(
            consumer_config(
                self._settings,
                group_id=f"{self._group_id}-restore-{uuid.uuid4().hex}",
                client_id=f"{self._transactional_id}-restore",
                overrides={"enable.partition.eof": True},
            )
        )

    def _replay(self, stage: ReplayedStage, committed: Mapping[Source, int]) -> dict[Source, int]:
        """Hands the stage its input again, from its replay horizon up to the committed offsets;
        where reading goes on."""
        reader = self._reader()
        try:
            ends: dict[Source, int] = {}
            firsts: dict[Source, int] = {}
            for source, offset in committed.items():
                low, high = reader.get_watermark_offsets(TopicPartition(*source), timeout=30)
                ends[source], firsts[source] = (offset if offset >= 0 else high), low
            if not math.isinf(stage.replay_seconds):
                since_ms = int((time.time() - stage.replay_seconds) * 1000)
                found = reader.offsets_for_times([TopicPartition(t, p, since_ms) for t, p in ends], timeout=30)
                # Nothing produced since then: nothing to replay.
                firsts = {
                    (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else ends[(tp.topic, tp.partition)]
                    for tp in found
                }
            pending = {source for source, end in ends.items() if firsts[source] < end}
            reader.assign([TopicPartition(t, p, firsts[(t, p)]) for t, p in pending])
            while pending:
                if self._stopping.is_set():
                    raise _StopRequestedError
                for message in reader.consume(10000, timeout=1.0):
                    source = (message.topic() or "", message.partition() or 0)
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(error)
                        pending.discard(source)
                    elif source in pending and (message.offset() or 0) < ends[source]:
                        stage.replay(message)
                        if (message.offset() or 0) + 1 >= ends[source]:
                            pending.discard(source)
                    else:
                        pending.discard(source)
        finally:
            reader.close()
        return ends

    def _read_changelog(self, topic: str, keyed_by: str, partitions: Sequence[int]) -> dict[bytes, bytes]:
        """The latest committed record of every key in these partitions of the changelog, the
        state of the keys in the same partitions of `keyed_by`. PartitionLayoutError when the
        two topics' partitions no longer line up."""
        reader = self._reader()
        records: dict[bytes, bytes] = {}
        try:
            counts = {
                name: len(reader.list_topics(name, timeout=30).topics[name].partitions) for name in (topic, keyed_by)
            }
            if counts[topic] != counts[keyed_by]:
                raise PartitionLayoutError.counts(topic, counts[topic], keyed_by, counts[keyed_by])
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
                    if (now := partition_of(key, counts[keyed_by])) != message.partition():
                        raise PartitionLayoutError.moved(topic, message.partition() or 0, key, keyed_by, now)
                    if value is None:
                        records.pop(key, None)
                    else:
                        records[key] = value
        finally:
            reader.close()
        return records

    def _set_ready(self, ready: bool) -> None:
        if ready:
            self._ready.set()
        else:
            self._ready.clear()
        READY.labels(self.name).set(1 if ready else 0)


class TopicFollower(BlockingLoop):
    """Every replica reads all of a topic (`models.published`): from its first record, in no
    consumer group of consequence and with no commits, so that each sees every record. What the
    topic held at start goes to `_caught_up` at once (each record to `_follow`, unless the
    subclass decides otherwise what of it counts); the follower is ready after it, and hands each
    later record to `_follow`."""

    def __init__(self, settings: ServiceSettings, topic: str, *, client_id: str) -> None:
        super().__init__()
        self._reader_settings = settings
        self._topic = topic
        self._client_id = client_id

    def _caught_up(self, values: list[bytes]) -> None:
        for value in values:
            self._follow(value)

    def _follow(self, value: bytes) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        consumer, partitions = whole_topic_reader(self._reader_settings, self._topic, client_id=self._client_id)
        try:
            history: list[bytes] = []
            at_end: set[int] = set()
            while len(at_end) < partitions and not self._stopping.is_set():
                message = consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is None:
                    history.append(message.value() or b"")
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                else:
                    logger.warning("consumer error: %s", error)
            self._caught_up(history)
            self._ready.set()
            while not self._stopping.is_set():
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    self._follow(message.value() or b"")
        finally:
            consumer.close()
