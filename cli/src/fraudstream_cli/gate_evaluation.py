"""`fraudstream evaluate gate`: how often the trainer's gate refuses a challenger that differs
from the champion only in the week it was trained on.

In each simulated world, at every `every`-th midnight from `first_day` on, the model the
trainer would judge at that cutoff (the selected recipe, the trainer's windows, labels only
once known) is the challenger, and the model of the same recipe judged `gap` days earlier is
the champion. Both score the challenger's holdout and the gate decides (`gate.decide` on
`performance.shortfall_bounds`, under the policy given). Nothing but the training week tells
the two apart, so every refusal is a fresh model kept out for chance alone: the share refused
is the gate's cost, and the quantiles of the bounds say what margin keeps that share small.

A world with a drift counts only the cutoffs whose holdout holds at least a day of it (then
both models may be stale), and is summed apart from the stationary worlds.

With `frauds_lost` above 0 the challenger is trained with that share of its training frauds
labelled genuine, as when fraud reports stop arriving and their transactions are confirmed
genuine after the longest delay (the data checks ask only for 50 frauds or more);
the share refused is then the gate's power against a real loss, at the same margins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from fraudstream_cli.loop_evaluation import DAY, NAMES, LoopPolicy, history_of
from fraudstream_cli.processes import map_in_processes
from fraudstream_modelling.gate import Decision, GatePolicy, decide
from fraudstream_modelling.model import scores
from fraudstream_modelling.performance import performance, shortfall_bounds
from fraudstream_simulator.config import DRIFT_NAMES, DriftSpec, SimulationConfig

GATED = ("average_precision", "card_precision_at_100")
# Day arithmetic on the trainer's windows, in days from a world's start: any midnight serves.
_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class GateWorld:
    """One simulated world: a seed, and a drift or none."""

    seed: int
    drift: DriftSpec | None = None

    @classmethod
    def parse(cls, text: str) -> GateWorld:
        """`SEED` or `SEED:SCENARIO:DAY`; ValueError says what is wrong."""
        seed, _, drift = text.partition(":")
        try:
            if not seed.isdigit():
                raise ValueError(f"write SEED or SEED:SCENARIO:DAY with a scenario of {', '.join(DRIFT_NAMES)}")
            return cls(int(seed), DriftSpec.parse(drift) if drift else None)
        except ValueError as error:
            raise ValueError(f"world {text!r}: {error}") from None

    def __str__(self) -> str:
        return str(self.seed) if self.drift is None else f"{self.seed}:{self.drift.name}:{self.drift.start_day}"


# The worlds the margins were sized on: drift_evaluation's tuning seeds, and two of them with a
# drift from day 60. The held-out seeds are left for judging a gate chosen with this.
TUNING_WORLDS = (
    GateWorld(0),
    GateWorld(1),
    GateWorld(2),
    GateWorld(7),
    GateWorld(1, DriftSpec("new-fraud-pattern", 60)),
    GateWorld(2, DriftSpec("amount-shift", 60)),
)


@dataclass(frozen=True)
class Layout:
    n_customers: int = 5000
    n_terminals: int = 10000
    days: int = 100
    first_day: int = 60
    every: int = 2
    gaps: tuple[int, ...] = (1, 2, 3, 5)
    frauds_lost: float = 0.0  # the share of the challenger's training frauds labelled genuine
    loop: LoopPolicy = field(default_factory=LoopPolicy)

    def as_json(self) -> dict[str, object]:
        fields = {k: v for k, v in asdict(self).items() if k != "loop"}
        return {**fields, "train_days": self.loop.train_days, "holdout_days": self.loop.holdout_days}


@dataclass(frozen=True)
class Pair:
    world: str
    cutoff_day: int
    gap_days: int
    frauds: int
    challenger: dict[str, float]
    champion: dict[str, float]
    shortfall_bounds: dict[str, float]  # per GATED metric, as the gate computes it


@dataclass(frozen=True)
class Summary:
    pairs: int
    refused: float  # the share the gate refuses under its policy
    refused_by_metric: dict[str, float]
    refused_without_margins: float
    bound_quantiles: dict[str, dict[str, float]]  # per GATED metric, per QUANTILES

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def pairs_of(world: GateWorld, layout: Layout) -> list[Pair]:
    """Every cutoff's challenger against each gap's champion in one world."""
    config = SimulationConfig(
        n_customers=layout.n_customers,
        n_terminals=layout.n_terminals,
        nb_days=layout.days,
        drifts=(world.drift,) if world.drift else (),
        seed=world.seed,
    )
    history = history_of(config)
    start = pd.Timestamp(config.start_date).tz_convert("UTC")
    policy, gate = layout.loop, layout.loop.gate
    models: dict[tuple[int, float], xgb.XGBClassifier] = {}

    def judged_at(day: int, frauds_lost: float = 0.0) -> xgb.XGBClassifier:
        if (day, frauds_lost) not in models:
            windows = policy.windows(start + day * DAY)
            rows = history.labelled(windows.train_start, windows.train_end, windows.holdout_start)
            models[day, frauds_lost] = policy.fit(_frauds_lost(rows, frauds_lost, seed=day))
        return models[day, frauds_lost]

    pairs = []
    for day in cutoff_days(world, layout):
        cutoff = start + day * DAY
        windows = policy.windows(cutoff)
        holdout = history.labelled(windows.holdout_start, windows.holdout_end, cutoff)
        features = holdout[NAMES].to_numpy()
        challenger = scores(judged_at(day, layout.frauds_lost), features)
        for gap in layout.gaps:
            champion = scores(judged_at(day - gap), features)
            bounds = shortfall_bounds(
                holdout, challenger, champion, confidence=gate.confidence, rounds=gate.bootstrap_rounds
            )
            pairs.append(
                Pair(
                    str(world),
                    day,
                    gap,
                    int(holdout["is_fraud"].sum()),
                    _gated(performance(holdout, challenger)),
                    _gated(performance(holdout, champion)),
                    _gated(bounds),
                )
            )
    return pairs


def cutoff_days(world: GateWorld, layout: Layout) -> list[int]:
    """The cutoffs judged in `world`, in days from its start: with a drift, those whose holdout
    holds at least a day of it."""
    days = range(layout.first_day, layout.days, layout.every)
    if world.drift is None:
        return list(days)
    drift_start = _EPOCH + world.drift.start_day * DAY
    return [day for day in days if layout.loop.windows(_EPOCH + day * DAY).holdout_end > drift_start]


def summarise(pairs: Sequence[Pair], gate: GatePolicy) -> Summary:
    decisions = [_decision(pair, gate) for pair in pairs]
    without_margins = replace(gate, ap_margin=0.0, card_precision_margin=0.0)
    bounds = {metric: np.array([pair.shortfall_bounds[metric] for pair in pairs]) for metric in GATED}
    return Summary(
        pairs=len(pairs),
        refused=float(np.mean([not d.promote for d in decisions])),
        refused_by_metric={metric: float(np.mean([metric in d.refused_on for d in decisions])) for metric in GATED},
        refused_without_margins=float(np.mean([not _decision(pair, without_margins).promote for pair in pairs])),
        bound_quantiles={
            metric: {str(q): round(float(np.quantile(bounds[metric], q)), 4) for q in QUANTILES} for metric in GATED
        },
    )


def evaluate_gate(worlds: Iterable[GateWorld], layout: Layout | None = None, jobs: int = 1) -> dict[str, object]:
    """Every world's pairs (in `jobs` processes), summed for the stationary worlds and for the
    drifted ones, under `layout.loop.gate`."""
    worlds, layout = list(worlds), layout or Layout()
    earliest = layout.loop.windows(_EPOCH + (layout.first_day - max(layout.gaps)) * DAY)
    if earliest.train_start < _EPOCH:
        span = (earliest.cutoff - earliest.train_start).days
        raise ValueError(f"the first cutoff less the largest gap must leave {span} days for the trainer's windows")
    if not 0 <= layout.frauds_lost < 1:
        raise ValueError("the share of frauds lost must be at least 0 and below 1")
    if layout.first_day >= layout.days:
        raise ValueError("the first cutoff must fall inside the simulated days")
    for world in worlds:
        if not cutoff_days(world, layout):
            raise ValueError(f"world {str(world)!r}: no cutoff's holdout holds a day of its drift; simulate more days")
    per_world = map_in_processes(pairs_of, worlds, layout, jobs=jobs)
    pairs = [pair for world_pairs in per_world for pair in world_pairs]
    return {
        "gate": asdict(layout.loop.gate),
        "layout": layout.as_json(),
        "worlds": [str(world) for world in worlds],
        "summary": summaries(pairs, layout.loop.gate),
        "pairs": [asdict(pair) for pair in pairs],
    }


def with_margins(gate: GatePolicy, ap_margin: float | None, card_precision_margin: float | None) -> GatePolicy:
    """`gate` with the margins given (None: its own)."""
    return replace(
        gate,
        ap_margin=gate.ap_margin if ap_margin is None else ap_margin,
        card_precision_margin=gate.card_precision_margin if card_precision_margin is None else card_precision_margin,
    )


def rejudge(report: dict[str, Any], ap_margin: float | None, card_precision_margin: float | None) -> dict[str, Any]:
    """An earlier `evaluate_gate` report with its pairs judged again under other margins (None:
    the report's own). The bounds stay as computed, at the report's confidence."""
    gate = with_margins(GatePolicy(**report["gate"]), ap_margin, card_precision_margin)
    pairs = [Pair(**pair) for pair in report["pairs"]]
    return {**report, "gate": asdict(gate), "summary": summaries(pairs, gate)}


def summaries(pairs: Sequence[Pair], gate: GatePolicy) -> dict[str, dict[str, object]]:
    """`summarise` of the stationary worlds' pairs and of the drifted worlds', each if any."""
    groups: dict[str, list[Pair]] = {"stationary": [], "drifted": []}
    for pair in pairs:
        groups["stationary" if GateWorld.parse(pair.world).drift is None else "drifted"].append(pair)
    return {name: summarise(group, gate).as_json() for name, group in groups.items() if group}


def table(report: dict[str, object]) -> str:
    summary: dict[str, dict[str, object]] = report["summary"]  # type: ignore[assignment]
    lines = [f"{'worlds':<12}{'pairs':>7}{'refused':>9}{'no margins':>12}{'AP bound q99':>14}{'CP bound q99':>14}"]
    for name, s in summary.items():
        quantiles: dict[str, dict[str, float]] = s["bound_quantiles"]  # type: ignore[assignment]
        lines.append(
            f"{name:<12}{s['pairs']:>7}{s['refused']:>9.3f}{s['refused_without_margins']:>12.3f}"
            f"{quantiles['average_precision']['0.99']:>14.4f}{quantiles['card_precision_at_100']['0.99']:>14.4f}"
        )
    return "\n".join(lines)


def _frauds_lost(rows: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    if share == 0:
        return rows
    frauds = np.flatnonzero(rows["is_fraud"].to_numpy())
    labels = rows["is_fraud"].to_numpy(dtype=bool, copy=True)
    labels[np.random.default_rng(seed).choice(frauds, size=round(share * len(frauds)), replace=False)] = False
    return rows.assign(is_fraud=labels)


def _decision(pair: Pair, gate: GatePolicy) -> Decision:
    return decide(pair.challenger, pair.champion, gate, pair.shortfall_bounds)


def _gated(figures: dict[str, float]) -> dict[str, float]:
    return {metric: float(figures[metric]) for metric in GATED}
