"""`fraudstream evaluate loop`: the closed loop replayed offline in event time, on a simulated
world with a drift scenario, beside a model never retrained and one retrained every day.

For each scenario: the simulator's world with the drift from `drift_day`; every transaction's
features by the shared definitions (the backfill); a first version trained `watch_days` before
the drift, as the trainer lays out its windows. Then, an hour of event time at a time:

- the serving version scores the hour's transactions;
- the monitor's `DriftMonitor` judges them against that version's reference;
- its alerts go through the monitor's `Retrainer` (debounce, cooldown) and become requests;
- a request is answered as the trainer answers it (its cooldown, its windows ending at the
  latest label known by then, labels only once known, and its own `choose`: data checks, gate,
  refit), and a promoted version serves from the next hour on, with a monitor of its own.

The control keeps the first version; the upper bound is retrained every day at midnight with
the same recipe and promoted with no gate (whenever its data checks pass). Quality is measured
per day on each day's transactions with their final labels (average precision and card
precision@100, the handbook's metrics).

Recovery: `ap_before` is the loop's average precision over the `watch_days` before the drift.
The drift hurts the champion when the control's over the 14 days after its start is more than
`tolerance` below its own before. The loop recovered on day k (counted from the drift's start)
when its average precision over days k to k+6 is back within `tolerance` of `ap_before`; a
scenario that does not hurt the champion recovers on day 0.

Not replayed: the monitor's quality alerts from matured labels (only its drift detectors ask
for a retrain here), canary and shadow rollouts, and training time (a promoted version serves
from the next hour).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.reference import SCORE, Reference, version_reference
from fraudstream_common.timestamps import seconds_of
from fraudstream_drift.drift import DriftMonitor, DriftPolicy
from fraudstream_drift.retrain import Retrainer, RetrainPolicy
from fraudstream_modelling.checks import DataBounds, DataCheckError
from fraudstream_modelling.choice import ServedModel, choose
from fraudstream_modelling.gate import GatePolicy
from fraudstream_modelling.model import ModelParams, scores, selected_params, train
from fraudstream_modelling.performance import performance
from fraudstream_modelling.windows import Windows
from fraudstream_simulator.config import DRIFT_NAMES, DriftSpec, SimulationConfig
from fraudstream_simulator.simulation import simulate

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
NAMES = list(FEATURE_NAMES)


@dataclass(frozen=True)
class LoopPolicy:
    """What the replay runs with: the services' own defaults unless a caller changes them."""

    served_model: ServedModel = ServedModel.REFIT
    train_days: int = 7
    delay_days: int = 7
    holdout_days: int = 7
    trainer_cooldown_seconds: float = 3600.0
    gate: GatePolicy = field(default_factory=GatePolicy)
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    data_bounds: DataBounds = field(default_factory=DataBounds)
    params: ModelParams = field(default_factory=selected_params)

    def windows(self, cutoff: pd.Timestamp) -> Windows:
        """The trainer's windows for a run whose latest known label is at `cutoff`."""
        return Windows.ending_at(
            cutoff, train_days=self.train_days, delay_days=self.delay_days, holdout_days=self.holdout_days
        )

    def fit(self, rows: pd.DataFrame) -> xgb.XGBClassifier:
        return train(rows[NAMES].to_numpy(), rows["is_fraud"].to_numpy(), self.params)


@dataclass(frozen=True)
class Version:
    number: int
    model: xgb.XGBClassifier
    reference: Reference
    # The model the gate judged (the served one, unless refit): a later gate judges a challenger
    # against this one, both trained the same time before the holdout as they serve.
    judged: xgb.XGBClassifier


@dataclass(frozen=True)
class Retrain:
    """One request the trainer acted on, and what the gate said."""

    at: pd.Timestamp
    cutoff: pd.Timestamp
    promoted: bool
    version: int | None
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "promoted": self.promoted,
            "version": self.version,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class DayQuality:
    day: str
    version: int
    loop: dict[str, float]
    control: dict[str, float]
    upper_bound: dict[str, float]


