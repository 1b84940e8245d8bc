"""`fraudstream evaluate drift`: the simulator's drift scenarios through the monitor's drift
detection, over worlds of several seeds: the detection delay of each scenario and the false
alarms on stationary traffic.

Per seed, one stationary world: every transaction's features by the shared definitions (the
backfill); a model trained as the trainer lays out its windows (7 training days, a 7-day label
delay, then a 7-day holdout that gives the version's reference distribution), after the
world's 37-day warm-up; then `stationary_days` of its predictions, in event time, through
`DriftMonitor`, an hour at a time. Every alert there is a false alarm; the hours in alarm are
the hours in which any detector's condition held (its alert sent or held back as quiet).

Per drift scenario, the same seed's world with the drift from `drift_day`: it equals the
stationary world before that day (the simulator's draws are per day and per customer), so the
monitor judges the stationary world's hours up to the drift, then the drifted world's. An
alert detects the drift only when it names a subject the scenario moves (`MOVED_SUBJECTS`;
a feature pair when either feature is moved): an alert about something else after the start
is counted apart, neither detection nor false alarm. Delay: from the drift's start to the end
of the first window that detected it (simulated hours, and transactions in between).

Thresholds are chosen on the `TUNING_SEEDS` worlds only (`tune`) and reported on the
`HELD_OUT_SEEDS` worlds, which no choice has looked at.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta

import numpy as np
import pandas as pd
import xgboost as xgb

from fraudstream_cli.backfill import backfill
from fraudstream_cli.processes import map_in_processes
from fraudstream_common.features.definitions import CUSTOMER_HORIZON, DAY, FEATURE_NAMES, TERMINAL_HORIZON
from fraudstream_common.reference import SCORE, Reference, version_reference
from fraudstream_drift.drift import DriftMonitor, DriftPolicy, HourCounter, HourCounts, OpenHours
from fraudstream_drift.regions import RegionPolicy
from fraudstream_modelling.evaluation import labelled
from fraudstream_modelling.model import ModelParams, scores, train
from fraudstream_simulator.config import DRIFT_NAMES, DriftSpec, SimulationConfig
from fraudstream_simulator.simulation import simulate

HOUR = 3600.0
# Worlds the thresholds may be chosen on (0 is the handbook's world), and worlds kept for the
# report: no threshold was chosen while looking at them.
TUNING_SEEDS = (0, 1, 2, 7)
HELD_OUT_SEEDS = (11, 12, 13, 14)
AIM_DELAY_HOURS = 24.0
AIM_FALSE_ALARMS_PER_30_DAYS = 1.0

_AMOUNTS = ("tx_amount", "customer_avg_amount_1d", "customer_avg_amount_7d", "customer_avg_amount_30d")
_TERMINALS = (
    "terminal_nb_tx_1d",
    "terminal_nb_tx_7d",
    "terminal_nb_tx_30d",
    "terminal_risk_1d",
    "terminal_risk_7d",
    "terminal_risk_30d",
    "terminal_reported_frauds_7d",
    "terminal_risk_last_1tx",
    "terminal_risk_last_3tx",
)
# What each scenario changes (fraudstream_simulator.drift's ground truth, in the monitor's
# subjects). Card testing: small night payments in bursts on a terminal new to the card, so
# the amount and customer-window features; it is not expected to move the score (the model
# never saw such frauds). An amount shift moves every amount feature, and the score follows.
# New terminals: terminals without history, and more distinct terminals per card.
MOVED_SUBJECTS: dict[str, frozenset[str]] = {
    "new-fraud-pattern": frozenset(
        (
            *_AMOUNTS,
            "amount_to_customer_avg_30d",
            "amount_to_customer_median_30d",
            "customer_max_amount_7d_to_median_30d",
            "tx_during_night",
            "customer_nb_tx_1h",
            "customer_nb_tx_1d",
            "customer_nb_terminals_24h",
            "customer_seconds_since_last",
            "terminal_reported_frauds_7d",
        )
    ),
    "amount-shift": frozenset(
        (
            *_AMOUNTS,
            "amount_to_customer_avg_30d",
            "amount_to_customer_median_30d",
            "customer_max_amount_7d_to_median_30d",
            SCORE,
        )
    ),
    "new-terminals": frozenset((*_TERMINALS, "customer_nb_terminals_24h")),
}


@dataclass(frozen=True)
class World:
    n_customers: int = 5000
    n_terminals: int = 10000
    drift_day: int = 100
    days_after: int = 3
    stationary_days: int = 180
    scenarios: tuple[str, ...] = DRIFT_NAMES

    @property
    def watch_day(self) -> int:
        """The first watched day: a month before the drift."""
        return self.drift_day - 30


@dataclass(frozen=True)
class Watched:
    """One seed's predictions as the monitor counts them, an hour at a time: the stationary
    world's from the watched day, and each drifted world's from its drift's start."""

    seed: int
    drift_start: float
    reference: Reference
    stationary: list[HourCounts]
    drifted: dict[str, list[HourCounts]]


