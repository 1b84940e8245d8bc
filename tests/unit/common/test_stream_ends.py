"""The stream runtime says which input partitions are read to their end: an end-of-partition
event goes stale once the fetcher has seen records past it, even while they wait in the
consumer's queue behind other partitions' records; a paused partition is not at its end."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from fraudstream_common.settings import ServiceSettings
from fraudstream_common.stream import Source, StreamRuntime
from tests.unit.common.test_stream_recovery import TOPIC, EchoStage
from tests.unit.kafka_fakes import FakeMessage

P0, P1 = (TOPIC, 0), (TOPIC, 1)


class EndOfPartition(FakeMessage):
    def error(self) -> KafkaError:  # type: ignore[override]
        return KafkaError(KafkaError._PARTITION_EOF)


class ConsumerWithHighWatermarks:
    """The high watermark of each partition as the fetcher last saw it."""

    def __init__(self) -> None:
        self.high: dict[int, int] = {0: 0, 1: 0}

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "asking the broker on every read would cost a round trip each"
        return 0, self.high[tp.partition]

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Nothing to fetch in these tests."""

    def resume(self, partitions: list[TopicPartition]) -> None:
        """As pause."""


class EndsStage(EchoStage):
    def __init__(self) -> None:
        super().__init__()
        self.ends: set[Source] = set()
        self.paused: set[Source] = set()

    def at_end(self, sources: Collection[Source]) -> None:
        self.ends = set(sources)

    def held_back(self) -> Collection[Source]:
        return self.paused


def reader() -> tuple[StreamRuntime, ConsumerWithHighWatermarks, EndsStage]:
    stage = EndsStage()
    runtime = StreamRuntime(ServiceSettings(), stage, group_id="ends", transactional_id="ends")
    return runtime, ConsumerWithHighWatermarks(), stage


def read(runtime: StreamRuntime, consumer: ConsumerWithHighWatermarks, *messages: Any) -> None:
    """One turn of the runtime's loop after a read."""
    runtime._read(consumer, list(messages))  # type: ignore[arg-type]
    runtime._hold_back(consumer)  # type: ignore[arg-type]
    runtime._report_ends(consumer)  # type: ignore[arg-type]


def record(partition: int, offset: int) -> FakeMessage:
    return FakeMessage(b"v", offset, topic_=TOPIC, partition_=partition)


def end(partition: int, offset: int) -> EndOfPartition:
    return EndOfPartition(None, offset, topic_=TOPIC, partition_=partition)


def test_records_fetched_past_an_end_make_it_stale_before_they_are_read() -> None:
    runtime, consumer, stage = reader()
    read(runtime, consumer, end(0, 0), end(1, 0))
    assert stage.ends == {P0, P1}
    # A fetch brought records of both partitions; those of P1 wait behind those of P0.
    consumer.high = {0: 500, 1: 3}
    read(runtime, consumer, *(record(0, i) for i in range(200)))
    assert stage.ends == set()
    read(runtime, consumer, *(record(0, i) for i in range(200, 500)), end(0, 500))
    assert stage.ends == {P0}  # P1's records are still to be read
    read(runtime, consumer, record(1, 0), record(1, 1), record(1, 2), end(1, 3))
    assert stage.ends == {P0, P1}
    read(runtime, consumer)
    assert stage.ends == {P0, P1}  # an end holds until something is known past it


def test_an_end_read_before_the_records_past_it_is_stale_once_they_are_fetched() -> None:
    runtime, consumer, stage = reader()
    consumer.high = {0: 5, 1: 3}
    read(runtime, consumer, end(0, 5), end(1, 3))
    assert stage.ends == {P0, P1}
    consumer.high[1] = 4  # appended after the end was read, and fetched
    read(runtime, consumer)
    assert stage.ends == {P0}


def test_a_paused_partition_is_not_at_its_end() -> None:
    """What its producer writes meanwhile is not fetched: its end is not known."""
    runtime, consumer, stage = reader()
    read(runtime, consumer, end(0, 0), end(1, 0))
    stage.paused = {P1}
    read(runtime, consumer)
    assert stage.ends == {P0}
    stage.paused = set()
    read(runtime, consumer)
    assert stage.ends == {P0}  # until librdkafka reads it to its end again
    read(runtime, consumer, end(1, 0))
    assert stage.ends == {P0, P1}
