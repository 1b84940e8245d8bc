from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from fraudstream_common.apikeys import (
    ApiKeys,
    AuthError,
    Scope,
    _redis_key,
    create_key,
    digest_of,
    list_keys,
    rotate_key,
)

SECRET = "unit-test-secret"

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
            raise self._redis.outage
        self._redis.reports.append(dict(self.spent))
        return [self._redis.tokens_left for _ in self.spent]


class FakeScript:
    async def __call__(self, *, keys: list[str], args: list[Any], client: FakePipeline) -> None:
        client.spent.append((keys[0], args[2]))


class FakeRedis:
    """Hashes for the key store, holding one predict key made as the CLI makes one; the shared
    bucket's script answers `tokens_left` to every report."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.tokens_left = "100"
        self.down = False
        self.outage: Exception = redis.ConnectionError("Redis is down")
        self.reports: list[dict[str, float]] = []
        self.key = create_key(self, [Scope.PREDICT], "test", secret=SECRET)  # type: ignore[arg-type]

    def hset(self, name: str, mapping: dict[str, str]) -> None:
        self.hashes.setdefault(name, {}).update({k.encode(): v.encode() for k, v in mapping.items()})

    async def hgetall(self, name: str) -> dict[bytes, bytes]:
        if self.down:
            raise self.outage
        return dict(self.hashes.get(name, {}))

    def register_script(self, script: str) -> FakeScript:
        return FakeScript()

    def pipeline(self, transaction: bool) -> FakePipeline:
        return FakePipeline(self)


class SyncRedis:
    """The fake's hashes as the CLI's synchronous client reads them."""

    def __init__(self, fake: FakeRedis) -> None:
        self._hashes = fake.hashes

    def scan_iter(self, match: str, count: int) -> list[str]:
        return [name for name in self._hashes if name.startswith(match.rstrip("*"))]

    def hgetall(self, name: str) -> dict[bytes, bytes]:
        return self._hashes.get(name, {})

    def hset(self, name: str, mapping: dict[str, str]) -> None:
        self._hashes.setdefault(name, {}).update({k.encode(): v.encode() for k, v in mapping.items()})


def keys(client: FakeRedis, rate: float = 10.0, burst: float = 3.0, clock: float = 1e9) -> ApiKeys:
    return ApiKeys(client, secret=SECRET, rate_per_second=rate, burst=burst, clock=lambda: clock)  # type: ignore[arg-type]


async def refusal(check: ApiKeys, header: str | None, scope: Scope = Scope.PREDICT) -> int:
    with pytest.raises(AuthError) as refused:
        await check.authorize(header, scope)
    return refused.value.status


async def test_who_may_call() -> None:
    check = keys(client := FakeRedis())

    assert await check.authorize(f"Bearer {client.key}", Scope.PREDICT) == digest_of(client.key)
    assert await refusal(check, None) == 401
    assert await refusal(check, client.key) == 401  # no "Bearer"
    assert await refusal(check, "Bearer fsk_unknown") == 401
    assert await refusal(check, f"Bearer {client.key}", Scope.INGEST) == 403


async def test_a_key_gets_its_burst_then_429() -> None:
    check = keys(client := FakeRedis(), rate=0.001, burst=3)

    for _ in range(3):
        await check.authorize(f"Bearer {client.key}", Scope.PREDICT)
    assert await refusal(check, f"Bearer {client.key}") == 429


async def test_what_a_process_let_through_is_reported_once() -> None:
    client = FakeRedis()
    check = keys(client, burst=100.0)
    for _ in range(3):
        await check.authorize(f"Bearer {client.key}", Scope.PREDICT)

    await check.report()
    await check.report()  # nothing new
    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)
    await check.report()

    bucket = next(iter(client.reports[0]))
    assert client.reports == [{bucket: 3}, {bucket: 1}]
    assert digest_of(client.key) in bucket


async def test_a_shared_debt_refuses_the_key_here_until_refilled() -> None:
    client = FakeRedis()
    check = keys(client, rate=10.0, burst=100.0)  # plenty of tokens in this process's own bucket
    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)

    client.tokens_left = "-50.0"  # the other replicas spent it: 5 s to refill at 10/s
    await check.report()

    assert await refusal(check, f"Bearer {client.key}") == 429
    client.tokens_left = "20.0"
    check._in_debt_until.clear()  # as if the 5 s had passed
    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)
    await check.report()
    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)


async def test_without_redis_each_process_limits_alone_and_owes_nothing_after() -> None:
    client = FakeRedis()
    check = keys(client, rate=10.0, burst=100.0)
    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)
    client.down = True
    for _ in range(5):
        await check.authorize(f"Bearer {client.key}", Scope.PREDICT)

    await check.report()  # does not raise

    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)
    client.down = False
    await check.report()
    assert list(client.reports[0].values()) == [1]


# What uvloop raises when redis-py writes on a connection a proxy closed under it.
CLOSED_UNDER_UVLOOP = RuntimeError(
    "unable to perform operation on <TCPTransport closed=True reading=False 0x55ef6ef0e870>; the handler is closed"
)


@pytest.mark.parametrize("outage", [redis.ConnectionError("Redis is down"), CLOSED_UNDER_UVLOOP])
async def test_a_redis_outage_lets_known_keys_through_and_refuses_the_others_with_503(outage: Exception) -> None:
    client = FakeRedis()
    other = create_key(client, [Scope.PREDICT], "other", secret=SECRET)  # type: ignore[arg-type]
    check = ApiKeys(client, secret=SECRET, rate_per_second=10, burst=100, cache_seconds=0)  # type: ignore[arg-type]
    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)
    client.down, client.outage = True, outage

    await check.authorize(f"Bearer {client.key}", Scope.PREDICT)  # read before the outage
    assert await refusal(check, f"Bearer {other}") == 503
    assert await refusal(check, f"Bearer {client.key}", Scope.INGEST) == 403  # its record still rules
    await check.report()  # counted alone meanwhile; does not raise


async def test_a_bug_is_not_taken_for_an_outage() -> None:
    client = FakeRedis()
    check = keys(client)
    client.down, client.outage = True, RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        await check.authorize(f"Bearer {client.key}", Scope.PREDICT)


async def test_a_record_written_to_redis_without_the_secret_is_refused() -> None:
    """Someone who can write to Redis but lacks the secret: a record of their own, or the scopes
    or the expiry of a real key changed, verifies no more."""
    client = FakeRedis()
    forged = "fsk_forged"
    genuine = client.hashes[_redis_key("", digest_of(client.key))]
    client.hashes[_redis_key("", digest_of(forged))] = {**genuine}  # a real record's fields, another digest
    assert await refusal(keys(client), f"Bearer {forged}", Scope.ADMIN) == 401

    client.hashes[_redis_key("", digest_of(client.key))] = {**genuine, b"scopes": b"admin,predict"}
    assert await refusal(keys(client), f"Bearer {client.key}", Scope.ADMIN) == 401
    assert await refusal(keys(client), f"Bearer {client.key}", Scope.PREDICT) == 401

    signed_elsewhere = FakeRedis()
    other = ApiKeys(signed_elsewhere, secret=SECRET + "-other", rate_per_second=10, burst=3)  # type: ignore[arg-type]
    assert await refusal(other, f"Bearer {signed_elsewhere.key}") == 401


async def test_a_key_past_its_expiry_is_refused() -> None:
    client = FakeRedis()
    expiring = create_key(client, [Scope.PREDICT], "short", secret=SECRET, expires_at=2_000.0)  # type: ignore[arg-type]
    await keys(client, clock=1_999.0).authorize(f"Bearer {expiring}", Scope.PREDICT)
    with pytest.raises(AuthError, match="expired") as refused:
        await keys(client, clock=2_000.0).authorize(f"Bearer {expiring}", Scope.PREDICT)
    assert refused.value.status == 401
    pushed_back = client.hashes[_redis_key("", digest_of(expiring))]
    pushed_back[b"expires_at"] = b"9999999999.0"
    assert await refusal(keys(client, clock=2_000.0), f"Bearer {expiring}") == 401


def test_the_list_says_which_records_verify() -> None:
    client = FakeRedis()
    client.hashes[_redis_key("", "f" * 64)] = {b"scopes": b"admin", b"name": b"planted", b"created_at": b"1.0"}
    listed = {record.name: record for record in list_keys(SyncRedis(client), secret=SECRET)}  # type: ignore[arg-type]
    assert (listed["test"].signed, listed["planted"].signed) == (True, False)
    assert listed["test"].scopes == frozenset({"predict"})


async def test_a_rotated_key_works_through_the_overlap_then_only_its_successor_does() -> None:
    client = FakeRedis()
    now = time.time()
    lasting = create_key(client, [Scope.PREDICT, Scope.INGEST], "billing", secret=SECRET, expires_at=now + 90 * 86400)  # type: ignore[arg-type]
    new, old = rotate_key(SyncRedis(client), lasting, secret=SECRET, overlap_seconds=3600, now=now)  # type: ignore[arg-type]

    assert old.expires_at == now + 3600
    during, after = keys(client, clock=now + 3599), keys(client, clock=now + 3600)
    for check in (during, after):
        await check.authorize(f"Bearer {new}", Scope.INGEST)  # the name's scopes, kept
        assert await refusal(check, f"Bearer {new}", Scope.ADMIN) == 403
    await during.authorize(f"Bearer {lasting}", Scope.PREDICT)
    assert await refusal(after, f"Bearer {lasting}") == 401
    listed = {r.digest: r for r in list_keys(SyncRedis(client), secret=SECRET)}  # type: ignore[arg-type]
    assert listed[digest_of(lasting)].signed  # the shortened record is signed again
    assert listed[digest_of(new)].name == "billing"
    assert listed[digest_of(new)].expires_at == pytest.approx(now + 90 * 86400, abs=5)  # as long again


def test_only_a_genuine_key_can_be_rotated() -> None:
    client = FakeRedis()
    client.hashes[_redis_key("", digest_of("fsk_planted"))] = {b"scopes": b"admin", b"name": b"planted"}
    for key in ("fsk_unknown", "fsk_planted"):
        with pytest.raises(KeyError):
            rotate_key(SyncRedis(client), key, secret=SECRET, overlap_seconds=60)  # type: ignore[arg-type]