def watch(seed: int, world: World) -> Watched:
    """Simulates the seed's worlds and counts their predictions (the expensive part: minutes
    per seed for the default world). Joint regions are counted as RegionPolicy's defaults
    watch cells (`rare_share`); their judging thresholds can change without counting again."""
    regions = RegionPolicy()
    config = SimulationConfig(
        n_customers=world.n_customers,
        n_terminals=world.n_terminals,
        nb_days=max(world.drift_day, world.watch_day + world.stationary_days),
        seed=seed,
    )
    stationary = simulate(config)
    frame = labelled(backfill(stationary.transactions, stationary.labels), stationary.labels)
    start = pd.Timestamp(config.start_date)
    watch_start = start + timedelta(days=world.watch_day)
    holdout_start = watch_start - timedelta(days=7)
    train_start = holdout_start - timedelta(days=14)
    names = list(FEATURE_NAMES)
    training = between(frame, train_start, train_start + timedelta(days=7))
    model = train(training[names].to_numpy(), training["is_fraud"].to_numpy(), ModelParams())
    holdout = between(frame, holdout_start, watch_start)
    reference = version_reference(
        {n: holdout[n].to_numpy(dtype=np.float64) for n in names},
        scores(model, holdout[names].to_numpy()),
        hours=holdout["event_time"].dt.tz_convert("UTC").dt.hour.to_numpy(),
    )
    drift_start = start + timedelta(days=world.drift_day)
    watched = _hours(frame[frame["event_time"] >= watch_start], model, reference, regions)
    drifted = {}
    history_start = drift_start - timedelta(seconds=max(CUSTOMER_HORIZON, TERMINAL_HORIZON))
    for scenario in world.scenarios:
        drift = DriftSpec(name=scenario, start_day=world.drift_day)
        drifted_world = simulate(
            replace(config, nb_days=world.drift_day + world.days_after, drifts=(drift,)),
        )
        # Every window of a transaction after the drift's start reaches back at most one horizon.
        transactions = drifted_world.transactions
        transactions = transactions[transactions["event_time"] >= history_start]
        labels = drifted_world.labels[drifted_world.labels["transaction_time"] >= history_start]
        drifted_frame = labelled(backfill(transactions, labels), labels)
        drifted[scenario] = _hours(drifted_frame[drifted_frame["event_time"] >= drift_start], model, reference, regions)
    return Watched(seed, drift_start.timestamp(), reference, watched, drifted)


def between(frame: pd.DataFrame, first: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["event_time"] >= first) & (frame["event_time"] < end)]


def _hours(
    frame: pd.DataFrame, model: xgb.XGBClassifier, reference: Reference, regions: RegionPolicy
) -> list[HourCounts]:
    """The frame's predictions counted into hours, as the monitor counts one stream."""
    frame = frame.sort_values("event_time", kind="stable")
    names = list(FEATURE_NAMES)
    columns = {n: frame[n].to_numpy(dtype=np.float64) for n in names}
    columns[SCORE] = scores(model, frame[names].to_numpy())
    cards = frame["customer_id"].astype(str).to_numpy()
    terminals = frame["terminal_id"].astype(str).to_numpy()
    open_hours = OpenHours()
    counter = open_hours.counters["1"] = HourCounter(reference, regions)

    def count_rows(start: float, rows: np.ndarray) -> None:
        counter.count(start, {n: c[rows] for n, c in columns.items()}, (cards[rows], terminals[rows]))

    times = frame["event_time"].map(pd.Timestamp.timestamp).to_numpy(dtype=np.float64)
    hours = [hour for _, hour in open_hours.count(times, count_rows)]
    # The last hour of the world is complete too.
    return hours + [hour for _, hour in open_hours.close()]


@dataclass(frozen=True)
class Detection:
    scenario: str
    detected: bool
    delay_hours: float | None
    delay_transactions: int | None
    first_alerts: list[str]
    unrelated_alerts: dict[str, int]

    @property
    def in_time(self) -> bool:
        return self.delay_hours is not None and self.delay_hours <= AIM_DELAY_HOURS