@dataclass(frozen=True)
class LoopResult:
    scenario: str
    drift_start: pd.Timestamp
    hurts_champion: bool
    recovered: bool
    days_to_recover: int | None
    ap_before: float
    ap_after: float
    ap_control_after: float
    ap_upper_bound_after: float
    control_before: float
    control_first_14_days: float
    detection_delay_hours: float | None
    false_alarms: int
    false_alarm_sources: dict[str, int]
    retrains: list[Retrain]
    days: list[DayQuality]

    def as_json(self) -> dict[str, object]:
        return {
            "drift_start": self.drift_start.isoformat(),
            "hurts_champion": self.hurts_champion,
            "recovered": self.recovered,
            "days_to_recover": self.days_to_recover,
            "ap_before": self.ap_before,
            "ap_after": self.ap_after,
            "ap_control_after": self.ap_control_after,
            "ap_upper_bound_after": self.ap_upper_bound_after,
            "control_before": self.control_before,
            "control_first_14_days": self.control_first_14_days,
            "detection_delay_hours": self.detection_delay_hours,
            "false_alarms": self.false_alarms,
            "false_alarm_sources": self.false_alarm_sources,
            "retrains": [r.as_json() for r in self.retrains],
            "days": [
                {
                    "day": d.day,
                    "version": d.version,
                    "loop": d.loop,
                    "control": d.control,
                    "upper_bound": d.upper_bound,
                }
                for d in self.days
            ],
        }


class History:
    """A world's transactions with features and labels, and what was known when."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
        self.times = self.frame["event_time"].to_numpy(dtype="datetime64[ns]")
        self.label_times = self.frame["label_time"].to_numpy(dtype="datetime64[ns]")

    def between(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        first, last = np.searchsorted(self.times, [_naive(start), _naive(end)])
        return self.frame.iloc[first:last]

    def labelled(self, start: pd.Timestamp, end: pd.Timestamp, known_at: pd.Timestamp) -> pd.DataFrame:
        """The transactions of [start, end) whose label was known at `known_at` (the trainer's
        training set)."""
        rows = self.between(start, end)
        return rows[rows["label_time"] <= known_at]

    def latest_label(self, now: pd.Timestamp) -> pd.Timestamp:
        known = self.label_times[self.label_times <= _naive(now)]
        return pd.Timestamp(known.max(), tz="UTC")


class _Trainer:
    """The trainer's run, on the history instead of Feast and MLflow."""

    def __init__(self, history: History, policy: LoopPolicy) -> None:
        self._history = history
        self._policy = policy
        self._last_run: pd.Timestamp | None = None
        self.versions = 0

    def request(self, now: pd.Timestamp, champion: Version | None) -> tuple[Retrain | None, Version | None]:
        """A retrain request at `now`: None when the trainer's cooldown skips it."""
        if (
            self._last_run is not None
            and (now - self._last_run).total_seconds() < self._policy.trainer_cooldown_seconds
        ):
            return None, None
        self._last_run = now
        cutoff = self._history.latest_label(now)
        promoted, reasons, version = self.run(cutoff, champion)
        return Retrain(now, cutoff, promoted, version.number if version else None, reasons), version

    def run(self, cutoff: pd.Timestamp, champion: Version | None) -> tuple[bool, tuple[str, ...], Version | None]:
        """The trainer's decision at `cutoff` (its reasons), and the version it promotes."""
        windows = self._policy.windows(cutoff)
        history = self._history
        holdout = history.labelled(windows.holdout_start, windows.holdout_end, cutoff)
        try:
            choice = choose(
                windows,
                history.labelled(windows.train_start, windows.train_end, windows.holdout_start),
                holdout,
                fit=lambda rows, _purpose: self._policy.fit(rows),
                score=lambda model, rows: scores(model, rows[NAMES].to_numpy()),
                champion_scores=lambda rows: (
                    None if champion is None else scores(champion.judged, rows[NAMES].to_numpy())
                ),
                gate=self._policy.gate,
                bounds=self._policy.data_bounds,
                served_model=self._policy.served_model,
            )
        except DataCheckError as error:
            return False, tuple(f"data check: {failure}" for failure in error.failures), None
        decision = choice.judgement.decision
        if not decision.promote:
            return False, decision.reasons, None
        self.versions += 1
        columns = {name: holdout[name].to_numpy(dtype=np.float64) for name in NAMES}
        hours = holdout["event_time"].dt.tz_convert("UTC").dt.hour.to_numpy()
        reference = version_reference(columns, choice.reference_scores, hours=hours)
        return True, decision.reasons, Version(self.versions, choice.served, reference, choice.judged)


