"""Readiness: named checks that each service registers (dependency reachable, model loaded).

Liveness (`/healthz`) says only that the process serves; readiness (`/readyz`) runs every
check, so an orchestrator stops routing to a replica whose dependencies are gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Check = Callable[[], Awaitable[bool]]


@dataclass
class Readiness:
    checks: dict[str, Check] = field(default_factory=dict)
    timeout: float = 2.0

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def evaluate(self) -> dict[str, bool]:
        async def run(check: Check) -> bool:
            try:
                return await asyncio.wait_for(check(), self.timeout)
            except Exception:
                return False

        results = await asyncio.gather(*(run(c) for c in self.checks.values()))
        return dict(zip(self.checks, results, strict=True))
