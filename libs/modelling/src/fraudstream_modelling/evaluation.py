"""`fraudstream evaluate`: the model, trained and tested on the handbook's prequential folds,
beside the handbook's best published figures for the same simulated data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES, LABEL_DELAY_DAYS
from fraudstream_modelling.labels import latest_labels
from fraudstream_modelling.model import ModelParams, scores, selected_params, train
from fraudstream_modelling.performance import performance
from fraudstream_modelling.protocol import Fold, prequential_folds, train_test_split

METRICS = ("auc_roc", "average_precision", "card_precision_at_100")
# The handbook's best figures on its chapter 5 test folds: AUC ROC with balanced bagging,
# average precision and card precision@100 with XGBoost.
HANDBOOK_BEST = {"auc_roc": 0.879, "average_precision": 0.694, "card_precision_at_100": 0.305}
# Its test folds: the latest trains from 2018-08-15, each earlier one 7 days before.
HANDBOOK_TEST_TRAIN_START = date(2018, 8, 15)


@dataclass
class Evaluation:
    folds: list[Fold]
    results: list[dict[str, float]] = field(default_factory=list)

    def mean(self) -> dict[str, float]:
        return {m: float(np.mean([r[m] for r in self.results])) for m in METRICS}

    def std(self) -> dict[str, float]:
        return {m: float(np.std([r[m] for r in self.results], ddof=1)) for m in METRICS}

    def as_json(self) -> dict[str, object]:
        mean, std = self.mean(), self.std()
        return {
            **{m: mean[m] for m in METRICS},
            "std": std,
            "folds": [
                {"train_start": fold.train_start.isoformat(), "test_start": fold.test_start.isoformat(), **result}
                for fold, result in zip(self.folds, self.results, strict=True)
            ],
            "handbook_best": HANDBOOK_BEST,
        }

    def table(self) -> str:
        mean, std = self.mean(), self.std()
        lines = [f"{'metric':<24}{'fraudstream (mean ± std)':>28}{'handbook best':>15}"]
        for m in METRICS:
            lines.append(f"{m:<24}{mean[m]:>19.3f} ± {std[m]:.3f}{HANDBOOK_BEST[m]:>15.3f}")
        lines.append("")
        lines.append("fold  train from  test from   " + "  ".join(f"{m:>22}" for m in METRICS))
        for n, (fold, result) in enumerate(zip(self.folds, self.results, strict=True)):
            values = "  ".join(f"{result[m]:>22.3f}" for m in METRICS)
            lines.append(f"{n:<6}{fold.train_start.isoformat():<12}{fold.test_start.isoformat():<12}{values}")
        return "\n".join(lines)


def labelled(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (the backfill's or a training set's) with each transaction's label."""
    truth = latest_labels(labels)[["transaction_id", "is_fraud"]]
    frame = features.merge(truth, on="transaction_id", how="left")
    frame["is_fraud"] = frame["is_fraud"].fillna(False).astype(bool)
    return frame


@dataclass(frozen=True)
class FoldData:
    fold: Fold
    training: pd.DataFrame
    test: pd.DataFrame


def fold_data(frame: pd.DataFrame, folds: list[Fold]) -> list[FoldData]:
    """Each fold's training and test rows of `labelled` feature rows."""
    return [FoldData(fold, *train_test_split(frame, fold)) for fold in folds]


def evaluate(
    frame: pd.DataFrame,
    params: ModelParams | None = None,
    folds: list[Fold] | None = None,
) -> Evaluation:
    """Train and test on each fold (default: the handbook's test folds); `frame` is `labelled`
    feature rows; `params` default to the saved selection."""
    return score(fold_data(frame, folds or prequential_folds(HANDBOOK_TEST_TRAIN_START)), params)


def score(data: list[FoldData], params: ModelParams | None = None) -> Evaluation:
    evaluation = Evaluation([d.fold for d in data])
    names = list(FEATURE_NAMES)
    chosen = params or selected_params()
    for d in data:
        model = train(d.training[names].to_numpy(), d.training["is_fraud"].to_numpy(), chosen)
        evaluation.results.append(performance(d.test, scores(model, d.test[names].to_numpy())))
    return evaluation


def handbook_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Every label known exactly LABEL_DELAY_DAYS after its transaction, as the handbook's
    protocol assumes (instead of when it was reported)."""
    delayed = labels.copy()
    delayed["label_time"] = delayed["transaction_time"] + pd.Timedelta(days=LABEL_DELAY_DAYS)
    return delayed