def evaluate_loop(
    *,
    n_customers: int = 5000,
    n_terminals: int = 10000,
    drift_day: int = 70,
    days_after: int = 28,
    watch_days: int = 14,
    tolerance: float = 0.1,
    scenarios: tuple[str, ...] = DRIFT_NAMES,
    seed: int = 0,
    policy: LoopPolicy | None = None,
) -> list[LoopResult]:
    chosen = policy or LoopPolicy()
    results = []
    for scenario in scenarios:
        config = SimulationConfig(
            n_customers=n_customers,
            n_terminals=n_terminals,
            nb_days=drift_day + days_after,
            drifts=(DriftSpec(name=scenario, start_day=drift_day),),
            seed=seed,
        )
        drift_start = pd.Timestamp(config.drifts[0].starts_at(config.start_date)).tz_convert("UTC")
        results.append(
            _replay(
                scenario, history_of(config), drift_start, drift_start + days_after * DAY, watch_days, tolerance, chosen
            )
        )
    return results


def history_of(config: SimulationConfig) -> History:
    """The simulated world's transactions with their features (the backfill), final labels and
    the time each label became known."""
    world = simulate(config)
    truth = world.labels.sort_values("label_time", kind="stable").drop_duplicates("transaction_id", keep="last")
    frame = backfill(world.transactions, world.labels).merge(
        truth[["transaction_id", "is_fraud", "label_time"]], on="transaction_id", how="left"
    )
    frame["is_fraud"] = frame["is_fraud"].fillna(False).astype(bool)
    return History(frame)


def _replay(
    scenario: str,
    history: History,
    drift_start: pd.Timestamp,
    end: pd.Timestamp,
    watch_days: int,
    tolerance: float,
    policy: LoopPolicy,
) -> LoopResult:
    start = drift_start - watch_days * DAY
    trainer = _Trainer(history, policy)
    _, reasons, first = trainer.run(history.latest_label(start), None)
    if first is None:
        raise ValueError(
            f"{scenario}: no first model at {start.isoformat()} ({'; '.join(reasons)}); start the drift later"
        )
    serving, monitor = first, _monitor(first, policy)
    retrainer = Retrainer("evaluation", policy.retrain)
    upper_trainer = _Trainer(history, policy)
    loop_scores, control_scores, upper_scores, versions = [], [], [], []
    retrains: list[Retrain] = []
    alert_ends: list[tuple[float, str]] = []
    # The upper bound: the same recipe at every midnight, with no champion to beat (so no gate).
    day_start, upper = start, first
    hour = start
    while hour < end:
        if hour >= day_start + DAY:
            day_start += DAY
            upper = upper_trainer.run(history.latest_label(day_start), None)[2] or upper
        rows = history.between(hour, hour + HOUR)
        hour += HOUR
        if rows.empty:
            continue
        features = rows[NAMES].to_numpy()
        served = scores(serving.model, features)
        loop_scores.append(served)
        control_scores.append(scores(first.model, features))
        upper_scores.append(scores(upper.model, features))
        versions.append(np.full(len(rows), serving.number))
        columns = {name: rows[name].to_numpy(dtype=np.float64) for name in NAMES}
        columns[SCORE] = served
        alerts = monitor.observe_batch(
            rows["event_time"].map(pd.Timestamp.timestamp).to_numpy(dtype=np.float64),
            columns,
            rows["customer_id"].astype(str).tolist(),
            rows["terminal_id"].astype(str).tolist(),
        )
        now = hour.timestamp()
        for alert in alerts:
            alert_ends.append((seconds_of(alert.window_end), f"{alert.subject}/{alert.detector}"))
            retrainer.alert(alert, now)
        if retrainer.due(now) is None:
            continue
        retrain, promoted = trainer.request(hour, serving)
        if retrain is not None:
            retrains.append(retrain)
        if promoted is not None:
            serving, monitor = promoted, _monitor(promoted, policy)

    watched = history.between(start, end).copy()
    watched["loop"] = np.concatenate(loop_scores)
    watched["control"] = np.concatenate(control_scores)
    watched["upper_bound"] = np.concatenate(upper_scores)
    watched["version"] = np.concatenate(versions)
    return _judged(scenario, watched, drift_start, start, end, tolerance, retrains, alert_ends)