@dataclass(frozen=True)
class SeedResult:
    seed: int
    stationary_days: float
    false_alarms: int
    alarm_hours: int
    false_alarm_sources: dict[str, int]
    detections: list[Detection]

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """An alert (`alert` true) or a detector's condition holding (`alert` false) in the hour
    that ends at `end`, with its "subject/detector"."""

    end: float
    source: str
    alert: bool
    statistic: float = 0.0

    @property
    def detector(self) -> str:
        return self.source.rpartition("/")[2]

    @property
    def subjects(self) -> list[str]:
        return self.source.rpartition("/")[0].split(" & ")


@dataclass(frozen=True)
class Replay:
    """What the monitor under one policy did on one seed's worlds: the stationary world's
    events, and each drifted world's from the drift's start. Detectors keep apart (each
    quiets only its own alerts), so replays of different detectors' settings combine into the
    replay of a policy that has them all (`combined`)."""

    seed: int
    stationary: list[Event]
    drifted: dict[str, list[Event]]

    def only(self, detectors: frozenset[str]) -> Replay:
        def kept(events: list[Event]) -> list[Event]:
            return [e for e in events if e.detector in detectors]

        return Replay(self.seed, kept(self.stationary), {s: kept(e) for s, e in self.drifted.items()})

    @staticmethod
    def combined(replays: Sequence[Replay]) -> Replay:
        def merged(lists: Iterable[list[Event]]) -> list[Event]:
            return sorted((e for events in lists for e in events), key=lambda e: e.end)

        first = replays[0]
        return Replay(
            first.seed,
            merged(r.stationary for r in replays),
            {s: merged(r.drifted[s] for r in replays) for s in first.drifted},
        )


def replay(watched: Watched, policy: DriftPolicy) -> Replay:
    """The monitor under `policy` over one seed's counted worlds: one monitor for the stationary
    world; each drifted world's continues from a copy of it at the drift's start."""
    monitor = DriftMonitor("evaluation", "1", watched.reference, policy)
    split = sum(hour.start < watched.drift_start for hour in watched.stationary)
    stationary = _events(monitor, watched.stationary[:split])
    at_drift = copy.deepcopy(monitor)
    stationary += _events(monitor, watched.stationary[split:])
    drifted = {scenario: _events(copy.deepcopy(at_drift), hours) for scenario, hours in watched.drifted.items()}
    return Replay(watched.seed, stationary, drifted)


def _events(monitor: DriftMonitor, hours: Iterable[HourCounts]) -> list[Event]:
    events = []
    for hour in hours:
        end = hour.start + HOUR
        alerts = monitor.judge_hour(hour)
        events += [Event(end, f"{a.subject}/{a.detector}", True, a.statistic) for a in alerts]
        events += [Event(end, source, False) for source in monitor.firing]
    return events


def judge(watched: Watched, policy: DriftPolicy) -> SeedResult:
    """The monitor under `policy` over one seed's counted worlds."""
    return result(watched, replay(watched, policy))


def result(watched: Watched, replayed: Replay) -> SeedResult:
    alerts = [e for e in replayed.stationary if e.alert]
    alarm_hours = len({e.end for e in replayed.stationary if not e.alert})
    stationary_days = (watched.stationary[-1].start + HOUR - watched.stationary[0].start) / DAY
    false_alarms = Counter(e.source for e in alerts)
    detections = [
        _detection(scenario, watched.drift_start, watched.drifted[scenario], events)
        for scenario, events in replayed.drifted.items()
    ]
    return SeedResult(watched.seed, round(stationary_days, 1), len(alerts), alarm_hours, dict(false_alarms), detections)


def _detection(scenario: str, drift_start: float, hours: Sequence[HourCounts], events: Sequence[Event]) -> Detection:
    moved = MOVED_SUBJECTS[scenario]
    alerts = [e for e in events if e.alert]
    found = [e for e in alerts if moved.intersection(e.subjects)]
    if not found:
        return Detection(scenario, False, None, None, [], dict(Counter(e.source for e in alerts)))
    end = found[0].end
    return Detection(
        scenario,
        True,
        round((end - drift_start) / HOUR, 1),
        sum(hour.n for hour in hours if hour.start < end),
        [f"{e.source} {e.statistic:.3f}" for e in found if e.end == end],
        dict(Counter(e.source for e in alerts if e.end <= end and e not in found)),
    )


