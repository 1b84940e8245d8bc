"""The terminal stage's push schedule: the terminals it picks at each checkpoint are those a
walk over every deferred terminal picks (the rules of TerminalStage._take_online)."""

from __future__ import annotations

import random

import pytest

from fraudstream_common.features.definitions import DAY, TERMINAL_HORIZON
from fraudstream_features.terminals import TERMINAL_PUSH_SLACK, PushSchedule


class EveryDeferred:
    """The rules, applied by visiting every deferred terminal."""

    def __init__(self) -> None:
        self.due: set[str] = set()
        self.deferred: dict[str, tuple[float, float, float]] = {}
        self.past_horizon: set[str] = set()
        self.fired: set[str] = set()  # the rules that picked a terminal

    def defer(self, terminal_id: str, event_time: float, now: float) -> None:
        since, until, at = self.deferred.get(terminal_id, (event_time, event_time, now))
        self.deferred[terminal_id] = (min(since, event_time), max(until, event_time), at)

    def take(self, watermark: float, now: float, max_wait: float, *, everything: bool) -> set[str]:
        for terminal_id, (since, until, at) in list(self.deferred.items()):
            if until <= watermark - TERMINAL_HORIZON:
                del self.deferred[terminal_id]
                self.past_horizon.add(terminal_id)
                self.fired.add("past the horizon")
            elif everything or since <= watermark - TERMINAL_PUSH_SLACK or at <= now - max_wait:
                self.due.add(terminal_id)
                self.fired.add(
                    "everything" if everything else "slack" if since <= watermark - TERMINAL_PUSH_SLACK else "waited"
                )
        if everything:
            self.due |= self.past_horizon
        taken, self.due = self.due, set()
        for terminal_id in taken:
            self.deferred.pop(terminal_id, None)
            self.past_horizon.discard(terminal_id)
        return taken


@pytest.mark.parametrize("stale_kept", [1024, 0])  # 0: its heaps are rebuilt often
@pytest.mark.parametrize("seed", range(3))
def test_the_schedule_takes_what_a_walk_over_every_deferred_terminal_takes(seed: int, stale_kept: int) -> None:
    rng = random.Random(seed)
    schedule, reference = PushSchedule(stale_kept=stale_kept), EveryDeferred()
    terminals = [f"m{n}" for n in range(40)]
    watermark, now = 100.0 * DAY, 0.0
    taken = 0
    for _ in range(10_000):
        step = rng.random()
        if step < 0.6:
            terminal_id = rng.choice(terminals)
            # Mostly near the watermark, sometimes far behind it (a replay, a late transaction).
            event_time = watermark - rng.choice((rng.uniform(0, DAY), rng.uniform(0, 60 * DAY)))
            schedule.defer(terminal_id, event_time, now)
            reference.defer(terminal_id, event_time, now)
        elif step < 0.7:
            terminal_id = rng.choice(terminals)
            schedule.due.add(terminal_id)
            reference.due.add(terminal_id)
        else:
            watermark += rng.uniform(0, 2 * DAY)
            now += rng.uniform(0, 20)
            everything = rng.random() < 0.02
            expected = reference.take(watermark, now, 30.0, everything=everything)
            assert schedule.take(watermark, now, 30.0, everything=everything) == expected
            taken += len(expected)
            first = next(iter(reference.deferred.values()), None)
            assert schedule.longest_wait(now) == (now - first[2] if first else 0.0)
    assert taken > 1000
    assert reference.fired == {"past the horizon", "slack", "waited", "everything"}
