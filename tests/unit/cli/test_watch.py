"""`fraudstream watch`: its line and its report from the console's overview."""

from __future__ import annotations

from typing import Any

from fraudstream_cli.watch import report, simulated_time, status_line

DAY_60 = 1_528_070_400.0  # 2018-06-04 00:00 UTC


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
            {"requested_at": DAY_60, "reason": "drift", "force": False, "evidence": ["x|y/JointRegion"]},
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


def test_before_a_first_model_the_line_says_what_it_waits_for() -> None:
    waiting = {**overview(), "aliases": {}, "first_model_wait": "labels until 2018-05-08"}
    assert "no model yet (labels until 2018-05-08)" in status_line(waiting, DAY_60)
    assert simulated_time({"versions": []}) is None


def test_the_report_lists_detection_request_decision_and_quality_per_version() -> None:
    text = report(overview())
    assert "2018-06-04 00:00  v1  JointRegion on customer_nb_tx_1d|terminal_risk_7d  6.2 > 3" in text
    assert "2018-06-04 00:00  drift  evidence: x|y/JointRegion" in text
    assert "2018-06-04 00:01  drift-abc  promoted  holdout AP 0.740" in text
    assert "2018-06-03 00:00  v1  AP 0.710" in text


def test_a_window_judged_again_is_reported_once_with_its_latest_figures() -> None:
    twice = overview()
    twice["versions"][0]["quality"] = [_window(DAY_60, 0.7), _window(DAY_60, 0.6)]
    text = report(twice)
    assert text.count("2018-06-04 00:00  v1  AP") == 1
    assert "2018-06-04 00:00  v1  AP 0.600" in text
