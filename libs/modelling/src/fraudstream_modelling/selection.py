"""Model selection without the test folds, as the handbook's chapter 5 does it.

The hyperparameters are searched on validation folds: as many as the test folds and shaped
like them, the latest training `delay + test` days before the earliest test fold does, so every
validation test day ends before the first test day. The search (Optuna's TPE sampler, seeded,
a fixed number of trials) maximises the three figures the handbook reports, each a mean over
the validation folds: AUC ROC, average precision and card precision@100. Of the trials no other
trial beats on all three (the Pareto front), it chooses the one with the best mean rank over
the three among all trials: a model good on one figure and poor on another is not chosen over
one good on all. The search is handed only the rows before the first test day, so it cannot
read a test fold. The chosen parameters are then scored once on the test folds.

What the trainer service trains with by default is the selection saved in
`selected_params.json` beside this module (`fraudstream evaluate --select N --save-selection`),
with what it was chosen on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from fraudstream_modelling.evaluation import METRICS, Evaluation, fold_data, score
from fraudstream_modelling.model import SELECTED_PARAMS_FILE, ModelParams
from fraudstream_modelling.protocol import Fold, days, prequential_folds

OBJECTIVE = f"of the Pareto front of mean {', '.join(METRICS)} over the validation folds, the best mean rank"


@dataclass(frozen=True)
class Search:
    trials: int = 30
    seed: int = 0


@dataclass
class Selection:
    params: ModelParams
    folds: list[Fold]  # the validation folds
    value: dict[str, float]  # each of METRICS for `params`, a mean over them
    trials: list[dict[str, Any]] = field(default_factory=list)  # each trial's parameters and METRICS
    seen_before: date | None = None  # the search was handed only rows before this day

    def as_json(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "objective": OBJECTIVE,
            "value": self.value,
            "validation_folds": [
                {"train_start": fold.train_start.isoformat(), "test_start": fold.test_start.isoformat()}
                for fold in self.folds
            ],
            "rows_before": self.seen_before.isoformat() if self.seen_before else None,
            "trials": len(self.trials),
        }


def validation_folds(test_folds: list[Fold]) -> list[Fold]:
    earliest = min(test_folds, key=lambda fold: fold.train_start)
    latest_start = earliest.train_start - timedelta(days=earliest.delay_days + earliest.test_days)
    return prequential_folds(
        latest_start, len(test_folds), earliest.train_days, earliest.delay_days, earliest.test_days
    )


def first_test_day(test_folds: list[Fold]) -> date:
    return min(fold.test_start for fold in test_folds)


def suggest(trial: optuna.Trial, seed: int) -> ModelParams:
    return ModelParams(
        n_estimators=trial.suggest_int("n_estimators", 100, 800, step=50),
        max_depth=trial.suggest_int("max_depth", 2, 8),
        max_bin=trial.suggest_categorical("max_bin", [256, 1024, 4096]),
        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        subsample=trial.suggest_float("subsample", 0.5, 1.0),
        colsample_bytree=trial.suggest_float("colsample_bytree", 0.4, 1.0),
        min_child_weight=trial.suggest_float("min_child_weight", 0.5, 30.0, log=True),
        scale_pos_weight=trial.suggest_float("scale_pos_weight", 1.0, 30.0, log=True),
        random_state=seed,
    )


def select(
    frame: pd.DataFrame,
    test_folds: list[Fold],
    search: Search,
    *,
    on_trial: Callable[[int, ModelParams, Evaluation], None] | None = None,
) -> Selection:
    """The parameters chosen, as the module says, on the validation folds of `test_folds`;
    `frame` is `labelled` feature rows, of which only those before the first test day are
    used. `on_trial(n, params, evaluation)` is called after each trial."""
    folds = validation_folds(test_folds)
    before = first_test_day(test_folds)
    data = fold_data(frame[days(frame) < before], folds)
    params_of: dict[int, ModelParams] = {}
    figures: dict[int, dict[str, float]] = {}  # each trial's METRICS

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        params = suggest(trial, search.seed)
        evaluation = score(data, params)
        params_of[trial.number], figures[trial.number] = params, evaluation.mean()
        if on_trial is not None:
            on_trial(trial.number, params, evaluation)
        return tuple(figures[trial.number][m] for m in METRICS)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize"] * len(METRICS), sampler=optuna.samplers.TPESampler(seed=search.seed)
    )
    study.optimize(objective, n_trials=search.trials)
    chosen = best_mean_rank(figures, [t.number for t in study.best_trials])
    return Selection(
        params=params_of[chosen],
        folds=folds,
        value=figures[chosen],
        trials=[{**t.params, **figures[t.number]} for t in study.trials],
        seen_before=before,
    )


def best_mean_rank(figures: dict[int, dict[str, float]], candidates: list[int]) -> int:
    """Of `candidates`, the trial whose METRICS rank best on average among all trials in
    `figures` (rank 1: the highest); a tie goes to the earlier trial."""
    ranks = pd.DataFrame(figures).T[list(METRICS)].rank(ascending=False).mean(axis=1)
    return int(min(candidates, key=lambda n: (ranks[n], n)))


def write_selection(selection: Selection, chosen_on: dict[str, Any], path: Path | None = None) -> Path:
    """Writes the selection, with what it was chosen on, where `selected_params` reads it."""
    target = path or Path(str(resources.files("fraudstream_modelling").joinpath(SELECTED_PARAMS_FILE)))
    target.write_text(json.dumps({**selection.as_json(), "chosen_on": chosen_on}, indent=2) + "\n")
    return target


def log_selection(
    selection: Selection,
    test: Evaluation,
    chosen_on: dict[str, Any],
    *,
    tracking_uri: str,
    experiment: str = "fraudstream-model-selection",
) -> str:
    """Records the search in MLflow: a run with what it was chosen on, the chosen parameters,
    their validation and test figures, and a nested run per trial. Returns the run's id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="model-selection") as parent:
        mlflow.log_params({f"chosen_on.{k}": v for k, v in chosen_on.items()})
        mlflow.log_params({f"selected.{k}": v for k, v in asdict(selection.params).items()})
        mlflow.log_dict(selection.as_json(), "selection.json")
        mlflow.log_metrics({f"validation_{name}": value for name, value in selection.value.items()})
        mlflow.log_metrics({f"test_{name}": value for name, value in test.mean().items()})
        for n, trial in enumerate(selection.trials):
            with mlflow.start_run(run_name=f"trial-{n}", nested=True):
                mlflow.log_params({k: v for k, v in trial.items() if k not in METRICS})
                mlflow.log_metrics({f"validation_{m}": trial[m] for m in METRICS})
        run_id: str = parent.info.run_id
    return run_id
