"""`fraudstream evaluate drift`: the simulator's drift scenarios through the monitor's drift
detection, with the detection delay of each and the false alarms on stationary traffic.

For each scenario (and a run without drift), the simulator's world with the drift from
`drift_day`; every transaction's features by the shared definitions (the backfill); a model
trained as the trainer lays out its windows (7 training days, a 7-day label delay, then a
7-day holdout that gives the version's reference distribution); then every later transaction,
with its score, through `DriftMonitor` in event-time order, as the monitor sees predictions.
Detection delay: from the drift's start to the end of the first window that alerted after it
(simulated hours, and transactions in between). False alarms: alerts before the drift's start
in the drift runs, and every alert in the stationary run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.reference import SCORE, version_reference
from fraudstream_common.timestamps import seconds_of
from fraudstream_monitor.drift import DriftMonitor, DriftPolicy
from fraudstream_simulator.config import DriftSpec, SimulationConfig
from fraudstream_simulator.drift import DRIFT_NAMES
from fraudstream_simulator.simulation import simulate
from fraudstream_trainer.evaluation import labelled
from fraudstream_trainer.model import ModelParams, scores, train

DAY = 86400.0
STATIONARY = "stationary"


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    detected: bool
    delay_hours: float | None
    delay_transactions: int | None
    false_alarms: int
    stationary_days: float
    first_alerts: list[str]
    false_alarm_sources: dict[str, int]

    def as_json(self) -> dict[str, object]:
        return {
            "detected": self.detected,
            "delay_hours": self.delay_hours,
            "delay_transactions": self.delay_transactions,
            "false_alarms": self.false_alarms,
            "stationary_days": self.stationary_days,
            "first_alerts": self.first_alerts,
            "false_alarm_sources": self.false_alarm_sources,
        }


def evaluate_drift(
    *,
    n_customers: int = 5000,
    n_terminals: int = 10000,
    drift_day: int = 100,
    days_after: int = 10,
    policy: DriftPolicy | None = None,
    scenarios: tuple[str, ...] = (*DRIFT_NAMES, STATIONARY),
    seed: int = 0,
) -> list[ScenarioResult]:
    results = []
    for scenario in scenarios:
        drifts = () if scenario == STATIONARY else (DriftSpec(name=scenario, start_day=drift_day),)
        config = SimulationConfig(
            n_customers=n_customers, n_terminals=n_terminals, nb_days=drift_day + days_after, drifts=drifts, seed=seed
        )
        world = simulate(config)
        frame = labelled(backfill(world.transactions, world.labels), world.labels)
        start = pd.Timestamp(config.start_date)
        drift_start = start + timedelta(days=drift_day)
        # A month of stationary traffic is watched before the drift; the reference comes after the
        # world's warm-up (37 days fill the longest terminal windows).
        holdout_end = drift_start - timedelta(days=30)
        holdout_start = holdout_end - timedelta(days=7)
        train_start = holdout_start - timedelta(days=14)
        names = list(FEATURE_NAMES)
        training = frame[(frame["event_time"] >= train_start) & (frame["event_time"] < train_start + timedelta(days=7))]
        model = train(training[names].to_numpy(), training["is_fraud"].to_numpy(), ModelParams())
        holdout = frame[(frame["event_time"] >= holdout_start) & (frame["event_time"] < holdout_end)]
        reference = version_reference(
            {n: holdout[n].to_numpy(dtype=np.float64) for n in names}, scores(model, holdout[names].to_numpy())
        )
        watched = frame[frame["event_time"] >= holdout_end].sort_values("event_time", kind="stable")
        watched_scores = scores(model, watched[names].to_numpy())
        monitor = DriftMonitor("evaluation", "1", reference, policy or DriftPolicy())
        times = watched["event_time"].map(pd.Timestamp.timestamp).to_numpy()
        columns = {n: watched[n].to_numpy(dtype=np.float64) for n in names}
        columns[SCORE] = np.asarray(watched_scores, dtype=np.float64)
        alerts = monitor.observe_batch(
            np.asarray(times, dtype=np.float64),
            columns,
            watched["customer_id"].astype(str).tolist(),
            watched["terminal_id"].astype(str).tolist(),
        )
        drift_seconds = drift_start.timestamp() if drifts else float("inf")
        ends = [seconds_of(a.window_end) for a in alerts]
        false_alarms = sum(end <= drift_seconds for end in ends)
        sources = Counter(
            f"{a.subject}/{a.detector}" for end, a in zip(ends, alerts, strict=True) if end <= drift_seconds
        )
        after = sorted(
            ((end, a) for end, a in zip(ends, alerts, strict=True) if end > drift_seconds), key=lambda pair: pair[0]
        )
        stationary_days = (min(drift_seconds, times[-1]) - holdout_end.timestamp()) / DAY
        if after:
            first_end = after[0][0]
            delay_transactions = int(((times > drift_seconds) & (times <= first_end)).sum())
            results.append(
                ScenarioResult(
                    scenario,
                    True,
                    round((first_end - drift_seconds) / 3600, 1),
                    delay_transactions,
                    false_alarms,
                    round(stationary_days, 1),
                    [f"{a.subject}/{a.detector} {a.statistic:.3f}" for end, a in after if end == first_end],
                    dict(sources),
                )
            )
        else:
            results.append(
                ScenarioResult(scenario, False, None, None, false_alarms, round(stationary_days, 1), [], dict(sources))
            )
    return results


def table(results: list[ScenarioResult]) -> str:
    header = f"{'scenario':<20}{'detected':>9}{'delay (h)':>11}{'delay (tx)':>12}{'false alarms':>14}"
    lines = [f"{header}{'stationary days':>17}  first alerts"]
    for r in results:
        delay = "-" if r.delay_hours is None else f"{r.delay_hours:.1f}"
        tx = "-" if r.delay_transactions is None else str(r.delay_transactions)
        lines.append(
            f"{r.scenario:<20}{'yes' if r.detected else 'no':>9}{delay:>11}{tx:>12}{r.false_alarms:>14}"
            f"{r.stationary_days:>17.1f}  {', '.join(r.first_alerts)}"
        )
    return "\n".join(lines)
