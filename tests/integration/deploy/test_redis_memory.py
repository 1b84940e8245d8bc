"""When Redis reaches its maxmemory under the platforms' eviction policy, the caches that expire
(ingest's dedupe ids, inference's decisions) shrink, oldest first, and nothing else does: every
write still succeeds, the latest ids and decisions are still caught, and the feature state
and the API keys are untouched. Without eviction the same writes are refused, which would stop
ingest: that is what the policy is for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis
import redis.asyncio as aioredis

from fraudstream_cli.platform.redis_server import EVICTION_POLICY
from fraudstream_common.apikeys import Scope, create_key
from fraudstream_common.features.history import FeatureStates, LabelEvent, in_event_order
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
from fraudstream_feature_store.store import FeatureStateStore, apply_repository
from fraudstream_inference.decisions import DecisionCache, Taken
from fraudstream_ingest.dedupe import Claim, Deduplicator, Sighting
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.platform import PrivateRedis
from tests.unit.common.features.test_one_definition import events

pytestmark = pytest.mark.integration

MAX_MEMORY = "8mb"
BATCH = 2_000
# About 370 bytes of keys a transaction (an id and a decision): some 37 MB, several times MAX_MEMORY.
TRANSACTIONS = 100_000
DAY = 86_400
DIGEST = "0123456789abcdef"


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[[str], PrivateRedis]]:
    """Starts a Redis of MAX_MEMORY with the given eviction policy; stopped after the test."""
    servers: list[PrivateRedis] = []

    def start(policy: str) -> PrivateRedis:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = PrivateRedis(directory, "--maxmemory", MAX_MEMORY, "--maxmemory-policy", policy)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def push_feature_state(url: str, stores: Path) -> int:
    """Feast's rows for a small world, as the features stages push them (database 1); how many."""
    feast = FeatureStateStore(apply_repository(f"{url[: -len('/0')]}/1", stores / "registry.db", stores / "offline"))
    transactions, labels = events(simulate(SimulationConfig(n_customers=100, n_terminals=200, nb_days=20)))
    states = FeatureStates()
    for event in in_event_order(transactions, labels):
        if isinstance(event, LabelEvent):
            states.apply_label(event)
        else:
            states.apply_transaction(event)
    feast.push(
        {c: s.snapshot() for c, s in states.customers.items()},
        {t: s.snapshot() for t, s in states.terminals.items()},
    )
    return len(states.customers) + len(states.terminals)


def lasting_keys(url: str) -> dict[tuple[int, bytes], bytes]:
    """Every key with no expiry, in databases 0 and 1, with its serialized value."""
    found: dict[tuple[int, bytes], bytes] = {}
    for db in (0, 1):
        client = redis.Redis.from_url(f"{url[: -len('/0')]}/{db}")
        for key in client.scan_iter(count=1000):
            if client.ttl(key) == -1:
                found[(db, key)] = cast(bytes, client.dump(key))
    return found


def ids(batch: int) -> list[str]:
    return [f"run-tx{batch * BATCH + n}" for n in range(BATCH)]


async def write_caches(url: str) -> tuple[list[Claim], dict[str, Taken]]:
    """Claims every transaction's id and settles its decision, batch by batch; then claims the
    last batch again from another position and settles it again with other scores."""
    dedupe = Deduplicator(redis.Redis.from_url(url), DAY)
    client = aioredis.Redis.from_url(url)
    decisions = DecisionCache(client, ttl_seconds=DAY, deadline_seconds=30, namespace="")
    batches = TRANSACTIONS // BATCH
    for batch in range(batches):
        if batch == batches - 1:
            await asyncio.sleep(2)  # Redis's LRU clock counts seconds: the last batch is the newest by one
        first = dedupe.claim(
            [Sighting(tx, f"transactions.raw:0:{batch * BATCH + n}", DIGEST) for n, tx in enumerate(ids(batch))]
        )
        assert all(claim.first for claim in first)
        taken_before = await decisions.settle([Taken(tx, 0.5, 0, "1", 0.9, False) for tx in ids(batch)])
        assert not taken_before
    last = ids(batches - 1)
    again = dedupe.claim([Sighting(tx, f"transactions.raw:1:{n}", DIGEST) for n, tx in enumerate(last)])
    standing = await decisions.settle([Taken(tx, 0.99, 1, "2", 0.9, False) for tx in last])
    await client.aclose()
    return again, standing


def test_full_redis_forgets_the_oldest_cached_ids_and_keeps_the_state(
    tmp_path: Path, start_redis: Callable[[str], PrivateRedis]
) -> None:
    server = start_redis(EVICTION_POLICY)
    entities = push_feature_state(server.url, tmp_path / "stores")
    create_key(redis.Redis.from_url(server.url), [Scope.PREDICT], "a client", secret=DEVELOPMENT_API_KEY_SECRET)
    state = lasting_keys(server.url)
    assert len(state) == entities + 1  # and the key

    again, standing = asyncio.run(write_caches(server.url))

    client = redis.Redis.from_url(server.url)
    assert cast(dict[str, int], client.info("stats"))["evicted_keys"] > 0
    assert not any(claim.first for claim in again), "a duplicate of the latest batch passed"
    assert len(standing) == BATCH, "a retried transaction got a new decision"
    assert {t.model_version for t in standing.values()} == {"1"}
    assert lasting_keys(server.url) == state


def test_without_eviction_the_same_writes_are_refused(start_redis: Callable[[str], PrivateRedis]) -> None:
    server = start_redis("noeviction")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        asyncio.run(write_caches(server.url))
