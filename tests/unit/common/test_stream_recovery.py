"""The stream runtime's recovery, against fake Kafka clients that share one fake broker: a
checkpoint not committed, for whatever reason, is replayed once from the last committed one by
new clients; nothing is lost and nothing is committed twice. The real broker's faults are the
chaos suite's (tests/chaos)."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from fraudstream_common import stream
from fraudstream_common.deadletter import Output
from fraudstream_common.settings import ProcessingGuarantee, ServiceSettings
from fraudstream_common.stream import Batch, Checkpoint, Source, StreamRuntime
from tests.unit.kafka_fakes import FakeMessage

TOPIC = "in"
PARTITIONS = 2
RECORDS = 40


@dataclass
class FakeBroker:
    """The input topic, the committed offsets and outputs, and the faults to inject."""

    records: dict[int, list[bytes]] = field(
        default_factory=lambda: {p: [f"{p}-{i}".encode() for i in range(RECORDS)] for p in range(PARTITIONS)}
    )
    committed: dict[int, int] = field(default_factory=dict)
    outputs: list[bytes] = field(default_factory=list)
    commit_faults: list[KafkaError] = field(default_factory=list)
    restore_faults: list[KafkaError] = field(default_factory=list)
    coordinator_lost: list[threading.Event] = field(default_factory=list)
    join_after_reads: int = 0  # reads a new consumer makes before it has joined the group
    slow_commits: int = 0  # commits that return only once the consumer has read on
    commit_seconds: float = 0.0  # how long every commit takes
    largest_commit: int = 0  # most outputs in one committed transaction
    reads: int = 0
    reads_while_committing: int = 0
    consumers: list[FakeConsumer] = field(default_factory=list)
    producers: list[FakeProducer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def everything_out(self) -> bool:
        with self.lock:
            return len(self.outputs) >= PARTITIONS * RECORDS


class FakeConsumer:
    def __init__(self, broker: FakeBroker) -> None:
        self._broker = broker
        self._positions: dict[int, int] = {}
        self._on_assign: Any = None
        self._reads = 0
        self.closed = False
        broker.consumers.append(self)

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        assert topics == [TOPIC]
        self._on_assign = on_assign

    def consume(self, limit: int, timeout: float) -> list[Message]:
        self._reads += 1
        self._broker.reads += 1
        if self._on_assign is not None and self._reads > self._broker.join_after_reads:  # joins the group
            assign, self._on_assign = self._on_assign, None
            assign(self, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
            with self._broker.lock:
                self._positions = {p: self._broker.committed.get(p, 0) for p in range(PARTITIONS)}
        messages: list[Any] = []
        for partition, position in self._positions.items():
            taken = self._broker.records[partition][position : position + limit - len(messages)]
            messages += [FakeMessage(v, position + i, topic_=TOPIC, partition_=partition) for i, v in enumerate(taken)]
            self._positions[partition] = position + len(taken)
        if not messages:
            time.sleep(0.001)
        return messages

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self._broker.restore_faults:
            raise KafkaException(self._broker.restore_faults.pop(0))
        with self._broker.lock:
            return [
                TopicPartition(tp.topic, tp.partition, self._broker.committed.get(tp.partition, -1001))
                for tp in partitions
            ]

    def consumer_group_metadata(self) -> object:
        return self

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, len(self._broker.records[tp.partition])

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Nothing is read while the test's stage is never held back."""

    def resume(self, partitions: list[TopicPartition]) -> None:
        """As pause."""

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        with self._broker.lock:
            self._broker.committed.update({tp.partition: tp.offset for tp in offsets})

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """A transactional producer: what a transaction holds reaches the broker on commit only."""

    def __init__(self, broker: FakeBroker) -> None:
        self._broker = broker
        self._outputs: list[bytes] = []
        self._offsets: list[TopicPartition] = []
        self._open = False
        self.closed = False
        broker.producers.append(self)

    def init_transactions(self, timeout: float) -> None:
        """The broker aborts what an earlier producer of this id left open: nothing, here."""

    def begin_transaction(self) -> None:
        self._outputs, self._offsets, self._open = [], [], True

    def produce(self, topic: str, value: bytes, key: bytes | None, **_: Any) -> None:
        self._outputs.append(value)

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], metadata: object, timeout: float) -> None:
        if self._broker.coordinator_lost:  # librdkafka#5456: waits past its timeout
            self._broker.coordinator_lost.pop().wait()
            raise KafkaException(kafka_error(KafkaError._FENCED, fatal=True))
        self._offsets = offsets

    def commit_transaction(self, timeout: float) -> None:
        if self._broker.slow_commits:
            self._broker.slow_commits -= 1
            until = self._broker.reads + 3
            deadline = time.monotonic() + 2
            while self._broker.reads < until and time.monotonic() < deadline:
                time.sleep(0.001)
            self._broker.reads_while_committing += min(3, self._broker.reads - until + 3)
        time.sleep(self._broker.commit_seconds)
        if self._broker.commit_faults:
            raise KafkaException(self._broker.commit_faults.pop(0))
        with self._broker.lock:
            self._broker.largest_commit = max(self._broker.largest_commit, len(self._outputs))
            self._broker.outputs += self._outputs
            self._broker.committed.update({tp.partition: tp.offset for tp in self._offsets})
        self._open = False

    def flush(self, timeout: float) -> int:
        """Outside a transaction (at-least-once): every output produced reaches the broker."""
        with self._broker.lock:
            self._broker.outputs += self._outputs
        self._outputs = []
        return 0

    def abort_transaction(self, timeout: float) -> None:
        self._outputs, self._offsets = [], []

    def purge(self) -> None:
        self._outputs = []

    def close(self) -> None:
        self.closed = True
        if self._open:  # as librdkafka's after a broker restart: it cannot abort the transaction
            raise KafkaException(kafka_error(KafkaError.INVALID_TXN_STATE, fatal=True))


