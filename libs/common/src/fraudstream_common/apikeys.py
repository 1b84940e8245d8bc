"""API keys: created once by `fraudstream apikey create --scope SCOPE`, shown once, stored only
as their SHA-256 in Redis with their scopes, name and expiry; sent as `Authorization: Bearer
KEY` (HTTP) or as `authorization` metadata (gRPC). A key is checked against Redis at most every
`cache_seconds` per replica; a revoked key stops working within that time, an expired one at
its expiry.

Redis is not trusted with who may call: each record carries an HMAC-SHA256, under the
`api_key_secret` the services and the CLI share, of its digest, scopes and expiry. A record
that someone with write access to Redis made or changed without the secret (a new digest, an
admin scope added, an expiry pushed back) does not verify, and its key is refused as unknown.

A key's rate limit holds across replicas and worker processes. Each process checks its own
token bucket per key on every call, with no round trip, and every `report_seconds` debits what
it let through from the key's bucket in Redis that all of them share (refilled by Redis's clock;
`_SPEND`). When that bucket is in debt, the process refuses the key until the debt is refilled,
so over any stretch longer than a report a key gets its rate, however many replicas it calls;
between two reports each replica may let through up to its own bucket. When Redis cannot be
reached the processes go on with their own buckets (a key then gets its rate from each), as
scoring goes on without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, cast

import grpc
import redis
import redis.asyncio as aioredis

from fraudstream_common.settings import ApiKeyRules

if TYPE_CHECKING:
    from fraudstream_common.grpc_serving import CallContext

KEY_PREFIX = "fsk_"
log = logging.getLogger(__name__)

# KEYS[1]: the key's shared bucket; ARGV: rate per second, burst, tokens spent since the
# caller's last report. Redis's clock, so that replicas' clocks do not matter. Returns the
# tokens left, negative for a debt (a string: Redis truncates a script's numbers to integers).
_SPEND = """
local rate, burst, spent = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate) - spent
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(tokens)
"""


class Scope(StrEnum):
    PREDICT = "predict"
    INGEST = "ingest"
    ADMIN = "admin"


class AuthError(Exception):
    """Why a call is refused: `status` is 401 (no or unknown key), 403 (scope), 429 (rate) or
    503 (Redis cannot be asked about a key this process has not seen)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


REFUSAL_OUTCOMES = {401: "unauthorized", 403: "forbidden", 429: "rate_limited", 503: "unavailable"}
"""The outcome a refusal's status is counted as, in every service's requests metric."""
GRPC_STATUS = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def _unreachable(error: Exception) -> bool:
    """Whether `error` means Redis could not be asked (nothing was decided): redis-py's and the
    OS's connection errors, and the RuntimeError uvloop raises for a write on a connection that
    closed under redis-py (MagicStack/uvloop#506), which redis-py lets through."""
    if isinstance(error, redis.RedisError | OSError):
        return True
    return isinstance(error, RuntimeError) and "handler is closed" in str(error)


def _redis_key(namespace: str, digest: str) -> str:
    return f"fraudstream:{namespace}apikey:{digest}"


def _bucket_key(namespace: str, digest: str) -> str:
    return f"fraudstream:{namespace}apikey-rate:{digest}"


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _signature(secret: str, digest: str, scopes: str, expires_at: str) -> str:
    message = f"{digest}|{scopes}|{expires_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """What Redis holds of a key, and whether the record verifies under the secret."""

    digest: str
    name: str
    scopes: frozenset[str]
    created_at: float
    expires_at: float | None
    signed: bool

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def _record(digest: str, fields: dict[bytes, bytes], secret: str) -> KeyRecord:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    scopes, expires = text.get("scopes", ""), text.get("expires_at", "")
    signature = text.get("signature", "")
    return KeyRecord(
        digest=digest,
        name=text.get("name", ""),
        scopes=frozenset(scopes.split(",")) if scopes else frozenset(),
        created_at=float(text.get("created_at") or 0.0),
        expires_at=float(expires) if expires else None,
        signed=hmac.compare_digest(signature, _signature(secret, digest, scopes, expires)),
    )


def create_key(
    client: redis.Redis,
    scopes: list[Scope],
    name: str,
    *,
    secret: str,
    namespace: str = "",
    expires_at: float | None = None,
) -> str:
    """A new key with `scopes`, valid until `expires_at` (Unix seconds; None: until revoked);
    only its digest is stored, in a record signed with `secret`. Returns the key (shown once)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    digest = digest_of(key)
    client.hset(
        _redis_key(namespace, digest),
        mapping={
            "name": name,
            "created_at": repr(time.time()),
            **_signed(secret, digest, {s.value for s in scopes}, expires_at),
        },
    )
    return key


