"""Retrain requests: debounced, then a cooldown; idempotent ids from the evidence; a pause
stops them and an operator's force goes through."""

from __future__ import annotations

import pytest

from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert
from fraudstream_drift.retrain import LoopClock, Retrainer, RetrainPolicy
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_trainer.settings import TrainerSettings


def alert(alert_id: str, kind: AlertKind.ValueType = AlertKind.ALERT_KIND_INPUT_DRIFT) -> DriftAlert:
    return DriftAlert(alert_id=alert_id, kind=kind, subject="tx_amount", detector="PSI", statistic=0.4, threshold=0.2)


def retrainer() -> Retrainer:
    return Retrainer("fraud-detector", RetrainPolicy(debounce_seconds=600, cooldown_seconds=6 * 3600))


def test_alerts_are_gathered_then_one_request_then_a_cooldown() -> None:
    monitor = retrainer()
    monitor.alert(alert("a1"), now=1000)
    monitor.alert(alert("a2"), now=1200)
    assert monitor.due(now=1500) is None  # still gathering
    request = monitor.due(now=1600)
    assert request is not None
    assert (request.reason, request.model_name, request.requested_by) == ("drift", "fraud-detector", "monitor")
    assert [a.alert_id for a in request.evidence] == ["a1", "a2"]
    assert not request.force
    assert monitor.due(now=1700) is None

    monitor.alert(alert("a3"), now=2000)
    assert monitor.due(now=2600) is None  # within the cooldown: dropped
    assert monitor.due(now=1600 + 6 * 3600 + 1) is None  # nothing pending any more
    monitor.alert(alert("a4"), now=30_000)
    later = monitor.due(now=30_600)
    assert later is not None
    assert [a.alert_id for a in later.evidence] == ["a4"]


def test_the_same_evidence_gives_the_same_request_id() -> None:
    first, second = retrainer(), retrainer()
    for monitor, now in ((first, 0.0), (second, 5000.0)):
        monitor.alert(alert("b2"), now=now)
        monitor.alert(alert("b1", AlertKind.ALERT_KIND_QUALITY), now=now)
    one, two = first.due(now=600), second.due(now=5600)
    assert one is not None
    assert two is not None
    assert one.request_id == two.request_id
    other = retrainer()
    other.alert(alert("b3"), now=0)
    different = other.due(now=600)
    assert different is not None
    assert different.request_id != one.request_id


def test_a_pause_stops_requests_and_a_force_goes_through() -> None:
    monitor = retrainer()
    monitor.paused = True
    monitor.alert(alert("c1", AlertKind.ALERT_KIND_QUALITY), now=0)
    assert monitor.due(now=700) is None
    forced = monitor.force("ops@example.com", now=800)
    assert (forced.reason, forced.requested_by, forced.force) == ("operator", "ops@example.com", True)
    assert monitor.force("ops@example.com", now=900).request_id != forced.request_id


def test_the_loop_clock_runs_at_the_faster_of_wall_and_event_time() -> None:
    wall = [1000.0]
    clock = LoopClock(lambda: wall[0])
    start = clock()
    clock.event_time(float("-inf"))  # nothing judged yet: ignored
    clock.event_time(1_500_000_000.0)  # the first judged hour sets where event time stands
    wall[0] += 10
    assert clock() == start + 10  # wall time only
    clock.event_time(1_500_000_000.0 + 6 * 3600)  # a replay judged 6 hours in a second
    wall[0] += 1
    assert clock() == start + 10 + 6 * 3600
    clock.event_time(1_500_000_000.0)  # event time never goes back
    wall[0] += 2
    assert clock() == start + 12 + 6 * 3600


def test_a_replayed_drift_is_asked_for_in_event_time() -> None:
    wall = [0.0]
    clock = LoopClock(lambda: wall[0])
    monitor = retrainer()
    clock.event_time(0.0)
    monitor.alert(alert("r1"), now=clock())
    clock.event_time(601.0)  # ten simulated minutes later, a fraction of a second of wall time
    wall[0] += 0.2
    assert monitor.due(now=clock()) is not None


def test_the_trainers_cooldown_is_not_the_monitors(monkeypatch: pytest.MonkeyPatch) -> None:
    # `make demo` and `fraudstream up` give every service one environment: the trainer's 96 s
    # of wall time once switched the monitor's request cooldown off too.
    monkeypatch.setenv("FRAUDSTREAM_COOLDOWN_SECONDS", "96")
    assert TrainerSettings().cooldown_seconds == 96
    assert MonitorSettings().retrain_policy().cooldown_seconds == RetrainPolicy.cooldown_seconds
    monkeypatch.setenv("FRAUDSTREAM_REQUEST_COOLDOWN_SECONDS", "7200")
    assert MonitorSettings().retrain_policy().cooldown_seconds == 7200
    assert TrainerSettings().cooldown_seconds == 96