class EchoStage:
    """Stateless: every input record out again, in batches of at most seven."""

    name = "echo"
    input_topics = (TOPIC,)
    changelog_topic = None

    def __init__(self) -> None:
        self._batch = Batch(7)
        self.restores = 0

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self.restores += 1
        self._batch.clear()

    def add(self, message: Message) -> None:
        self._batch.add(message)

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing waits on the end of a partition."""

    def due(self) -> bool:
        return self._batch.due()

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return self._batch.room()

    def resumed(self) -> None:
        """Nothing waits on time."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        outputs = [Output("out", None, m.value() or b"", []) for m in self._batch.messages]
        return Checkpoint(outputs, self._batch.offsets())

    def store(self) -> None:
        """No store."""

    def committed(self) -> None:
        self._batch.clear()


class ApplyingStage(EchoStage):
    """Stateful, as the features stages: a record is applied to the state when it is read, and
    each checkpoint, due on a timer (every loop here), commits the position after the last one
    applied."""

    def __init__(self) -> None:
        super().__init__()
        self.positions: dict[int, int] = {}

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        super().restore(assignment, changelog, committed)
        self.positions = {p: max(0, committed.get((t, p), 0)) for t, p in assignment}

    def add(self, message: Message) -> None:
        super().add(message)
        self.positions[message.partition() or 0] = (message.offset() or 0) + 1

    def due(self) -> bool:
        return True

    def read_limit(self) -> int:
        """As the features stages': a read's size, not a bound on what is held."""
        return RECORDS

    def checkpoint(self, *, final: bool) -> Checkpoint:
        outputs = super().checkpoint(final=final).outputs
        return Checkpoint(outputs, {(TOPIC, p): offset for p, offset in self.positions.items()})


@pytest.fixture(params=[False, True], ids=["commit-then-read", "read-while-committing"])
def overlap(request: pytest.FixtureRequest) -> bool:
    """Whether the runtime reads on while a checkpoint's commit is on its way."""
    return bool(request.param)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker()
    monkeypatch.setattr(stream, "Consumer", lambda _config: FakeConsumer(fake))
    monkeypatch.setattr(stream, "Producer", lambda _config: FakeProducer(fake))
    return fake


def run_until_everything_out(
    broker: FakeBroker,
    stage: EchoStage,
    *,
    overlap: bool,
    guarantee: ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE,
) -> StreamRuntime:
    runtime = StreamRuntime(
        ServiceSettings(),
        stage,
        group_id="echo",
        transactional_id="echo",
        guarantee=guarantee,
        poll_timeout_seconds=0,
        overlap_commits=overlap,
    )
    failures: list[BaseException] = []

    def loop() -> None:
        try:
            runtime._loop()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not broker.everything_out() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    runtime._stopping.set()
    thread.join(10)
    assert not thread.is_alive()
    if failures:
        raise failures[0]
    return runtime


def kafka_error(code: int, *, fatal: bool = False) -> KafkaError:
    return KafkaError(code, "injected", fatal=fatal)


def assert_everything_once(broker: FakeBroker) -> None:
    expected = sorted(v for records in broker.records.values() for v in records)
    assert sorted(broker.outputs) == expected
    assert broker.committed == dict.fromkeys(range(PARTITIONS), RECORDS)


