"""The promotion gate and the decision threshold.

A challenger is promoted only when, on the same later, held-out data as the champion, it is
no worse by average precision (within `ap_margin`) and by card precision@100 (within
`card_precision_margin`), where worse means worse beyond the holdout's sampling noise: with
`confidence`, by a paired bootstrap of the holdout's cards (`performance.shortfall_bounds`).
A week of holdout holds a few hundred frauds, so two models of the same recipe trained a few
days apart differ by chance; a point comparison would keep the older one as often as not.
The bootstrap covers the holdout's noise, not the models': like models trained on different
weeks also differ in which cards they rank first, most after a drift, when both are stale.
The card precision margin (one card in a hundred a day) is sized to that spread, so a fresher
like model is not refused for it, while a challenger that lost its signal still is. Every
decision carries its reasons, promote or reject.

The threshold turns scores into review decisions: analysts have a fixed capacity, so each
version gets the threshold that sends `review_share` of transactions to review on the data it
was evaluated on, stored with the version, so a swap does not silently change the queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudstream_modelling.performance import performance, shortfall_bounds


@dataclass(frozen=True)
class GatePolicy:
    ap_margin: float = 0.005
    card_precision_margin: float = 0.01
    # 0: compare the point estimates alone.
    confidence: float = 0.95
    bootstrap_rounds: int = 200


@dataclass(frozen=True)
class Decision:
    reasons: tuple[str, ...]
    refused_on: tuple[str, ...] = ()  # the metrics short by more than their margin

    @property
    def promote(self) -> bool:
        return not self.refused_on


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    challenger: dict[str, float]
    champion: dict[str, float] | None


def judge(
    holdout: pd.DataFrame, challenger_scores: np.ndarray, champion_scores: np.ndarray | None, policy: GatePolicy
) -> Judgement:
    """The gate on one holdout (`performance.performance`'s frame) scored by both models."""
    challenger = performance(holdout, challenger_scores)
    if champion_scores is None:
        return Judgement(decide(challenger, None, policy), challenger, None)
    champion = performance(holdout, champion_scores)
    shortfalls = None
    if policy.confidence > 0:
        shortfalls = shortfall_bounds(
            holdout,
            challenger_scores,
            champion_scores,
            confidence=policy.confidence,
            rounds=policy.bootstrap_rounds,
        )
    return Judgement(decide(challenger, champion, policy, shortfalls), challenger, champion)


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    policy: GatePolicy,
    shortfalls: Mapping[str, float] | None = None,
) -> Decision:
    """`challenger` and `champion`: metrics of each on the same held-out data (see
    performance.performance). `shortfalls`: per metric, how far below the champion the
    challenger is at least, with the policy's confidence; None: the difference of the metrics."""
    if champion is None:
        return Decision(("no champion yet",))
    reasons, refused_on = [], []
    for metric, margin in (
        ("average_precision", policy.ap_margin),
        ("card_precision_at_100", policy.card_precision_margin),
    ):
        new, old = challenger[metric], champion[metric]
        shortfall = old - new if shortfalls is None else shortfalls[metric]
        bound = "" if shortfalls is None else f", {policy.confidence:.0%} bound on the shortfall {shortfall:+.4f}"
        if shortfall > margin:
            refused_on.append(metric)
            reasons.append(f"{metric} {new:.4f} below the champion's {old:.4f} by more than {margin}{bound}")
        else:
            reasons.append(f"{metric} {new:.4f} against the champion's {old:.4f} (margin {margin}{bound}): no worse")
    return Decision(tuple(reasons), tuple(refused_on))


def review_threshold(scores: np.ndarray, review_share: float) -> float:
    """The score at or above which `review_share` of these transactions go to review."""
    if not 0 < review_share < 1:
        raise ValueError("review_share must be between 0 and 1")
    return float(np.quantile(scores, 1 - review_share, method="higher"))
