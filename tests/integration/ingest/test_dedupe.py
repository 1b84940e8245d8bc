"""The dedupe script against the real Redis: a replay of the first position passes, a retry is
dropped, other content under a seen id is a conflict naming where the id was first seen, and a
key written before digests were kept (the position alone) takes its duplicates for retries."""

from __future__ import annotations

import uuid
from typing import cast

import pytest
import redis

from fraudstream_ingest.dedupe import FIRST, RETRY, Claim, Deduplicator, Sighting

pytestmark = pytest.mark.integration


def test_first_replay_retry_and_conflict(redis_client: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis_client
    dedupe = Deduplicator(client, 60, key_prefix=prefix)
    client.set(prefix + "old", "transactions.raw:0:5", ex=60)
    claims = dedupe.claim(
        [
            Sighting("a", "transactions.raw:0:1", "aaaa"),
            Sighting("a", "transactions.raw:0:1", "aaaa"),  # the batch replayed
            Sighting("a", "transactions.raw:2:7", "aaaa"),
            Sighting("a", "transactions.raw:3:9", "bbbb"),
            Sighting("old", "transactions.raw:1:6", "cccc"),
        ]
    )
    assert claims == [FIRST, FIRST, RETRY, Claim(first=False, first_position="transactions.raw:0:1"), RETRY]
    assert 0 < cast(int, client.ttl(prefix + "a")) <= 60
