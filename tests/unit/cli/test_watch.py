"""`fraudstream watch`: its line and its report from the console's overview."""

from __future__ import annotations

from typing import Any

from fraudstream_cli.watch import DAY_SECONDS, daily_quality, recovery, report, simulated_time, status_line

DAY_60 = 1_528_070_400.0  # 2018-06-04 00:00 UTC
LOOP_CLOCK = 1_796_342_400.0  # 2026-12-04 00:00 UTC: a request's time on the monitor's loop clock


def overview() -> dict[str, Any]:
    return {
        "paused": False,
        "cooling": True,
        "aliases": {"champion": "2"},
        "first_model_wait": None,
        "traffic": [{"at": 0, "per_second": 0}] + [{"at": n, "per_second": 300.0, "p99_ms": 4.0} for n in range(6)],
        "versions": [
            {"version": "1", "drift_judged_at": DAY_60, "quality": [_window(DAY_60 - 86400, 0.71)]},
            {"version": "2", "drift_judged_at": DAY_60 + 3600, "quality": []},
        ],
        "alerts": [
            {
                "window_end": DAY_60,
                "model_version": "1",
                "detector": "JointRegion",
                "subject": "customer_nb_tx_1d|terminal_risk_7d",
                "statistic": 6.2,
                "threshold": 3.0,
            }
        ],
        "requests": [
            {
                "requested_at": LOOP_CLOCK,
                "evidence_until": DAY_60,
                "reason": "drift",
                "force": False,
                "evidence": ["x|y/JointRegion"],
            },
            {"requested_at": LOOP_CLOCK, "evidence_until": None, "reason": "operator", "force": True, "evidence": []},
        ],
        "runs": [
            {"started_at": DAY_60 + 60, "request_id": "drift-abc", "outcome": "promoted", "average_precision": 0.74}
        ],
    }


def _window(start: float, average_precision: float) -> dict[str, Any]:
    return {
        "start": start,
        "end": start + 86400,
        "predictions": 9000,
        "frauds": 60,
        "average_precision": average_precision,
        "precision_at_budget": 0.5,
    }


def test_the_line_says_where_the_loop_stands() -> None:
    line = status_line(overview(), DAY_60)
    assert "simulated 2018-06-04 01:00" in line
    assert "300 predictions/s  p99 4.0 ms" in line
    assert "champion v2" in line
    assert "alerts 1 (last JointRegion on customer_nb_tx_1d|terminal_risk_7d)" in line
    assert "last run: promoted" in line
    assert line.endswith("loop cooling down")
    assert status_line(None, DAY_60).endswith("console not answering yet")


def test_the_line_names_the_services_that_stopped() -> None:
    assert status_line(overview(), DAY_60, ["features", "monitor"]).endswith("stopped: features, monitor")
    assert status_line(None, DAY_60, ["monitor"]).endswith("console not answering yet  stopped: monitor")


def test_before_a_first_model_the_line_says_what_it_waits_for() -> None:
    waiting = {**overview(), "aliases": {}, "first_model_wait": "labels until 2018-05-08"}
    assert "no model yet (labels until 2018-05-08)" in status_line(waiting, DAY_60)
    assert simulated_time({"versions": []}) is None


def test_the_report_lists_detection_request_decision_and_quality_per_version() -> None:
    text = report(overview())
    assert "2018-06-04 00:00  v1  JointRegion on customer_nb_tx_1d|terminal_risk_7d  6.2 > 3" in text
    assert "2018-06-04 00:00  drift  evidence: x|y/JointRegion" in text  # in the traffic's time
    assert "2026-12-04 00:00  operator (forced)  evidence: -" in text  # no evidence: the loop clock's
    assert "2018-06-04 00:01  drift-abc  promoted  holdout AP 0.740" in text
    assert "2018-06-03 00:00  v1  AP 0.710" in text


def test_a_window_without_a_fraud_has_no_average_precision() -> None:
    quiet = overview()
    quiet["versions"][1]["quality"] = [{**_window(DAY_60, 0.0), "frauds": 0, "predictions": 445}]
    assert "2018-06-04 00:00  v2  AP -  precision@budget 0.500  frauds 0  predictions 445" in report(quiet)


def test_a_window_judged_again_is_reported_once_with_its_latest_figures() -> None:
    twice = overview()
    twice["versions"][0]["quality"] = [_window(DAY_60, 0.7), _window(DAY_60, 0.6)]
    text = report(twice)
    assert text.count("2018-06-04 00:00  v1  AP") == 1
    assert "2018-06-04 00:00  v1  AP 0.600" in text


def _drifted(after: list[tuple[str, float]]) -> dict[str, Any]:
    """Seven days of version 1 at AP 0.8 before a drift at DAY_60, then `after` day by day; a
    false alarm the day before the drift and an alert 10 hours into it."""
    versions: dict[str, list[dict[str, Any]]] = {"1": [_window(DAY_60 - (7 - d) * DAY_SECONDS, 0.8) for d in range(7)]}
    for d, (version, ap) in enumerate(after):
        versions.setdefault(version, []).append(_window(DAY_60 + d * DAY_SECONDS, ap))
    alerts = [
        {**overview()["alerts"][0], "window_end": DAY_60 - 3600},
        {**overview()["alerts"][0], "window_end": DAY_60 + 10 * 3600},
    ]
    return {
        **overview(),
        "versions": [{"version": v, "quality": windows} for v, windows in versions.items()],
        "alerts": alerts,
    }


def test_the_report_judges_recovery_from_the_drift_start() -> None:
    drifted = _drifted([("1", 0.5)] * 5 + [("2", 0.75)] * 9)
    found = recovery(drifted, DAY_60)
    assert found.before == 0.8
    assert (found.detection_hours, found.alerts_before) == (10.0, 1)
    assert (found.serving_at_drift, found.versions_after) == ("1", ("2",))
    # A span holding a day at 0.5 is below 0.72 (90% of 0.8): from day 5 none does.
    assert found.recovered_day == 5
    text = report(drifted, DAY_60)
    assert "drift from 2018-06-04 00:00: first alert on a window ending 10 simulated hours after it" in text
    assert "quality back within 10% of its level before from day 5 after the drift" in text
    assert "; 1 alert before it (false alarms)" in text


def test_a_loop_that_never_recovers_is_reported_as_such() -> None:
    found = recovery(_drifted([("1", 0.5)] * 10), DAY_60)
    assert found.recovered_day is None
    assert found.versions_after == ()
    assert "quality NOT back within 10%" in report(_drifted([("1", 0.5)] * 10), DAY_60)
    assert "drift from" not in report(_drifted([("1", 0.5)] * 10))


def test_a_window_split_by_a_swap_counts_for_the_version_that_scored_most_of_it() -> None:
    split = overview()
    split["versions"][0]["quality"] = [{**_window(DAY_60, 0.4), "predictions": 100}]
    split["versions"][1]["quality"] = [_window(DAY_60, 0.9)]
    assert daily_quality(split) == [(DAY_60, "2", 0.9)]
