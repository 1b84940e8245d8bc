from __future__ import annotations

import numpy as np

from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind
from fraudstream_common.timestamps import timestamp_of
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.settings import MonitorSettings
from tests.unit.monitor.fixtures import HOUR, START, InMemoryVersions, columns, predictions, reference_of

SETTINGS = MonitorSettings(
    window_hours=2,
    min_window_predictions=500,
    quiet_hours=1000,
    quality_window_hours=1,
    label_maturity_hours=2,
    quality_min_frauds=5,
    debounce_seconds=10,
    cooldown_seconds=3600,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def core_with_reference(clock: Clock) -> tuple[MonitorCore, InMemoryVersions]:
    versions = InMemoryVersions()
    versions.publish("1", reference_of(columns(np.random.default_rng(0), 20_000)))
    return MonitorCore(SETTINGS, versions, clock=clock), versions


def test_a_shifted_amount_raises_one_drift_alert_and_after_the_debounce_one_request() -> None:
    rng = np.random.default_rng(1)
    clock = Clock()
    core, _ = core_with_reference(clock)
    assert core.predictions(predictions(rng, range(0, 4), 600)) == []
    alerts = core.predictions(predictions(rng, range(4, 7), 600, amount_scale=4.0) + predictions(rng, range(7, 8), 5))
    assert {(a.subject, a.detector) for a in alerts} >= {("tx_amount", "PSI")}
    assert all(a.kind == AlertKind.ALERT_KIND_INPUT_DRIFT for a in alerts)
    assert core.due_request() is None  # debouncing
    clock.now += 11
    request = core.due_request()
    assert request is not None
    assert request.reason == "drift"
    assert {a.alert_id for a in request.evidence} == {a.alert_id for a in alerts}
    clock.now += 11
    assert core.due_request() is None


def test_replayed_records_rebuild_the_state_without_raising_alerts_again() -> None:
    rng = np.random.default_rng(2)
    clock = Clock()
    core, _ = core_with_reference(clock)
    drifting = predictions(rng, range(0, 4), 600) + predictions(rng, range(4, 8), 600, amount_scale=4.0)
    assert core.predictions(drifting, live=False) == []
    clock.now += 60
    assert core.due_request() is None
    [version] = core.overview()["versions"]
    assert version["drift"]["tx_amount"]["psi"] > 0.2  # the state is there
    assert len(core.alerts) > 0  # and the console knows what was raised


def test_a_version_without_reference_is_watched_for_quality_only() -> None:
    rng = np.random.default_rng(3)
    clock = Clock()
    versions = InMemoryVersions()
    versions.publish("7", None)
    core = MonitorCore(SETTINGS, versions, clock=clock)
    core.predictions(predictions(rng, range(0, 3), 300, version="7"))
    frauds = [f"tx-7-0-{i}" for i in range(0, 300, 30)]  # 10 frauds the scores do not rank
    labels = [Label(transaction_id=t, is_fraud=True, label_time=timestamp_of(START + HOUR)) for t in frauds]
    labels.append(Label(transaction_id="x", is_fraud=False, label_time=timestamp_of(START + 4 * HOUR)))
    alerts = core.labels(labels)
    [alert] = alerts
    assert alert.kind == AlertKind.ALERT_KIND_QUALITY
    assert alert.statistic < alert.threshold
    assert alert.details["frauds"] == "10"
    [version] = core.overview()["versions"]
    assert version["drift_watched"] is False
    assert version["quality"][0]["frauds"] == 10
    # The same window changed by a very late label does not alert twice.
    assert (
        core.labels([Label(transaction_id="tx-7-0-1", is_fraud=True, label_time=timestamp_of(START + 9 * HOUR))]) == []
    )


def test_a_paused_loop_asks_nothing_but_an_operator_can_force() -> None:
    rng = np.random.default_rng(4)
    clock = Clock()
    core, _ = core_with_reference(clock)
    core.pause(True)
    core.predictions(predictions(rng, range(0, 4), 600) + predictions(rng, range(4, 8), 600, amount_scale=4.0))
    clock.now += 60
    assert core.due_request() is None
    forced = core.force_request("key:abc")
    assert forced.force
    assert (forced.reason, forced.requested_by) == ("operator", "key:abc")
    assert core.overview()["requests"][0]["request_id"] == forced.request_id
