"""`fraudstream evaluate drift`: an alert detects a scenario only when it names a subject the
scenario moves (synthetic hours); on a small world (2,000 customers, about a minute) the
contract's keys, and card testing, which moves no single feature, found as a new region of a
feature pair within a simulated day; the detectors' defaults are the choice recorded from the
tuning seeds, and the report in docs/results is on the held-out ones. False alarms are not
judged here: the defaults are chosen on the default world (5,000 customers, minutes per seed);
docs/evaluation.md has their figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from fraudstream_cli.drift_evaluation import HELD_OUT_SEEDS, HOUR, TUNING_GRID, TUNING_SEEDS, Watched, judge, policy_of
from fraudstream_cli.main import app
from fraudstream_common.reference import SCORE, Reference
from fraudstream_drift.drift import DriftPolicy, HourCounter, HourCounts

PER_HOUR = 200
RESULTS = Path(__file__).parents[3] / "docs" / "results"


def hours(
    rng: np.random.Generator, reference: Reference, first: int, count: int, amount_factor: float = 1.0
) -> list[HourCounts]:
    counter = HourCounter(reference, None)
    counted = []
    for hour in range(first, first + count):
        counter.count(hour * HOUR, columns(rng, amount_factor), None)
        closed = counter.close()
        assert closed is not None
        counted.append(closed)
    return counted


def columns(rng: np.random.Generator, amount_factor: float = 1.0) -> dict[str, np.ndarray]:
    return {"tx_amount": rng.lognormal(3.5, 0.8, PER_HOUR) * amount_factor, SCORE: rng.beta(0.6, 25, PER_HOUR)}


def reference_of(rng: np.random.Generator) -> Reference:
    parts = [columns(rng) for _ in range(50)]
    return Reference.of({n: np.concatenate([p[n] for p in parts]) for n in ("tx_amount", SCORE)})


def test_an_alert_detects_only_the_scenario_whose_subjects_it_names() -> None:
    rng = np.random.default_rng(1)
    reference = reference_of(rng)
    stationary = hours(rng, reference, 0, 24 * 30)
    drift_start = 24 * 20 * HOUR
    doubled = hours(rng, reference, 24 * 20, 48, amount_factor=2.0)
    watched = Watched(
        seed=0,
        drift_start=drift_start,
        reference=reference,
        stationary=stationary,
        drifted={"amount-shift": doubled, "new-terminals": doubled},
    )
    result = judge(watched, DriftPolicy(regions=None))
    assert result.false_alarms == 0
    assert result.stationary_days == 30.0
    shift, terminals = result.detections
    assert shift.detected
    assert shift.delay_hours is not None
    assert 0 < shift.delay_hours <= 24
    assert shift.first_alerts[0].startswith("tx_amount/")
    assert not terminals.detected
    assert terminals.unrelated_alerts.get("tx_amount/PSI") == 1


def test_card_testing_is_found_as_a_new_region_of_a_feature_pair_within_a_day() -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "drift",
            "--json",
            "--seeds",
            "0",
            "--scenario",
            "new-fraud-pattern",
            "--customers",
            "2000",
            "--stationary-days",
            "30",
            "--jobs",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert set(report) == {"world", "seeds", "aggregate"}
    outcome = report["seeds"]["0"]
    assert {"false_alarms", "alarm_hours", "stationary_days", "detections"} <= set(outcome)
    assert outcome["stationary_days"] == 30.0
    (detection,) = outcome["detections"]
    assert detection["scenario"] == "new-fraud-pattern"
    assert detection["detected"] is True
    assert 0 < detection["delay_hours"] <= 24
    assert any(
        alert.rsplit(" ", 1)[0].endswith(("/JointRegion", "/NightRegion")) for alert in detection["first_alerts"]
    )
    assert report["aggregate"]["detected_in_time"] == {"new-fraud-pattern": 1}


def test_the_defaults_are_the_choice_made_on_the_tuning_seeds_only() -> None:
    tuning = json.loads((RESULTS / "drift-tuning.json").read_text())
    assert tuning["seeds"] == list(TUNING_SEEDS)
    assert tuning["grid"] == json.loads(json.dumps(TUNING_GRID))
    assert policy_of(tuning["chosen"]) == DriftPolicy()
    assert not set(TUNING_SEEDS) & set(HELD_OUT_SEEDS)
    report = json.loads((RESULTS / "evaluate-drift.json").read_text())
    assert report["aggregate"]["seeds"] == list(HELD_OUT_SEEDS)
    assert report["world"]["stationary_days"] >= 180
