from __future__ import annotations

from typing import Any

import pytest
import redis

from fraudstream_common.apikeys import ApiKeys, AuthError, Scope, _redis_key, digest_of

KEY = "fsk_test"

pytestmark = pytest.mark.anyio


class FakePipeline:
    def __init__(self, redis_: FakeRedis) -> None:
        self._redis = redis_
        self.spent: list[tuple[str, float]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self) -> list[str]:
        if self._redis.down:
            raise redis.ConnectionError("Redis is down")
        self._redis.reports.append(dict(self.spent))
        return [self._redis.tokens_left for _ in self.spent]


class FakeScript:
    async def __call__(self, *, keys: list[str], args: list[Any], client: FakePipeline) -> None:
        client.spent.append((keys[0], args[2]))


class FakeRedis:
    """HGET for the key store; the shared bucket's script answers `tokens_left` to every report."""

    def __init__(self) -> None:
        self.hashes = {_redis_key("", digest_of(KEY)): b"predict"}
        self.tokens_left = "100"
        self.down = False
        self.reports: list[dict[str, float]] = []

    async def hget(self, name: str, field: str) -> bytes | None:
        return self.hashes.get(name)

    def register_script(self, script: str) -> FakeScript:
        return FakeScript()

    def pipeline(self, transaction: bool) -> FakePipeline:
        return FakePipeline(self)


def keys(client: FakeRedis, rate: float = 10.0, burst: float = 3.0) -> ApiKeys:
    return ApiKeys(client, rate_per_second=rate, burst=burst)  # type: ignore[arg-type]


async def refusal(check: ApiKeys, header: str | None, scope: Scope = Scope.PREDICT) -> int:
    with pytest.raises(AuthError) as refused:
        await check.authorize(header, scope)
    return refused.value.status


async def test_who_may_call() -> None:
    check = keys(FakeRedis())

    assert await check.authorize(f"Bearer {KEY}", Scope.PREDICT) == digest_of(KEY)
    assert await refusal(check, None) == 401
    assert await refusal(check, KEY) == 401  # no "Bearer"
    assert await refusal(check, "Bearer fsk_unknown") == 401
    assert await refusal(check, f"Bearer {KEY}", Scope.INGEST) == 403


async def test_a_key_gets_its_burst_then_429() -> None:
    check = keys(FakeRedis(), rate=0.001, burst=3)

    for _ in range(3):
        await check.authorize(f"Bearer {KEY}", Scope.PREDICT)
    assert await refusal(check, f"Bearer {KEY}") == 429


async def test_what_a_process_let_through_is_reported_once() -> None:
    client = FakeRedis()
    check = keys(client, burst=100.0)
    for _ in range(3):
        await check.authorize(f"Bearer {KEY}", Scope.PREDICT)

    await check.report()
    await check.report()  # nothing new
    await check.authorize(f"Bearer {KEY}", Scope.PREDICT)
    await check.report()

    bucket = next(iter(client.reports[0]))
    assert client.reports == [{bucket: 3}, {bucket: 1}]
    assert digest_of(KEY) in bucket


async def test_a_shared_debt_refuses_the_key_here_until_refilled() -> None:
    client = FakeRedis()
    check = keys(client, rate=10.0, burst=100.0)  # plenty of tokens in this process's own bucket
    await check.authorize(f"Bearer {KEY}", Scope.PREDICT)

    client.tokens_left = "-50.0"  # the other replicas spent it: 5 s to refill at 10/s
    await check.report()

    assert await refusal(check, f"Bearer {KEY}") == 429
    client.tokens_left = "20.0"
    check._in_debt_until.clear()  # as if the 5 s had passed
    await check.authorize(f"Bearer {KEY}", Scope.PREDICT)
    await check.report()
    await check.authorize(f"Bearer {KEY}", Scope.PREDICT)


async def test_without_redis_each_process_limits_alone_and_owes_nothing_after() -> None:
    client = FakeRedis()
    check = keys(client, rate=10.0, burst=100.0)
    client.down = True
    for _ in range(5):
        await check.authorize(f"Bearer {KEY}", Scope.PREDICT)

    await check.report()  # does not raise

    await check.authorize(f"Bearer {KEY}", Scope.PREDICT)
    client.down = False
    await check.report()
    assert list(client.reports[0].values()) == [1]
