"""New patterns in pairs of features: a region the reference left almost empty, filled by many
cards at once, alerts within a day, once; the same rows from one busy card do not; thirty
stationary days raise nothing. A night's hours, judged against the reference's same hours, find
the pattern at the end of its first night, and not one busy card."""

from __future__ import annotations

import numpy as np

from fraudstream_common.reference import NIGHT_HOURS, SCORE, Reference
from fraudstream_common.timestamps import seconds_of
from fraudstream_drift.drift import HOUR, DriftMonitor, DriftPolicy

DAY = 24 * HOUR
PER_DAY = 4000
CARDS = 3000
SUBJECTS = ("tx_amount", "customer_nb_tx_1h", "tx_during_night")


def day_of_predictions(
    rng: np.random.Generator, day: int
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str], list[str]]:
    times = np.sort(day * DAY + rng.random(PER_DAY) * DAY)
    columns = {
        "tx_amount": np.round(rng.lognormal(3.5, 0.6, PER_DAY), 2),
        "customer_nb_tx_1h": 1.0 + rng.poisson(0.15, PER_DAY),
        "tx_during_night": ((times % DAY) / HOUR <= 6).astype(float),
        SCORE: rng.beta(0.6, 25, PER_DAY),
    }
    cards = [f"c{c}" for c in rng.integers(0, CARDS, PER_DAY)]
    terminals = [f"t{t}" for t in rng.integers(0, 2 * CARDS, PER_DAY)]
    return times, columns, cards, terminals


def with_pattern(
    day: tuple[np.ndarray, dict[str, np.ndarray], list[str], list[str]], cards: list[str], terminals: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str], list[str]]:
    """Adds bursts of four tiny payments in the night's third hour, one burst per card given."""
    times, columns, day_cards, day_terminals = day
    n = 4 * len(cards)
    night = times[0] - times[0] % DAY + 2 * HOUR + np.arange(n) * (HOUR / n)
    added = {
        "tx_amount": np.full(n, 0.9),
        "customer_nb_tx_1h": np.tile([1.0, 2.0, 3.0, 4.0], len(cards)),
        "tx_during_night": np.ones(n),
        SCORE: np.full(n, 0.01),
    }
    order = np.argsort(np.concatenate([times, night]), kind="stable")
    merged = {k: np.concatenate([columns[k], added[k]])[order] for k in columns}
    every_card = np.asarray(day_cards + [c for c in cards for _ in range(4)])[order].tolist()
    every_terminal = np.asarray(day_terminals + [t for t in terminals for _ in range(4)])[order].tolist()
    return np.concatenate([times, night])[order], merged, every_card, every_terminal


