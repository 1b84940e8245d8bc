"""The retrain schedule: one request per interval, named by it, none when turned off."""

from __future__ import annotations

from fraudstream_trainer.consumer import Schedule


def test_one_request_per_interval_named_by_the_interval() -> None:
    now = [7200.0]
    schedule = Schedule(3600, lambda: now[0])
    first = schedule.due()
    assert first is not None
    assert (first.request_id, first.reason, first.force) == ("schedule-3600s-2", "schedule", False)
    assert schedule.due() == first  # not answered yet: still due
    schedule.done(first)
    now[0] = 10_799.0
    assert schedule.due() is None
    now[0] = 10_800.0
    second = schedule.due()
    assert second is not None
    assert second.request_id == "schedule-3600s-3"


def test_a_zero_interval_never_asks() -> None:
    assert Schedule(0, lambda: 1e9).due() is None
