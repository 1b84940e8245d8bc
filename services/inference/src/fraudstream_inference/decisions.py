"""Decisions already taken, by transaction id, in Redis: shared by every replica and every way
in (HTTP, gRPC, the stream), so that a retried transaction gets the decision it got the first
time, even after a model swap.

The first decision wins: it is written with SET NX; a concurrent second one finds it and
answers with it. When Redis is slow or down the cache is skipped (the deadline), the answer is
computed afresh, and a counter says so: a request never waits on it for long.
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

    def encode(self) -> bytes:
        return orjson.dumps([self.score, self.decision, self.model_version, self.threshold, self.degraded])

    @classmethod
    def decode(cls, transaction_id: str, raw: bytes) -> Taken:
        score, decision, version, threshold, degraded = orjson.loads(raw)
        return cls(transaction_id, float(score), int(decision), str(version), float(threshold), bool(degraded))


class DecisionCache:
    def __init__(self, client: aioredis.Redis, *, ttl_seconds: int, deadline_seconds: float, namespace: str) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._deadline = deadline_seconds
        self._prefix = f"fraudstream:{namespace}decision:"

    async def taken(self, transaction_ids: list[str]) -> dict[str, Taken]:
        try:
            raw = await asyncio.wait_for(self._client.mget([self._prefix + t for t in transaction_ids]), self._deadline)
        except Exception as error:
            metrics.DEGRADED.labels("decision_cache").inc()
            logger.warning("decision cache read skipped: %r", error)
            return {}
        return {t: Taken.decode(t, value) for t, value in zip(transaction_ids, raw, strict=True) if value is not None}

    async def remember(self, decisions: list[Taken]) -> dict[str, Taken]:
        """Writes each decision unless one was taken meanwhile; returns the ones that were (they win)."""
        if not decisions:
            return {}
        try:
            return await asyncio.wait_for(self._remember(decisions), self._deadline)
        except Exception as error:
            metrics.DEGRADED.labels("decision_cache").inc()
            logger.warning("decision cache write skipped: %r", error)
            return {}

    async def _remember(self, decisions: list[Taken]) -> dict[str, Taken]:
        async with self._client.pipeline(transaction=False) as pipe:
            for taken in decisions:
                pipe.set(self._prefix + taken.transaction_id, taken.encode(), nx=True, ex=self._ttl)
            written = await pipe.execute()
        lost = [taken.transaction_id for taken, ok in zip(decisions, written, strict=True) if not ok]
        if not lost:
            return {}
        raw = await self._client.mget([self._prefix + t for t in lost])
        return {t: Taken.decode(t, value) for t, value in zip(lost, raw, strict=True) if value is not None}
