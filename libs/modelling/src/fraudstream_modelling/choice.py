"""What a training run decides, on data already laid out in its windows: the data checks, the
judged model, the gate, the model that serves, and the scores its reference takes.

The trainer's pipeline runs it on Feast's training sets and ONNX models; `fraudstream evaluate
loop` on a replayed history and native models, so that the replay decides as the service does.
The models are whatever `fit` returns and `score` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from fraudstream_modelling.checks import DataBounds, DataCheckError, check_training_set
from fraudstream_modelling.gate import GatePolicy, Judgement, judge
from fraudstream_modelling.windows import Windows

Model = TypeVar("Model")


class ServedModel(StrEnum):
    """Which model a promoted run publishes."""

    # The same recipe trained again on the holdout, the latest window whose labels have matured.
    REFIT = "refit"
    # The model the gate judged, trained on the window before the holdout.
    JUDGED = "judged"


# The holdout only has to be scorable: some rows and at least one fraud.
HOLDOUT_BOUNDS = DataBounds(min_rows=1, min_frauds=1, max_fraud_share=1.0)


@dataclass(frozen=True)
class Choice(Generic[Model]):
    """`judged`: trained on the training window, the model the gate judged (`judged_scores` on
    the holdout). `served`: what a promoted version serves, the judged model or the recipe
    refit on the holdout, trained on `served_rows` (summarised by `summary`).
    `reference_scores`: the served model's scores on the holdout, the rows the version's
    reference describes (for the refit, the rows it trained on: see `choose`).
    `refit_skipped`: why a refit was wanted but the holdout could not train it."""

    judgement: Judgement
    judged: Model
    judged_scores: np.ndarray
    served: Model
    served_rows: pd.DataFrame
    summary: dict[str, float]
    reference_scores: np.ndarray
    refit_skipped: str | None

    @property
    def refit(self) -> bool:
        return self.served is not self.judged


def choose(
    windows: Windows,
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    fit: Callable[[pd.DataFrame, str], Model],
    score: Callable[[Model, pd.DataFrame], np.ndarray],
    champion_scores: Callable[[pd.DataFrame], np.ndarray | None],
    gate: GatePolicy,
    bounds: DataBounds,
    served_model: ServedModel,
) -> Choice[Model]:
    """Raises DataCheckError when the training set or the holdout fails its checks. `fit(rows,
    purpose)` trains on rows; `champion_scores` scores the holdout with the champion's judged
    model (None: no champion, or none that can be scored)."""
    summary = check_training_set(training, bounds, labels_known_at=windows.holdout_start)
    check_training_set(holdout, HOLDOUT_BOUNDS, labels_known_at=windows.cutoff)
    judged = fit(training, "fit")
    judged_scores = score(judged, holdout)
    judgement = judge(holdout, judged_scores, champion_scores(holdout), gate)
    served, served_rows, reference_scores, refit_skipped = judged, training, judged_scores, None
    if judgement.decision.promote and served_model is ServedModel.REFIT:
        try:
            refit_summary = check_training_set(holdout, bounds, labels_known_at=windows.cutoff)
        except DataCheckError as error:
            # Too little to train on alone: the judged model serves, as judged.
            refit_skipped = "; ".join(error.failures)
        else:
            served = fit(holdout, "refit on the holdout")
            # In sample, yet its score deciles there match the traffic after it. The judged
            # model's window, out of sample, may lie in the features' warm-up (a first model's),
            # whose scores the traffic never shows again: a false alarm from the first day.
            served_rows, summary, reference_scores = holdout, refit_summary, score(served, holdout)
    return Choice(judgement, judged, judged_scores, served, served_rows, summary, reference_scores, refit_skipped)
