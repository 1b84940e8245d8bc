"""The ingest stage on the stream runtime: a batch closes at its size or its wait, commits the
offsets after its last message per partition, and while Redis cannot decide it raises with its
batch intact, so the runtime's retry loses nothing."""

from __future__ import annotations

import pytest
import redis

from fraudstream_ingest.core import IngestCore
from fraudstream_ingest.settings import IngestSettings
from fraudstream_ingest.stream import IngestStage
from tests.unit.ingest.test_core import InMemoryDeduplicator, raw
from tests.unit.kafka_fakes import FakeMessage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stage(dedupe: InMemoryDeduplicator, clock: Clock, **settings: object) -> IngestStage:
    ingest = IngestSettings(topic_prefix="p.", batch_max_messages=3, batch_max_wait_seconds=0.02, **settings)  # type: ignore[arg-type]
    return IngestStage(ingest, IngestCore(ingest, dedupe), clock=clock)  # type: ignore[arg-type]


def test_a_batch_closes_at_its_size_or_its_wait() -> None:
    clock = Clock()
    ingest = stage(InMemoryDeduplicator(), clock)
    assert not ingest.due()
    ingest.add(FakeMessage(raw("a"), 0))  # type: ignore[arg-type]
    assert not ingest.due()
    clock.now = 0.02
    assert ingest.due()
    ingest.committed()
    for offset, name in enumerate("bcd"):
        ingest.add(FakeMessage(raw(name), offset))  # type: ignore[arg-type]
    assert ingest.due()
    assert ingest.read_limit() == 0


def test_the_checkpoint_commits_after_the_last_message_of_each_partition() -> None:
    ingest = stage(InMemoryDeduplicator(), Clock())
    ingest.add(FakeMessage(raw("a"), 7, partition_=0))  # type: ignore[arg-type]
    ingest.add(FakeMessage(raw("b"), 3, partition_=1))  # type: ignore[arg-type]
    ingest.add(FakeMessage(raw("c"), 8, partition_=0))  # type: ignore[arg-type]
    checkpoint = ingest.checkpoint(final=False)
    assert checkpoint.offsets == {("transactions.raw", 0): 9, ("transactions.raw", 1): 4}
    assert [o.topic for o in checkpoint.outputs] == ["p.transactions"] * 3


def test_redis_down_raises_and_keeps_the_batch_for_the_retry() -> None:
    dedupe = InMemoryDeduplicator()
    ingest = stage(dedupe, Clock())
    ingest.add(FakeMessage(raw("a"), 0))  # type: ignore[arg-type]
    dedupe.down = True
    with pytest.raises(redis.RedisError):
        ingest.checkpoint(final=False)
    dedupe.down = False
    assert len(ingest.checkpoint(final=False).outputs) == 1
