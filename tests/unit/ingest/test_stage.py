"""The ingest stage on the stream runtime: a batch is what one read brought, commits the
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


def stage(dedupe: InMemoryDeduplicator) -> IngestStage:
    ingest = IngestSettings(topic_prefix="p.", batch_max_messages=3)
    return IngestStage(ingest, IngestCore(ingest, dedupe))  # type: ignore[arg-type]


def test_what_one_read_brought_is_due_and_a_read_takes_no_more_than_the_batch() -> None:
    ingest = stage(InMemoryDeduplicator())
    assert not ingest.due()
    ingest.add(FakeMessage(raw("a"), 0))  # type: ignore[arg-type]
    assert ingest.due()  # the read waited up to batch_max_wait_seconds (the poll timeout)
    assert ingest.read_limit() == 2
    ingest.committed()
    assert not ingest.due()
    assert ingest.read_limit() == 3


def test_the_checkpoint_commits_after_the_last_message_of_each_partition() -> None:
    ingest = stage(InMemoryDeduplicator())
    ingest.add(FakeMessage(raw("a"), 7, partition_=0))  # type: ignore[arg-type]
    ingest.add(FakeMessage(raw("b"), 3, partition_=1))  # type: ignore[arg-type]
    ingest.add(FakeMessage(raw("c"), 8, partition_=0))  # type: ignore[arg-type]
    checkpoint = ingest.checkpoint(final=False)
    assert checkpoint.offsets == {("transactions.raw", 0): 9, ("transactions.raw", 1): 4}
    assert [o.topic for o in checkpoint.outputs] == ["p.transactions"] * 3


def test_redis_down_raises_and_keeps_the_batch_for_the_retry() -> None:
    dedupe = InMemoryDeduplicator()
    ingest = stage(dedupe)
    ingest.add(FakeMessage(raw("a"), 0))  # type: ignore[arg-type]
    dedupe.down = True
    with pytest.raises(redis.RedisError):
        ingest.checkpoint(final=False)
    dedupe.down = False
    assert len(ingest.checkpoint(final=False).outputs) == 1
