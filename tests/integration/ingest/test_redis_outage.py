"""When Redis goes away, ingest stops consuming (not ready), and resumes when it is back,
without losing or repeating a transaction. Runs its own redis-server, so the shared one stays up."""

from __future__ import annotations

import time

import pytest

from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic
from tests.integration.ingest.raw_events import produce_raw, valid_events
from tests.integration.ingest.test_exactly_once import processed_so_far
from tests.platform import PrivateRedis, ServiceProcess, Topics, drain, producer

pytestmark = pytest.mark.integration


def test_redis_outage_holds_the_stream_back_and_loses_nothing(
    topics: Topics, ingest: ServiceProcess, private_redis: PrivateRedis
) -> None:
    events = valid_events(6_000)
    before_the_outage, during_it = events[:4_000], events[4_000:]
    raw = producer()
    produce_raw(raw, topics, before_the_outage, timeout=30)

    ingest.redis_url = private_redis.url
    ingest.extra_env.update({"FRAUDSTREAM_BATCH_MAX_MESSAGES": "50", "FRAUDSTREAM_REDIS_RETRY_MAX_SECONDS": "0.5"})
    ingest.start()
    deadline = time.monotonic() + 60
    while processed_so_far(ingest) < 500:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    private_redis.kill()
    # Ingest may have read the first part to its end before Redis died: this part it can only
    # take on with Redis.
    produce_raw(raw, topics, during_it, timeout=30)

    deadline = time.monotonic() + 30
    while ingest.checks()["stream"]:
        assert time.monotonic() < deadline, "the stream went on without Redis"
        time.sleep(0.1)
    assert ingest.readiness() == 503
    assert ingest.checks()["redis"] is False
    held_at = processed_so_far(ingest)
    time.sleep(2)
    assert processed_so_far(ingest) == held_at, "ingest went on consuming without dedupe"
    assert ingest.process is not None
    assert ingest.process.poll() is None, "ingest crashed when Redis went away"
    assert held_at < len(events)

    private_redis.start()
    ingest.wait_ready(timeout=30)
    out = drain(topics(Topic.TRANSACTIONS), expected=len(events), timeout=120)
    ids = [Transaction.FromString(m.value).transaction_id for m in out]
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.transaction_id for e in events}
