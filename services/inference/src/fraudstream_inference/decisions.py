"""Decisions already taken, by transaction id, in Redis: shared by every replica and every way
in (HTTP, gRPC, the stream), so that a retried transaction gets the decision it got the first
time, even after a model swap.

The first decision wins: each is written with SET NX GET, which in the same round trip returns
the one taken before, if any; then that one is the answer. When Redis is slow or down the cache
is skipped (the deadline), the answer is computed afresh, and a counter says so: a request never
waits on it for long.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from fraudstream_inference import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    transaction_id: str
    score: float
    decision: int
    model_version: str
    threshold: float
    degraded: bool
    # The decided transaction's content_digest (fraudstream_common.idempotency); "" when
    # unknown: decisions stored before digests were.
    digest: str = ""

    def encode(self) -> bytes:
        return orjson.dumps([self.score, self.decision, self.model_version, self.threshold, self.degraded, self.digest])

    @classmethod
    def decode(cls, transaction_id: str, raw: bytes) -> Taken:
        score, decision, version, threshold, degraded, *digest = orjson.loads(raw)
        return cls(
            transaction_id,
            float(score),
            int(decision),
            str(version),
            float(threshold),
            bool(degraded),
            str(digest[0]) if digest else "",
        )

    def conflicts_with(self, digest: str) -> bool:
        """True when this decision was taken for other content under the same id."""
        return bool(self.digest) and self.digest != digest


class DecisionCache:
    def __init__(self, client: aioredis.Redis, *, ttl_seconds: int, deadline_seconds: float, namespace: str) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._deadline = deadline_seconds
        self._prefix = f"fraudstream:{namespace}decision:"

    async def settle(self, decisions: list[Taken]) -> dict[str, Taken]:
        """Writes each decision unless one was taken before for its transaction; returns those
        taken before (they stand). One round trip: SET NX GET (Redis 7)."""
        if not decisions:
            return {}
        try:
            return await asyncio.wait_for(self._settle(decisions), self._deadline)
        except Exception as error:
            metrics.DEGRADED.labels("decision_cache").inc()
            logger.warning("decision cache skipped: %r", error)
            return {}

    async def _settle(self, decisions: list[Taken]) -> dict[str, Taken]:
        async with self._client.pipeline(transaction=False) as pipe:
            for taken in decisions:
                pipe.set(self._prefix + taken.transaction_id, taken.encode(), nx=True, ex=self._ttl, get=True)
            previous = await pipe.execute()
        return {
            taken.transaction_id: Taken.decode(taken.transaction_id, before)
            for taken, before in zip(decisions, previous, strict=True)
            if before is not None
        }
