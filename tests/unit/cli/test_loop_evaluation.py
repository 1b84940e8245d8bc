"""`fraudstream evaluate loop --json` on a small world (1,000 customers, 21 days after the
drift): the contract's keys, and card testing hurting the champion while the loop, which
retrains on what the monitor finds, ends above the model never retrained. Whether it recovers within 14 days is
judged on the default world (docs/evaluation.md); a world this small is too noisy for the
gate's margins."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fraudstream_cli.main import app

KEYS = {"recovered", "days_to_recover", "ap_before", "ap_after", "ap_control_after", "hurts_champion", "days"}


def test_the_loop_retrains_on_card_testing_and_ends_above_the_control() -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "loop",
            "--json",
            "--served-model",
            "refit",
            "--scenario",
            "new-fraud-pattern",
            "--customers",
            "1000",
            "--terminals",
            "2000",
            "--days-after",
            "21",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["served_model"] == "refit"
    outcome = report["new-fraud-pattern"]
    assert set(outcome) >= KEYS
    assert outcome["hurts_champion"] is True
    assert outcome["detection_delay_hours"] is not None
    promoted_after_drift = [r for r in outcome["retrains"] if r["promoted"] and r["at"] > outcome["drift_start"]]
    assert promoted_after_drift, outcome["retrains"]
    assert outcome["ap_after"] > outcome["ap_control_after"]
    days = outcome["days"]
    assert {"day", "version", "loop", "control", "upper_bound"} <= set(days[0])
    assert {"average_precision", "card_precision_at_100"} == set(days[0]["loop"])
    assert days[-1]["version"] > days[0]["version"]


def test_an_unknown_scenario_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["evaluate", "loop", "--scenario", "stationary"])
    assert result.exit_code == 1
    assert "unknown scenario 'stationary'" in result.output