def _signed(secret: str, digest: str, scopes: set[str], expires_at: float | None) -> dict[str, str]:
    """The fields of a key record that its signature covers, and the signature."""
    scope_text = ",".join(sorted(scopes))
    expires = "" if expires_at is None else repr(float(expires_at))
    return {"scopes": scope_text, "expires_at": expires, "signature": _signature(secret, digest, scope_text, expires)}


def list_keys(client: redis.Redis, *, secret: str, namespace: str = "") -> list[KeyRecord]:
    """Every key record of the namespace, oldest first, each saying whether it verifies."""
    records = []
    prefix = _redis_key(namespace, "")
    for redis_key in client.scan_iter(match=f"{prefix}*", count=500):
        name = redis_key.decode() if isinstance(redis_key, bytes) else str(redis_key)
        fields = cast(dict[bytes, bytes], client.hgetall(redis_key))
        if fields:
            records.append(_record(name[len(prefix) :], fields, secret))
    return sorted(records, key=lambda record: record.created_at)


def rotate_key(
    client: redis.Redis, key: str, *, secret: str, namespace: str = "", overlap_seconds: float, now: float | None = None
) -> tuple[str, KeyRecord]:
    """A new key with the old one's name and scopes, valid as long from now as the old one was
    from its creation; the old key then expires `overlap_seconds` from now (or sooner, as it
    would have), so that its users can switch. Returns the new key and the old key's record as
    it now stands. KeyError: no such key, or its record does not verify under `secret`."""
    now = time.time() if now is None else now
    digest = digest_of(key)
    fields = cast(dict[bytes, bytes], client.hgetall(_redis_key(namespace, digest)))
    old = _record(digest, fields, secret) if fields else None
    if old is None or not old.signed or old.expired(now):
        raise KeyError("no such key, or it expired, or its record does not verify")
    lifetime = None if old.expires_at is None else old.expires_at - old.created_at
    new_key = create_key(
        client,
        [Scope(s) for s in sorted(old.scopes)],
        old.name,
        secret=secret,
        namespace=namespace,
        expires_at=None if lifetime is None else now + lifetime,
    )
    ends = now + overlap_seconds if old.expires_at is None else min(old.expires_at, now + overlap_seconds)
    client.hset(_redis_key(namespace, digest), mapping=_signed(secret, digest, set(old.scopes), ends))
    return new_key, replace(old, expires_at=ends)


