"""Drift without labels on a synthetic stream with a daily cycle: 30 stationary days raise no
alert; amounts doubling raise a PSI alert on the amount within a day, once; the score's rise is
caught by River's detectors; a reference survives its JSON form."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fraudstream_common.reference import SCORE, Reference
from fraudstream_common.timestamps import seconds_of
from fraudstream_drift.drift import HOUR, DriftMonitor, DriftPolicy

DAY = 24 * HOUR
PER_DAY = 3000


def day_of_predictions(
    rng: np.random.Generator, day: int, *, amount_factor: float = 1.0, score_shift: float = 0.0
) -> list[tuple[float, dict[str, float]]]:
    times = np.sort(day * DAY + rng.random(PER_DAY) * DAY)
    hours = (times % DAY) / HOUR
    night = (hours <= 6).astype(float)
    amounts = rng.lognormal(3.5, 0.8, PER_DAY) * (1 + 0.5 * night) * amount_factor
    scores = np.clip(rng.beta(0.6, 25, PER_DAY) + score_shift, 0, 1)
    return [
        (float(t), {"tx_amount": float(a), "tx_during_night": float(n), SCORE: float(s)})
        for t, a, n, s in zip(times, amounts, night, scores, strict=True)
    ]


def reference(rng: np.random.Generator) -> Reference:
    rows = [values for day in range(7) for _, values in day_of_predictions(rng, day)]
    return Reference.of({name: np.asarray([r[name] for r in rows]) for name in ("tx_amount", "tx_during_night", SCORE)})


def test_no_alert_on_thirty_stationary_days_and_one_for_doubled_amounts_within_a_day() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor("m", "1", reference(rng), DriftPolicy())
    alerts = []
    for day in range(30):
        for time, values in day_of_predictions(rng, day):
            alerts += monitor.observe(time, values)
    assert alerts == []

    for day in range(30, 32):
        for time, values in day_of_predictions(rng, day, amount_factor=2.0):
            alerts += monitor.observe(time, values)
    amount_alerts = [a for a in alerts if a.subject == "tx_amount"]
    assert len(amount_alerts) == 1
    (alert,) = amount_alerts
    assert alert.detector == "PSI"
    assert alert.statistic > alert.threshold
    assert seconds_of(alert.window_end) - 30 * DAY <= DAY
    assert {a.subject for a in alerts} == {"tx_amount"}


def test_a_rising_score_is_caught_by_rivers_detectors() -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor("m", "1", reference(rng), DriftPolicy(psi_threshold=10.0))  # PSI out of the way
    alerts = []
    for day in range(20):
        for time, values in day_of_predictions(rng, day):
            alerts += monitor.observe(time, values)
    assert alerts == []
    for day in range(20, 22):
        for time, values in day_of_predictions(rng, day, score_shift=0.1):
            alerts += monitor.observe(time, values)
    assert {a.detector for a in alerts} & {"ADWIN", "PageHinkley"}
    assert {a.subject for a in alerts} == {SCORE}
    # PageHinkley reports the statistic its threshold applies to, not the hour's mean score.
    assert all(a.statistic > a.threshold for a in alerts if a.detector == "PageHinkley")
    assert min(seconds_of(a.window_end) for a in alerts) - 20 * DAY <= DAY


def test_values_the_reference_never_saw_alert_when_they_are_more_than_a_trickle() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor("m", "1", reference(rng), DriftPolicy())
    alerts = []
    for day in range(20):
        for time, values in day_of_predictions(rng, day):
            alerts += monitor.observe(time, values)
    assert alerts == []
    for day in range(20, 21):
        for n, (time, values) in enumerate(day_of_predictions(rng, day)):
            unseen = {**values, "tx_amount": -1.0} if n % 100 == 0 else values  # 1% below anything seen
            alerts += monitor.observe(time, unseen)
    (alert,) = [a for a in alerts if a.detector == "OutOfRange"]
    assert alert.subject == "tx_amount"
    assert alert.statistic > 0.002


def test_a_reference_survives_json() -> None:
    original = reference(np.random.default_rng(2))
    again = Reference.from_json(original.as_json())
    for name in original.edges:
        assert np.array_equal(original.edges[name], again.edges[name])
        assert np.array_equal(original.shares[name], again.shares[name])
        assert (original.lows[name], original.highs[name]) == (again.lows[name], again.highs[name])
    assert again.period_end is None
    ended = Reference.from_json(replace(original, period_end=1_530_000_000.0).as_json())
    assert ended.period_end == 1_530_000_000.0