def evaluate_drift(
    seeds: Iterable[int], world: World | None = None, policy: DriftPolicy | None = None, jobs: int = 1
) -> list[SeedResult]:
    """Each seed's worlds, counted (in `jobs` processes) and judged under `policy`."""
    return [judge(watched, policy or DriftPolicy()) for watched in watch_all(seeds, world or World(), jobs)]


def watch_all(seeds: Iterable[int], world: World, jobs: int = 1) -> list[Watched]:
    return map_in_processes(watch, list(seeds), world, jobs=jobs)


@dataclass(frozen=True)
class Aggregate:
    seeds: list[int]
    stationary_days: float
    false_alarms: int
    false_alarms_per_30_days: float
    alarm_hours: int
    alarm_hours_per_30_days: float
    detected_in_time: dict[str, int]
    worst_delay_hours: dict[str, float | None]
    meets_aims: bool


def aggregate(results: Sequence[SeedResult]) -> Aggregate:
    days = sum(r.stationary_days for r in results)
    false_alarms = sum(r.false_alarms for r in results)
    alarm_hours = sum(r.alarm_hours for r in results)
    scenarios = sorted({d.scenario for r in results for d in r.detections}, key=DRIFT_NAMES.index)
    in_time = {s: sum(d.in_time for r in results for d in r.detections if d.scenario == s) for s in scenarios}
    worst: dict[str, float | None] = {}
    for scenario in scenarios:
        delays = [d.delay_hours for r in results for d in r.detections if d.scenario == scenario]
        worst[scenario] = None if any(d is None for d in delays) else max(d for d in delays if d is not None)
    per_30 = 30 * false_alarms / days
    return Aggregate(
        [r.seed for r in results],
        round(days, 1),
        false_alarms,
        round(per_30, 2),
        alarm_hours,
        round(30 * alarm_hours / days, 1),
        in_time,
        worst,
        all(n == len(results) for n in in_time.values()) and per_30 <= AIM_FALSE_ALARMS_PER_30_DAYS,
    )


def table(results: Sequence[SeedResult]) -> str:
    header = f"{'seed':>5}{'stationary days':>17}{'false alarms':>14}{'hours in alarm':>16}"
    total = aggregate(results)
    header += "".join(f"{s + ' (h)':>24}" for s in total.detected_in_time)
    lines = [header]
    for r in results:
        delays = "".join(f"{'missed' if d.delay_hours is None else f'{d.delay_hours:.1f}':>24}" for d in r.detections)
        lines.append(f"{r.seed:>5}{r.stationary_days:>17.1f}{r.false_alarms:>14}{r.alarm_hours:>16}{delays}")
    lines.append(
        f"{'all':>5}{total.stationary_days:>17.1f}{total.false_alarms:>14}{total.alarm_hours:>16}"
        + "".join(f"{f'{n}/{len(results)} in {AIM_DELAY_HOURS:.0f} h':>24}" for n in total.detected_in_time.values())
    )
    lines.append(
        f"false alarms per 30 stationary days: {total.false_alarms_per_30_days:.2f} "
        f"(aim at most {AIM_FALSE_ALARMS_PER_30_DAYS:.0f}); hours in alarm per 30 days: "
        f"{total.alarm_hours_per_30_days:.1f}; aims met: {'yes' if total.meets_aims else 'no'}"
    )
    lines.append("")
    lines.append("first detecting alerts, and the sources of false alarms:")
    for r in results:
        found = "; ".join(f"{d.scenario}: {', '.join(d.first_alerts) or '-'}" for d in r.detections)
        lines.append(f"  seed {r.seed}: {found}; false alarms: {r.false_alarm_sources or '-'}")
    return "\n".join(lines)


# Candidate settings of each detector for `tune`, DriftPolicy's defaults among them. Joint
# regions vary only in what is judged, not in what was counted (`rare_share`).
TUNING_GRID: dict[str, list[dict[str, float]]] = {
    "PSI": [{"psi_threshold": t} for t in (0.2, 0.3)],
    "OutOfRange": [{"out_of_range_share": share, "out_of_range_min": 20} for share in (0.002, 0.005)],
    "PageHinkley": [{"page_hinkley_threshold": t} for t in (0.05, 0.1, 0.2)],
    "ADWIN": [{"adwin_delta": d} for d in (1e-5, 1e-7)],
    "JointRegion": [
        {"min_entities": entities, "p_value": p, "prior_rows": prior}
        for entities in (6, 7)
        for p in (1e-6, 1e-8)
        for prior in (0.5, 1.0, 2.0, 3.0)
    ],
    "NightRegion": [
        {"min_entities": entities, "p_value": p, "prior_rows": prior}
        for entities in (6, 7)
        for p in (1e-8, 1e-9, 1e-10)
        for prior in (0.5, 1.0)
    ],
}
# The detectors whose settings are a RegionPolicy, and DriftPolicy's field for each.
REGION_DETECTORS = {"JointRegion": "regions", "NightRegion": "night_regions"}


