"""The handbook's performance metrics: AUC ROC, average precision, and card precision@k."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream_modelling.protocol import days


def card_precision_at_k(test: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Per day: each card's highest score and whether it had a fraud that day; the share of
    frauded cards among the day's top k, cards detected on an earlier day left out. The
    mean over the days (the handbook's `card_precision_top_k`)."""
    frame = pd.DataFrame(
        {
            "day": days(test).to_numpy(),
            "customer_id": test["customer_id"].to_numpy(),
            "score": scores,
            "is_fraud": test["is_fraud"].to_numpy(dtype=bool),
        }
    )
    detected: set[str] = set()
    precisions = []
    for day in sorted(frame["day"].unique()):
        rows = frame[(frame["day"] == day) & ~frame["customer_id"].isin(detected)]
        cards = rows.groupby("customer_id").agg(score=("score", "max"), is_fraud=("is_fraud", "max"))
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        frauded = top.index[top["is_fraud"]]
        precisions.append(len(frauded) / k)
        detected.update(frauded)
    return float(np.mean(precisions)) if precisions else 0.0


def performance(test: pd.DataFrame, scores: np.ndarray, k: int = 100) -> dict[str, float]:
    labels = test["is_fraud"].to_numpy(dtype=bool)
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        f"card_precision_at_{k}": card_precision_at_k(test, scores, k),
    }


def shortfall_bounds(
    test: pd.DataFrame,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    confidence: float,
    rounds: int,
    seed: int = 0,
    k: int = 100,
) -> dict[str, float]:
    """Per metric (average precision, card precision@k): how far below the champion the
    challenger is at least, with `confidence`, on these transactions (negative: it may be
    better). A Poisson bootstrap of the cards, paired: each round weighs every card (all its
    transactions) by the same draw for both models. Card precision keeps each model's own
    cards detected on earlier days, as the point estimate has them."""
    labels = test["is_fraud"].to_numpy(dtype=bool)
    codes, cards = pd.factorize(test["customer_id"], sort=False)
    weights = np.random.default_rng(seed).poisson(1.0, size=(rounds, len(cards))).astype(np.float64)
    ap_shortfall = np.empty(rounds)
    for n in range(rounds):
        row_weights = weights[n, codes]
        if not (row_weights * labels).any():
            ap_shortfall[n] = 0.0
            continue
        ap_shortfall[n] = average_precision_score(labels, champion, sample_weight=row_weights) - (
            average_precision_score(labels, challenger, sample_weight=row_weights)
        )
    cp_shortfall = _card_precisions(test, codes, champion, weights, k) - _card_precisions(
        test, codes, challenger, weights, k
    )
    lower = 1 - confidence
    return {
        "average_precision": float(np.quantile(ap_shortfall, lower)),
        f"card_precision_at_{k}": float(np.quantile(cp_shortfall, lower)),
    }


def _card_precisions(
    test: pd.DataFrame, codes: np.ndarray, scores: np.ndarray, weights: np.ndarray, k: int
) -> np.ndarray:
    """Card precision@k in every bootstrap round (`weights`: rounds x cards)."""
    frame = pd.DataFrame(
        {"day": days(test).to_numpy(), "card": codes, "score": scores, "is_fraud": test["is_fraud"].to_numpy(bool)}
    )
    detected: set[int] = set()
    per_day = []
    for _, rows in frame.groupby("day", sort=True):
        cards = (
            rows[~rows["card"].isin(detected)]
            .groupby("card")
            .agg(score=("score", "max"), is_fraud=("is_fraud", "max"))
            .sort_values("score", ascending=False, kind="stable")
        )
        detected.update(cards.index[:k][cards["is_fraud"].to_numpy()[:k]])
        drawn = weights[:, cards.index.to_numpy()]
        before = np.cumsum(drawn, axis=1) - drawn
        within = np.clip(k - before, 0, drawn)
        per_day.append((within * cards["is_fraud"].to_numpy(dtype=np.float64)).sum(axis=1) / k)
    return np.mean(per_day, axis=0) if per_day else np.zeros(len(weights))
