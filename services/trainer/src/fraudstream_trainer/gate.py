"""The promotion gate and the decision threshold.

A challenger is promoted only when, on the same later, held-out data as the champion, it is
no worse by average precision (within `ap_margin`) and by card precision@100 (within
`card_precision_margin`). Every decision carries its reasons, promote or reject.

The threshold turns scores into review decisions: analysts have a fixed capacity, so each
version gets the threshold that sends `review_share` of transactions to review on the data it
was evaluated on, stored with the version, so a swap does not silently change the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GatePolicy:
    ap_margin: float = 0.005
    card_precision_margin: float = 0.0


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]


def decide(challenger: dict[str, float], champion: dict[str, float] | None, policy: GatePolicy) -> Decision:
    """`challenger` and `champion`: metrics of each on the same held-out data (see performance.performance)."""
    if champion is None:
        return Decision(True, ("no champion yet",))
    reasons = []
    promote = True
    for metric, margin in (
        ("average_precision", policy.ap_margin),
        ("card_precision_at_100", policy.card_precision_margin),
    ):
        new, old = challenger[metric], champion[metric]
        if new < old - margin:
            promote = False
            reasons.append(f"{metric} {new:.4f} below the champion's {old:.4f} by more than {margin}")
        else:
            reasons.append(f"{metric} {new:.4f} against the champion's {old:.4f} (margin {margin}): no worse")
    return Decision(promote, tuple(reasons))


def review_threshold(scores: np.ndarray, review_share: float) -> float:
    """The score at or above which `review_share` of these transactions go to review."""
    if not 0 < review_share < 1:
        raise ValueError("review_share must be between 0 and 1")
    return float(np.quantile(scores, 1 - review_share, method="higher"))