def policy_of(settings: dict[str, dict[str, float]]) -> DriftPolicy:
    """DriftPolicy with each detector's chosen settings (detectors: TUNING_GRID's keys)."""
    regions = {
        field: RegionPolicy(**settings[detector])  # type: ignore[arg-type]
        for detector, field in REGION_DETECTORS.items()
        if detector in settings
    }
    flat = {
        k: v for detector, chosen in settings.items() if detector not in REGION_DETECTORS for k, v in chosen.items()
    }
    return replace(DriftPolicy(), **regions, **flat)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Trial:
    settings: dict[str, dict[str, float]]
    aggregate: Aggregate

    def rank(self) -> tuple[float, ...]:
        """Lower is better: a scenario some seed never shows is worst; then a false-alarm rate
        above the aim (an alert asks for a retrain: alarms that cry wolf cost every day); then
        the most detections within the aim's delay, the fewest false alarms, the fewest hours
        in alarm, the shortest worst delays."""
        total = self.aggregate
        worst = [d if d is not None else 1e9 for d in total.worst_delay_hours.values()]
        return (
            sum(d is None for d in total.worst_delay_hours.values()),
            total.false_alarms_per_30_days > AIM_FALSE_ALARMS_PER_30_DAYS,
            -sum(total.detected_in_time.values()),
            total.false_alarms,
            total.alarm_hours,
            sum(worst),
        )


def tune(
    watched: Sequence[Watched], grid: dict[str, list[dict[str, float]]] | None = None, jobs: int = 1
) -> list[Trial]:
    """Every combination of the grid's settings judged on `watched` (the tuning seeds' worlds),
    best first. Each setting of each detector is replayed once per seed (in `jobs` processes);
    a combination is the union of its detectors' replays."""
    grid = grid or TUNING_GRID
    per_seed = map_in_processes(_replays, watched, grid, jobs=jobs)
    trials = []
    for choice in itertools.product(*(range(len(settings)) for settings in grid.values())):
        picked = dict(zip(grid, choice, strict=True))
        results = [
            result(w, Replay.combined([replays[detector][n] for detector, n in picked.items()]))
            for w, replays in zip(watched, per_seed, strict=True)
        ]
        trials.append(Trial({d: grid[d][n] for d, n in picked.items()}, aggregate(results)))
    return sorted(trials, key=Trial.rank)


def _replays(watched: Watched, grid: dict[str, list[dict[str, float]]]) -> dict[str, list[Replay]]:
    """Each detector's replay under each of its settings, with the other detectors' events left out."""

    def policy(detector: str, setting: dict[str, float]) -> DriftPolicy:
        chosen = policy_of({detector: setting})
        # Regions cost most of a replay; the other detectors' events do not depend on them.
        off = {field: None for name, field in REGION_DETECTORS.items() if name != detector}
        return replace(chosen, **off)  # type: ignore[arg-type]

    return {
        detector: [replay(watched, policy(detector, setting)).only(frozenset({detector})) for setting in settings]
        for detector, settings in grid.items()
    }


def tuning_report(watched: Sequence[Watched], world: World, jobs: int = 1, top: int = 10) -> dict[str, object]:
    """`tune` on `watched`: the chosen settings (the best trial), the next best, and a table."""
    trials = tune(watched, jobs=jobs)
    best = trials[0]
    lines = [f"{'in time':>8}{'false alarms':>14}{'hours in alarm':>16}  settings"]
    for trial in trials[:top]:
        total = trial.aggregate
        in_time = sum(total.detected_in_time.values())
        lines.append(f"{in_time:>8}{total.false_alarms:>14}{total.alarm_hours:>16}  {trial.settings}")
    lines.append(f"chosen on seeds {[w.seed for w in watched]} ({len(trials)} combinations): {best.settings}")
    return {
        "world": asdict(world),
        "seeds": [w.seed for w in watched],
        "grid": TUNING_GRID,
        "combinations": len(trials),
        "chosen": best.settings,
        "trials": [{"settings": t.settings, "aggregate": asdict(t.aggregate)} for t in trials[:top]],
        "text": "\n".join(lines),
    }
