"""`fraudstream evaluate gate`: on a small world (500 customers, seconds) the contract's keys,
the cutoffs a drifted world counts, the margins given, and a challenger that lost its fraud
reports judged against a sound champion; the report in
docs/results was made with the gate's own policy on tuning worlds only, and its card precision
margin covers the spread it measured."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fraudstream_cli.drift_evaluation import HELD_OUT_SEEDS
from fraudstream_cli.gate_evaluation import TUNING_WORLDS, GateWorld, Pair, summaries
from fraudstream_cli.main import app
from fraudstream_modelling.gate import GatePolicy
from fraudstream_simulator.config import DriftSpec

RESULTS = Path(__file__).parents[3] / "docs" / "results"
SMALL = ["--customers", "500", "--terminals", "1000", "--days", "42", "--first-day", "33", "--every", "3"]


def evaluate(*options: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["evaluate", "gate", "--json", *SMALL, *options])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output[result.output.index("{") :])
    return report


def test_each_cutoff_judges_the_later_model_against_each_earlier_one_with_the_margins_given() -> None:
    report = evaluate(
        *("--world", "0", "--world", "3:amount-shift:29", "--gap", "1", "--gap", "2", "--jobs", "2"),
        *("--ap-margin", "1", "--card-precision-margin", "1"),
    )
    pairs = report["pairs"]
    stationary = [(p["cutoff_day"], p["gap_days"]) for p in pairs if p["world"] == "0"]
    assert stationary == [(33, 1), (33, 2), (36, 1), (36, 2), (39, 1), (39, 2)]
    # The holdout ends a delay (7 days) before the cutoff: only day 39's holds a day of the drift.
    assert [(p["cutoff_day"], p["gap_days"]) for p in pairs if p["world"] == "3:amount-shift:29"] == [(39, 1), (39, 2)]
    assert all(pair["frauds"] > 0 for pair in pairs)
    assert (report["gate"]["ap_margin"], report["gate"]["card_precision_margin"]) == (1, 1)
    for group, count in (("stationary", 6), ("drifted", 2)):
        summary = report["summary"][group]
        assert summary["pairs"] == count
        assert summary["refused"] == 0
        judged = [p for p in pairs if (p["world"] == "0") == (group == "stationary")]
        refused_at_zero = [max(p["shortfall_bounds"].values()) > 0 for p in judged]
        assert summary["refused_without_margins"] == sum(refused_at_zero) / count


def test_a_challenger_whose_fraud_reports_were_lost_is_judged_against_a_sound_champion() -> None:
    report = evaluate("--world", "0", "--gap", "1", "--frauds-lost", "0.99")
    assert report["layout"]["frauds_lost"] == 0.99
    for pair in report["pairs"]:
        assert pair["challenger"]["average_precision"] < pair["champion"]["average_precision"] - 0.2, pair
    assert report["summary"]["stationary"]["refused"] == 1


def test_a_world_is_a_seed_or_a_seed_with_a_drift() -> None:
    assert GateWorld.parse("7") == GateWorld(7)
    assert GateWorld.parse("2:amount-shift:60") == GateWorld(2, DriftSpec("amount-shift", 60))
    for wrong in ("seven", "2:card-testing:60", "2:amount-shift", "2:amount-shift:x"):
        result = CliRunner().invoke(app, ["evaluate", "gate", "--world", wrong])
        assert result.exit_code == 1
        assert f"world {wrong!r}" in result.output
    result = CliRunner().invoke(app, ["evaluate", "gate", "--first-day", "30", "--world", "0"])
    assert result.exit_code == 1
    assert "28 days" in result.output
    result = CliRunner().invoke(app, ["evaluate", "gate", *SMALL, "--world", "0:amount-shift:40"])
    assert result.exit_code == 1
    assert "no cutoff's holdout holds a day of its drift" in result.output
    result = CliRunner().invoke(app, ["evaluate", "gate", "--frauds-lost", "1", "--world", "0"])
    assert result.exit_code == 1
    assert "below 1" in result.output


def test_the_report_is_of_the_gates_policy_on_tuning_worlds_and_its_margin_covers_the_spread() -> None:
    report = json.loads((RESULTS / "evaluate-gate.json").read_text())
    assert report["gate"] == asdict(GatePolicy())
    assert report["worlds"] == [str(world) for world in TUNING_WORLDS]
    assert not {GateWorld.parse(world).seed for world in report["worlds"]} & set(HELD_OUT_SEEDS)
    for group in ("stationary", "drifted"):
        spread = report["summary"][group]["bound_quantiles"]["card_precision_at_100"]["0.99"]
        assert spread <= GatePolicy().card_precision_margin, group


def test_the_reports_summaries_are_of_their_own_pairs() -> None:
    for name in ("evaluate-gate.json", "evaluate-gate-frauds-lost.json"):
        report = json.loads((RESULTS / name).read_text())
        pairs = [Pair(**pair) for pair in report["pairs"]]
        assert summaries(pairs, GatePolicy(**report["gate"])) == report["summary"], name


def test_a_reports_pairs_are_judged_again_under_other_margins_without_simulating(tmp_path: Path) -> None:
    stored = json.loads((RESULTS / "evaluate-gate.json").read_text())

    def rejudged(*margins: str) -> dict[str, Any]:
        options = ["--pairs-from", str(RESULTS / "evaluate-gate.json"), *margins]
        result = CliRunner().invoke(app, ["evaluate", "gate", "--json", *options])
        assert result.exit_code == 0, result.output
        report: dict[str, Any] = json.loads(result.output)
        return report

    assert rejudged() == stored
    at_zero = rejudged("--ap-margin", "0", "--card-precision-margin", "0")
    assert (at_zero["gate"]["ap_margin"], at_zero["gate"]["card_precision_margin"]) == (0, 0)
    assert at_zero["pairs"] == stored["pairs"]
    for group, summary in at_zero["summary"].items():
        assert summary["refused"] == stored["summary"][group]["refused_without_margins"] > 0
    lenient = rejudged("--ap-margin", "1")
    assert lenient["gate"]["card_precision_margin"] == stored["gate"]["card_precision_margin"]
    for group, summary in lenient["summary"].items():
        assert summary["refused"] == stored["summary"][group]["refused_by_metric"]["card_precision_at_100"], group

    (tmp_path / "other.json").write_text('{"pairs": []}')
    result = CliRunner().invoke(app, ["evaluate", "gate", "--pairs-from", str(tmp_path / "other.json")])
    assert result.exit_code == 1
    assert "not a report of `fraudstream evaluate gate --json`" in result.output
