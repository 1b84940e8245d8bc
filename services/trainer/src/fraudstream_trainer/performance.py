"""The handbook's performance metrics: AUC ROC, average precision, and card precision@k."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream_trainer.protocol import days


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
