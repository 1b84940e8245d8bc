"""API keys: created once by `fraudstream apikey create --scope SCOPE`, shown once, stored only
as their SHA-256 in Redis with their scopes; sent as `Authorization: Bearer KEY` (HTTP) or as
`authorization` metadata (gRPC). A key is checked against Redis at most every `cache_seconds`
per replica; a revoked key stops working within that time. Each key has a token-bucket rate
limit per replica.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import grpc
import redis
import redis.asyncio as aioredis

from fraudstream_common.settings import ApiKeyRules

KEY_PREFIX = "fsk_"


class Scope(StrEnum):
    PREDICT = "predict"
    INGEST = "ingest"
    ADMIN = "admin"


class AuthError(Exception):
    """Why a call is refused: `status` is 401 (no or unknown key), 403 (scope) or 429 (rate)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


REFUSAL_OUTCOMES = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}
"""The outcome a refusal's status is counted as, in every service's requests metric."""
GRPC_STATUS = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def _redis_key(namespace: str, digest: str) -> str:
    return f"fraudstream:{namespace}apikey:{digest}"


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(client: redis.Redis, scopes: list[Scope], name: str, *, namespace: str = "") -> str:
    """A new key with `scopes`; only its digest is stored. Returns the key (shown once)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client.hset(
        _redis_key(namespace, digest_of(key)),
        mapping={"scopes": ",".join(sorted(s.value for s in scopes)), "name": name, "created_at": str(time.time())},
    )
    return key


def revoke_key(client: redis.Redis, key: str, *, namespace: str = "") -> bool:
    return bool(client.delete(_redis_key(namespace, digest_of(key))))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ApiKeys:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        rate_per_second: float,
        burst: float,
        namespace: str = "",
        cache_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._rate = rate_per_second
        self._burst = burst
        self._cache_seconds = cache_seconds
        self._known: dict[str, tuple[frozenset[str], float]] = {}
        self._buckets: dict[str, _Bucket] = {}

    async def authorize(self, header: str | None, scope: Scope) -> str:
        """The key's digest when `header` ("Bearer KEY") may call with `scope`; AuthError otherwise."""
        if not header:
            raise AuthError(401, "missing API key: send Authorization: Bearer KEY")
        kind, _, key = header.partition(" ")
        if kind.lower() != "bearer" or not key.strip():
            raise AuthError(401, "malformed Authorization header: expected Bearer KEY")
        digest = digest_of(key.strip())
        scopes = await self._scopes(digest)
        if scopes is None:
            raise AuthError(401, "unknown API key")
        if scope.value not in scopes:
            raise AuthError(403, f"this API key lacks the {scope.value} scope")
        if not self._take_token(digest):
            raise AuthError(429, f"rate limit of {self._rate:g} requests/s for this key exceeded")
        return digest

    async def _scopes(self, digest: str) -> frozenset[str] | None:
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and now - known[1] < self._cache_seconds:
            return known[0]
        raw = await cast(Awaitable[bytes | None], self._client.hget(_redis_key(self._namespace, digest), "scopes"))
        if raw is None:
            self._known.pop(digest, None)
            return None
        scopes = frozenset((raw.decode() if isinstance(raw, bytes) else str(raw)).split(","))
        self._known[digest] = (scopes, now)
        return scopes

    def _take_token(self, digest: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(digest)
        if bucket is None:
            bucket = self._buckets[digest] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


def api_keys(client: aioredis.Redis, rules: ApiKeyRules, *, namespace: str) -> ApiKeys | None:
    """The key check a service's settings ask for: None when `auth_enabled` is off."""
    if not rules.auth_enabled:
        return None
    return ApiKeys(
        client, rate_per_second=rules.rate_limit_per_second, burst=rules.rate_limit_burst, namespace=namespace
    )


async def authorize_grpc(
    keys: ApiKeys, context: grpc.aio.ServicerContext, scope: Scope, refused: Callable[[str], None]
) -> None:
    """Checks the key a gRPC call sends in its `authorization` metadata ("Bearer KEY"); a refused
    call is counted by `refused` (with its outcome) and aborted with the status that says why."""
    header = dict(context.invocation_metadata() or ()).get("authorization")
    try:
        await keys.authorize(header if isinstance(header, str) else None, scope)
    except AuthError as refusal:
        refused(REFUSAL_OUTCOMES[refusal.status])
        await context.abort(GRPC_STATUS[refusal.status], refusal.reason)