@pytest.mark.parametrize(
    "fault",
    [
        kafka_error(KafkaError._TIMED_OUT),  # abortable: the coordinator did not answer
        kafka_error(KafkaError.INVALID_TXN_STATE, fatal=True),  # the producer is unusable
        kafka_error(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER),  # needs an epoch bump
        kafka_error(KafkaError.PRODUCER_FENCED, fatal=True),  # a restarted broker bumped the epoch
    ],
    ids=["timed-out", "fatal", "epoch-bump", "fenced-once"],
)
def test_a_checkpoint_not_committed_is_replayed_once_by_new_clients(
    broker: FakeBroker, overlap: bool, fault: KafkaError
) -> None:
    broker.commit_faults = [fault]
    stage = EchoStage()
    run_until_everything_out(broker, stage, overlap=overlap)
    assert_everything_once(broker)
    assert len(broker.consumers) == len(broker.producers) == 2
    assert all(c.closed for c in broker.consumers)
    assert all(p.closed for p in broker.producers)
    assert stage.restores == 3  # each incarnation's assignment, and nothing in between


def test_a_producer_call_that_never_returns_is_left_behind(
    broker: FakeBroker, overlap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "SEND_OFFSETS_GIVE_UP_SECONDS", 0.2)
    stuck = threading.Event()
    broker.coordinator_lost = [stuck]
    run_until_everything_out(broker, EchoStage(), overlap=overlap)
    assert_everything_once(broker)
    assert [p.closed for p in broker.producers] == [False, True]  # the stuck one is not touched
    stuck.set()  # as the next producer's epoch fences it


def test_nothing_applied_before_a_start_over_is_committed_without_its_outputs(
    broker: FakeBroker, overlap: bool
) -> None:
    # The new consumer reads twice before it joins; a stage still holding what it applied before
    # the start over would commit its position past records whose outputs were aborted.
    broker.commit_faults = [kafka_error(KafkaError._TIMED_OUT)]
    broker.join_after_reads = 2
    run_until_everything_out(broker, ApplyingStage(), overlap=overlap)
    assert_everything_once(broker)


@pytest.mark.parametrize("fails", [False, True], ids=["committed", "aborted"])
def test_what_is_read_while_a_checkpoint_commits_goes_in_the_next_one(broker: FakeBroker, fails: bool) -> None:
    broker.slow_commits = 5
    if fails:
        broker.commit_faults = [kafka_error(KafkaError._TIMED_OUT)]
    run_until_everything_out(broker, ApplyingStage(), overlap=True)
    assert_everything_once(broker)
    assert broker.reads_while_committing >= 3


def test_a_slow_commit_leaves_the_next_checkpoint_within_its_batch(broker: FakeBroker) -> None:
    broker.commit_seconds = 0.02
    run_until_everything_out(broker, EchoStage(), overlap=True)
    assert_everything_once(broker)
    assert broker.largest_commit == 7


def test_at_least_once_without_faults_delivers_everything_once(broker: FakeBroker, overlap: bool) -> None:
    run_until_everything_out(broker, ApplyingStage(), overlap=overlap, guarantee=ProcessingGuarantee.AT_LEAST_ONCE)
    assert_everything_once(broker)


def test_a_restore_that_fails_starts_over_instead_of_stopping(broker: FakeBroker, overlap: bool) -> None:
    broker.restore_faults = [kafka_error(KafkaError.NOT_COORDINATOR), kafka_error(KafkaError.NOT_COORDINATOR)]
    run_until_everything_out(broker, EchoStage(), overlap=overlap)
    assert_everything_once(broker)
    assert len(broker.consumers) == 3


def test_fenced_twice_within_a_minute_stops_the_stream(broker: FakeBroker, overlap: bool) -> None:
    fenced = kafka_error(KafkaError.PRODUCER_FENCED, fatal=True)
    broker.commit_faults = [fenced, fenced]
    with pytest.raises(KafkaException) as raised:
        run_until_everything_out(broker, EchoStage(), overlap=overlap)
    assert raised.value.args[0].code() == KafkaError.PRODUCER_FENCED
    assert broker.outputs == []


def test_kafka_unreachable_at_the_first_start_stops_the_stream(
    broker: FakeBroker, overlap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: FakeProducer, timeout: float) -> None:
        raise KafkaException(kafka_error(KafkaError._TIMED_OUT))

    monkeypatch.setattr(FakeProducer, "init_transactions", unreachable)
    with pytest.raises(KafkaException):
        run_until_everything_out(broker, EchoStage(), overlap=overlap)
    assert broker.consumers[0].closed
