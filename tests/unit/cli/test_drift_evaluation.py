"""`fraudstream evaluate drift --json` on a small world (2,000 customers, ~25 s): the contract's
keys per scenario, and card testing, which moves no single feature, found as a new region of a
feature pair within a simulated day. False alarms are not judged here: the detectors' defaults
are set for the default world (5,000 customers); docs/evaluation.md has its figures."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fraudstream_cli.main import app


def test_card_testing_is_found_as_a_new_region_of_a_feature_pair_within_a_day() -> None:
    result = CliRunner().invoke(
        app, ["evaluate", "drift", "--json", "--scenario", "new-fraud-pattern", "--customers", "2000"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    (scenario,) = report
    assert scenario == "new-fraud-pattern"
    outcome = report[scenario]
    assert {"detected", "delay_hours", "false_alarms", "stationary_days"} <= set(outcome)
    assert outcome["detected"] is True
    assert 0 < outcome["delay_hours"] <= 24
    assert outcome["stationary_days"] == 30.0
    assert any("/JointRegion" in alert for alert in outcome["first_alerts"])
