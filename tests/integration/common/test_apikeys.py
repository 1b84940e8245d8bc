"""A key's rate limit across replicas, against the real Redis: two key checks (as two replicas
or worker processes) sharing one key's bucket."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from fraudstream_common.apikeys import ApiKeys, AuthError, Scope, create_key
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
from tests.platform import PLATFORM

pytestmark = pytest.mark.anyio

RATE = 20.0
BURST = 20.0
REPORT_SECONDS = 0.05
SECONDS = 3.0


async def calls_let_through(check: ApiKeys, key: str, seconds: float) -> int:
    """Calls every 5 ms (200/s, ten times the key's rate) for `seconds`; how many passed. Any
    refusal but 429 fails the test."""
    passed = 0
    refusals: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await check.authorize(f"Bearer {key}", Scope.PREDICT)
            passed += 1
        except AuthError as refused:
            refusals.add(refused.status)
        await asyncio.sleep(0.005)
    assert refusals <= {429}
    return passed


async def test_a_key_gets_its_rate_across_replicas_not_its_rate_from_each(redis_client: redis.Redis) -> None:
    namespace = f"it-{uuid.uuid4().hex[:8]}."
    key = create_key(
        redis_client, [Scope.PREDICT], "two replicas", secret=DEVELOPMENT_API_KEY_SECRET, namespace=namespace
    )
    clients = [aioredis.Redis.from_url(PLATFORM.redis_url) for _ in range(2)]
    replicas = [
        ApiKeys(
            c,
            secret=DEVELOPMENT_API_KEY_SECRET,
            rate_per_second=RATE,
            burst=BURST,
            namespace=namespace,
            report_seconds=REPORT_SECONDS,
        )
        for c in clients
    ]
    reporting = [asyncio.create_task(r.run()) for r in replicas]
    try:
        passed = await asyncio.gather(*(calls_let_through(r, key, SECONDS) for r in replicas))
    finally:
        for replica in replicas:
            await replica.stop()
        await asyncio.gather(*reporting)
        for client in clients:
            await client.aclose()

    # Alone, each replica's own bucket would let BURST + RATE * SECONDS through (80 each, 160 in
    # all). Shared: the burst and the rate once, plus what the other replica's own burst let
    # through before the first report, plus one report's worth of rate from each.
    shared_bound = BURST + RATE * SECONDS + BURST + 2 * RATE * REPORT_SECONDS
    assert sum(passed) <= shared_bound, passed
    assert sum(passed) >= RATE * SECONDS, passed  # the key is limited, not shut out
    assert min(passed) > 0, passed  # both replicas served it
