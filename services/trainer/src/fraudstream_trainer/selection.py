"""Model selection without the test folds, as the handbook's chapter 5 does it.

The hyperparameters are searched on validation folds: as many as the test folds and shaped
like them, the latest training `delay + test` days before the earliest test fold does, so every
validation test day ends before the first test day. The search (Optuna's TPE sampler, seeded,
a fixed number of trials) maximises the mean average precision over the validation folds; it
is handed only the rows before the first test day, so it cannot read a test fold. The chosen
parameters are then scored once on the test folds.

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

from fraudstream_trainer.evaluation import Evaluation, fold_data, score
from fraudstream_trainer.model import SELECTED_PARAMS_FILE, ModelParams
from fraudstream_trainer.protocol import Fold, days, prequential_folds

OBJECTIVE = "average_precision"


@dataclass(frozen=True)
class Search:
    trials: int = 30
    seed: int = 0


@dataclass
class Selection:
    params: ModelParams
    folds: list[Fold]  # the validation folds
    value: float  # mean average precision of `params` over them
    trials: list[dict[str, Any]] = field(default_factory=list)  # each trial's parameters and value
    seen_before: date | None = None  # the search was handed only rows before this day

    def as_json(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "objective": f"mean {OBJECTIVE} over the validation folds",
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
    """The parameters with the best mean average precision over the validation folds of
    `test_folds`; `frame` is `labelled` feature rows, of which only those before the first
    test day are used. `on_trial(n, params, evaluation)` is called after each trial."""
    folds = validation_folds(test_folds)
    before = first_test_day(test_folds)
    data = fold_data(frame[days(frame) < before], folds)
    evaluations: dict[int, tuple[ModelParams, Evaluation]] = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, search.seed)
        evaluation = score(data, params)
        evaluations[trial.number] = (params, evaluation)
        if on_trial is not None:
            on_trial(trial.number, params, evaluation)
        return evaluation.mean()[OBJECTIVE]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=search.seed))
    study.optimize(objective, n_trials=search.trials)
    best_params, _ = evaluations[study.best_trial.number]
    return Selection(
        params=best_params,
        folds=folds,
        value=float(study.best_value),
        trials=[{**t.params, OBJECTIVE: t.value} for t in study.trials],
        seen_before=before,
    )


def write_selection(selection: Selection, chosen_on: dict[str, Any], path: Path | None = None) -> Path:
    """Writes the selection, with what it was chosen on, where `selected_params` reads it."""
    target = path or Path(str(resources.files("fraudstream_trainer").joinpath(SELECTED_PARAMS_FILE)))
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
        mlflow.log_metric(f"validation_{OBJECTIVE}", selection.value)
        mlflow.log_metrics({f"test_{name}": value for name, value in test.mean().items()})
        for n, trial in enumerate(selection.trials):
            with mlflow.start_run(run_name=f"trial-{n}", nested=True):
                mlflow.log_params({k: v for k, v in trial.items() if k != OBJECTIVE})
                if trial[OBJECTIVE] is not None:
                    mlflow.log_metric(f"validation_{OBJECTIVE}", trial[OBJECTIVE])
        run_id: str = parent.info.run_id
    return run_id