def _judged(
    scenario: str,
    watched: pd.DataFrame,
    drift_start: pd.Timestamp,
    start: pd.Timestamp,
    end: pd.Timestamp,
    tolerance: float,
    retrains: list[Retrain],
    alert_ends: list[tuple[float, str]],
) -> LoopResult:
    def ap(column: str, first: pd.Timestamp, last: pd.Timestamp) -> float:
        rows = watched[(watched["event_time"] >= first) & (watched["event_time"] < last)]
        return performance(rows, rows[column].to_numpy())["average_precision"]

    before = ap("loop", start, drift_start)
    control_before = ap("control", start, drift_start)
    control_14 = ap("control", drift_start, min(end, drift_start + 14 * DAY))
    hurts = control_14 < (1 - tolerance) * control_before
    days_after = int((end - drift_start) / DAY)
    days_to_recover = None
    for k in range(days_after - 6):
        if not hurts or ap("loop", drift_start + k * DAY, drift_start + (k + 7) * DAY) >= (1 - tolerance) * before:
            days_to_recover = k
            break
    last_week = end - 7 * DAY
    drift_seconds = drift_start.timestamp()
    after = [end for end, _ in alert_ends if end > drift_seconds]
    days = []
    day = start
    while day < end:
        rows = watched[(watched["event_time"] >= day) & (watched["event_time"] < day + DAY)]
        if rows["is_fraud"].any():
            days.append(
                DayQuality(
                    day.date().isoformat(),
                    int(rows["version"].iloc[-1]),
                    *(_figures(performance(rows, rows[c].to_numpy())) for c in ("loop", "control", "upper_bound")),
                )
            )
        day += DAY
    return LoopResult(
        scenario=scenario,
        drift_start=drift_start,
        hurts_champion=hurts,
        recovered=days_to_recover is not None and days_to_recover <= 14,
        days_to_recover=days_to_recover,
        ap_before=before,
        ap_after=ap("loop", last_week, end),
        ap_control_after=ap("control", last_week, end),
        ap_upper_bound_after=ap("upper_bound", last_week, end),
        control_before=control_before,
        control_first_14_days=control_14,
        detection_delay_hours=round((min(after) - drift_seconds) / 3600, 1) if after else None,
        false_alarms=sum(end <= drift_seconds for end, _ in alert_ends),
        false_alarm_sources=dict(Counter(source for end, source in alert_ends if end <= drift_seconds)),
        retrains=retrains,
        days=days,
    )


def _figures(result: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in result.items() if k != "auc_roc"}


def _monitor(version: Version, policy: LoopPolicy) -> DriftMonitor:
    return DriftMonitor("evaluation", str(version.number), version.reference, policy.drift)


def _naive(timestamp: pd.Timestamp) -> np.datetime64:
    return np.datetime64(timestamp.tz_convert("UTC").tz_localize(None), "ns")


def table(results: list[LoopResult]) -> str:
    lines = [
        f"{'scenario':<20}{'hurts':>6}{'recovered':>10}{'days':>6}{'AP before':>10}{'AP after':>9}"
        f"{'control':>9}{'daily':>7}{'detected (h)':>13}{'retrains':>9}{'promoted':>9}"
    ]
    for r in results:
        days = "-" if r.days_to_recover is None else str(r.days_to_recover)
        detected = "-" if r.detection_delay_hours is None else f"{r.detection_delay_hours:.1f}"
        lines.append(
            f"{r.scenario:<20}{'yes' if r.hurts_champion else 'no':>6}{'yes' if r.recovered else 'no':>10}{days:>6}"
            f"{r.ap_before:>10.3f}{r.ap_after:>9.3f}{r.ap_control_after:>9.3f}{r.ap_upper_bound_after:>7.3f}"
            f"{detected:>13}{len(r.retrains):>9}{sum(x.promoted for x in r.retrains):>9}"
        )
    return "\n".join(lines)
