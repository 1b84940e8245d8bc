"""Readiness: named checks that each service registers (dependency reachable, model loaded).

Liveness (`/healthz`) says only that the process serves; readiness (`/readyz`) runs every
check, so an orchestrator stops routing to a replica whose dependencies are gone, and says what
the service is waiting for (a first model, history to mature), in words an operator can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Check = Callable[[], Awaitable[bool]]
# What a service is waiting for, in words (and until when, where it knows); None: nothing.
Waiting = Callable[[], str | None]


@dataclass
class Readiness:
    checks: dict[str, Check] = field(default_factory=dict)
    waits: dict[str, Waiting] = field(default_factory=dict)
    timeout: float = 2.0

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def waiting(self, name: str, waiting_for: Waiting) -> None:
        """Reports what `name` waits for while `waiting_for` returns a text; a wait need not
        make the service unready (a trainer waiting for history still serves)."""
        self.waits[name] = waiting_for

    def waiting_for(self) -> dict[str, str]:
        return {name: text for name, wait in self.waits.items() if (text := wait()) is not None}

    async def evaluate(self) -> dict[str, bool]:
        async def run(check: Check) -> bool:
            try:
                return await asyncio.wait_for(check(), self.timeout)
            except Exception:
                return False

        results = await asyncio.gather(*(run(c) for c in self.checks.values()))
        return dict(zip(self.checks, results, strict=True))