def reference(rng: np.random.Generator, *, night: bool = False) -> Reference:
    """A week's reference; `night`: with the night's counts (each row's hour given)."""
    days = [day_of_predictions(rng, day) for day in range(7)]
    columns = {k: np.concatenate([d[1][k] for d in days]) for k in days[0][1]}
    hours = ((np.concatenate([d[0] for d in days]) % DAY) // HOUR).astype(int) if night else None
    return Reference.of(columns, joint=SUBJECTS, hours=hours)


def stationary_month(rng: np.random.Generator, monitor: DriftMonitor) -> list[object]:
    alerts: list[object] = []
    for day in range(30):
        alerts += monitor.observe_batch(*day_of_predictions(rng, day))
    return alerts


def test_many_cards_filling_an_empty_region_alert_within_a_day_once() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor("m", "1", reference(rng), DriftPolicy())
    assert stationary_month(rng, monitor) == []

    alerts = []
    for day in range(30, 32):  # within the quiet time after an alert (48 h)
        testers = [f"tester-{day}-{i}" for i in range(10)]
        alerts += monitor.observe_batch(
            *with_pattern(day_of_predictions(rng, day), testers, [f"far-{i}" for i in range(10)])
        )
    (alert,) = [a for a in alerts if a.detector == "JointRegion"]
    assert seconds_of(alert.window_end) - 30 * DAY <= DAY
    assert "tx_amount" in alert.subject or "customer_nb_tx_1h" in alert.subject
    assert int(alert.details["entities"]) >= 6
    assert float(alert.details["p_value"]) < 1e-6
    assert alert.statistic > alert.threshold
    assert " and " in alert.details["region"]


def test_one_busy_card_in_an_empty_region_is_no_new_pattern() -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor("m", "1", reference(rng), DriftPolicy())
    assert stationary_month(rng, monitor) == []

    alerts = []
    for day in range(30, 33):
        # The same rows as the pattern above, all from one card at one terminal.
        alerts += monitor.observe_batch(*with_pattern(day_of_predictions(rng, day), ["busy"] * 10, ["shop"] * 10))
    assert [a for a in alerts if a.detector == "JointRegion"] == []


def test_without_cards_and_terminals_joint_regions_are_not_watched() -> None:
    rng = np.random.default_rng(2)
    monitor = DriftMonitor("m", "1", reference(rng), DriftPolicy())
    alerts = []
    for day in range(33):
        times, columns, cards, terminals = day_of_predictions(rng, day)
        if day >= 30:
            times, columns, _, _ = with_pattern(
                (times, columns, cards, terminals), [f"x{i}" for i in range(8)], ["y"] * 8
            )
        alerts += monitor.observe_batch(times, columns)
    assert [a for a in alerts if a.detector == "JointRegion"] == []


def test_a_joint_reference_survives_json_and_a_reference_without_one_still_reads() -> None:
    original = reference(np.random.default_rng(3))
    again = Reference.from_json(original.as_json())
    assert again.joint is not None
    assert original.joint is not None
    assert again.joint.subjects == SUBJECTS
    assert again.joint.pairs == original.joint.pairs
    assert np.array_equal(again.joint_counts, original.joint_counts)  # type: ignore[arg-type]
    assert again.joint_rows == original.joint_rows == 7 * PER_DAY
    first_format = original.as_json()["subjects"]  # what the first trainers stored: subjects only
    old = Reference.from_json(first_format)
    assert old.joint is None
    assert np.array_equal(old.edges["tx_amount"], original.edges["tx_amount"])


def test_a_cell_is_described_in_the_features_units() -> None:
    grid = reference(np.random.default_rng(4)).joint
    assert grid is not None
    columns = {"tx_amount": np.asarray([0.9]), "customer_nb_tx_1h": np.asarray([4.0]), "tx_during_night": np.ones(1)}
    pair, region = grid.describe(int(grid.cells(columns)[0, 0]))
    assert pair == "tx_amount & customer_nb_tx_1h"
    assert region.startswith("tx_amount < ")
    assert "<= customer_nb_tx_1h" in region
    assert region.endswith("customer_nb_tx_1h")


def test_a_pattern_at_night_is_found_at_the_end_of_its_first_night() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor("m", "1", reference(rng, night=True), DriftPolicy())
    assert stationary_month(rng, monitor) == []

    testers = [f"tester-{i}" for i in range(6)]
    alerts = monitor.observe_batch(*with_pattern(day_of_predictions(rng, 30), testers, [f"far-{i}" for i in range(6)]))
    (alert,) = [a for a in alerts if a.detector == "NightRegion"]
    first, end = NIGHT_HOURS
    assert seconds_of(alert.window_start) == 30 * DAY + first * HOUR
    assert seconds_of(alert.window_end) == 30 * DAY + end * HOUR
    assert "tx_amount" in alert.subject or "customer_nb_tx_1h" in alert.subject
    assert int(alert.details["entities"]) == 6
    assert alert.statistic > alert.threshold


def test_one_busy_card_at_night_is_no_new_pattern() -> None:
    rng = np.random.default_rng(4)
    monitor = DriftMonitor("m", "1", reference(rng, night=True), DriftPolicy())
    assert stationary_month(rng, monitor) == []
    alerts = monitor.observe_batch(*with_pattern(day_of_predictions(rng, 30), ["busy"] * 6, ["shop"] * 6))
    assert [a for a in alerts if a.detector == "NightRegion"] == []


def test_the_night_reference_survives_json() -> None:
    made = reference(np.random.default_rng(5), night=True)
    read = Reference.from_json(made.as_json())
    assert made.night_counts is not None
    assert read.night_counts is not None
    assert read.night_rows == made.night_rows > 0
    assert read.night_hours == NIGHT_HOURS
    assert (read.night_counts == made.night_counts).all()
    assert made.joint is not None
    assert made.night_counts.sum() == made.night_rows * len(made.joint.pairs)