def revoke_key(client: redis.Redis, key: str, *, namespace: str = "") -> bool:
    return bool(client.delete(_redis_key(namespace, digest_of(key))))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ApiKeys:
    """The key check, and a component of the service runner: `run` reports what each key spent
    to the bucket the replicas share (module docstring)."""

    name = "api-keys"

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        secret: str,
        rate_per_second: float,
        burst: float,
        namespace: str = "",
        cache_seconds: float = 30.0,
        report_seconds: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._secret = secret
        self._clock = clock
        self._namespace = namespace
        self._rate = rate_per_second
        self._burst = burst
        self._cache_seconds = cache_seconds
        self._report_seconds = report_seconds
        self._known: dict[str, tuple[KeyRecord, float]] = {}
        self._unsigned_seen: set[str] = set()
        self._buckets: dict[str, _Bucket] = {}
        self._unreported: dict[str, int] = {}
        self._in_debt_until: dict[str, float] = {}
        self._spend = client.register_script(_SPEND)
        self._stopping = asyncio.Event()
        self._reporting_failed = False

    async def authorize(self, header: str | None, scope: Scope) -> str:
        """The key's digest when `header` ("Bearer KEY") may call with `scope`; AuthError otherwise."""
        if not header:
            raise AuthError(401, "missing API key: send Authorization: Bearer KEY")
        kind, _, key = header.partition(" ")
        if kind.lower() != "bearer" or not key.strip():
            raise AuthError(401, "malformed Authorization header: expected Bearer KEY")
        digest = digest_of(key.strip())
        record = await self._record(digest)
        if record is None:
            raise AuthError(401, "unknown API key")
        if record.expired(self._clock()):
            raise AuthError(401, "expired API key: create a new one (fraudstream apikey create)")
        if scope.value not in record.scopes:
            raise AuthError(403, f"this API key lacks the {scope.value} scope")
        if not self._take_token(digest):
            raise AuthError(429, f"rate limit of {self._rate:g} requests/s for this key exceeded")
        self._unreported[digest] = self._unreported.get(digest, 0) + 1
        return digest

    def actor(self, digest: str) -> str:
        """Who holds an authorized key, for an audit record: its name and digest prefix."""
        known = self._known.get(digest)
        name = known[0].name if known is not None else ""
        return f"{name or 'unnamed'} (key:{digest[:12]})"

    async def _record(self, digest: str) -> KeyRecord | None:
        """The key's record, if Redis has one that verifies under the secret."""
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and now - known[1] < self._cache_seconds:
            return known[0]
        try:
            fields = await cast(
                Awaitable[dict[bytes, bytes]], self._client.hgetall(_redis_key(self._namespace, digest))
            )
        except Exception as error:
            if not _unreachable(error):
                raise
            if known is not None:
                return known[0]  # the last record read: nothing can revoke it while Redis is away
            raise AuthError(503, "API keys cannot be checked now (their store is unreachable): retry") from None
        record = _record(digest, fields, self._secret) if fields else None
        if record is not None and not record.signed:
            if digest not in self._unsigned_seen:
                self._unsigned_seen.add(digest)
                log.warning(
                    "api keys: the record of key %s... in Redis does not verify under this service's secret "
                    "(made or changed without it, or before keys were signed): refused",
                    digest[:12],
                )
            record = None
        if record is None:
            self._known.pop(digest, None)
            return None
        self._known[digest] = (record, now)
        return record

    def _take_token(self, digest: str) -> bool:
        now = time.monotonic()
        if now < self._in_debt_until.get(digest, 0.0):
            return False
        bucket = self._buckets.get(digest)
        if bucket is None:
            bucket = self._buckets[digest] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    async def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._report_seconds)
            await self.report()

    async def stop(self) -> None:
        self._stopping.set()

    async def report(self) -> None:
        """Debits what each key spent here since the last report from its shared bucket, and
        refuses a key here for as long as its bucket takes to refill a debt."""
        spent, self._unreported = self._unreported, {}
        if not spent:
            return
        digests = list(spent)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for digest in digests:
                    await self._spend(
                        keys=[_bucket_key(self._namespace, digest)],
                        args=[self._rate, self._burst, spent[digest]],
                        client=pipe,
                    )
                left = await pipe.execute()
        except Exception as error:
            if not _unreachable(error):
                raise
            # What was spent meanwhile is not owed later: a key is not refused for an outage.
            if not self._reporting_failed:
                log.warning("api keys: cannot report spent rate to Redis, each process limits alone: %s", error)
            self._reporting_failed = True
            return
        if self._reporting_failed:
            log.info("api keys: reporting spent rate to Redis again")
            self._reporting_failed = False
        now = time.monotonic()
        for digest, tokens in zip(digests, left, strict=True):
            debt = -float(tokens)
            if debt > 0:
                self._in_debt_until[digest] = now + debt / self._rate
            else:
                self._in_debt_until.pop(digest, None)


def api_keys(client: aioredis.Redis, rules: ApiKeyRules, *, namespace: str) -> ApiKeys | None:
    """The key check a service's settings ask for: None when `auth_enabled` is off."""
    if not rules.auth_enabled:
        return None
    return ApiKeys(
        client,
        secret=rules.api_key_secret.get_secret_value(),
        rate_per_second=rules.rate_limit_per_second,
        burst=rules.rate_limit_burst,
        namespace=namespace,
        report_seconds=rules.rate_limit_report_ms / 1000,
    )


async def authorize_grpc(keys: ApiKeys, context: CallContext, scope: Scope, refused: Callable[[str], None]) -> None:
    """Checks the key a gRPC call sends in its `authorization` metadata ("Bearer KEY"); a refused
    call is counted by `refused` (with its outcome) and aborted with the status that says why."""
    header = dict(context.invocation_metadata()).get("authorization")
    try:
        await keys.authorize(header, scope)
    except AuthError as refusal:
        refused(REFUSAL_OUTCOMES[refusal.status])
        await context.abort(GRPC_STATUS[refusal.status], refusal.reason)
