"""A replay's pacing: a history's first days go at once, the rest at the speedup or rate,
counted from the first paced transaction (not from the start of the history)."""

from __future__ import annotations

import time

import pytest

from fraudstream_simulator import sinks
from fraudstream_simulator.sinks import Pace, Pacing

DAY = 86400


def test_the_fast_days_go_at_once_then_the_speedup_counts_from_the_first_paced() -> None:
    pace = Pace(Pacing(speedup=100.0, fast_days=2), event_start=0, clock=lambda: 5000.0)
    assert pace.deadline(0, 0) is None
    assert pace.deadline(1, 2 * DAY - 1) is None
    assert pace.deadline(2, 2 * DAY) == 5000.0
    assert pace.deadline(3, 2 * DAY + 300) == pytest.approx(5003.0)


def test_a_rate_counts_transactions_from_the_first_paced() -> None:
    pace = Pace(Pacing(rate=10.0, fast_days=1), event_start=1000, clock=lambda: 7.0)
    assert pace.deadline(0, 1000) is None
    assert pace.deadline(50, 1000 + DAY) == 7.0
    assert pace.deadline(60, 1000 + DAY + 1) == pytest.approx(8.0)


def test_without_speedup_or_rate_everything_goes_at_once() -> None:
    pace = Pace(Pacing.fast(), event_start=0)
    assert pace.deadline(10, 10 * DAY) is None


def test_pacing_starts_once_the_wait_after_the_history_returns() -> None:
    now = [100.0]
    waits = []

    def wait_for_a_model() -> None:
        waits.append(now[0])
        now[0] += 600.0

    pace = Pace(Pacing(speedup=100.0, fast_days=1), event_start=0, clock=lambda: now[0], before_paced=wait_for_a_model)
    assert pace.deadline(0, 0) is None
    assert waits == []
    assert pace.deadline(1, DAY) == 700.0
    assert pace.deadline(2, DAY + 100) == pytest.approx(701.0)
    assert waits == [100.0]


def test_a_message_due_within_the_slack_goes_without_a_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(time, "monotonic", lambda: 100.0)
    sinks._wait_until(100.0 + sinks.PACING_SLACK_SECONDS / 2)
    assert slept == []
    sinks._wait_until(100.05)
    assert slept == [pytest.approx(0.05)]
