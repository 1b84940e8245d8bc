"""A model selection recorded in the real MLflow server: the chosen parameters, what they were
chosen on, their validation and test figures, and one nested run per trial."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date

import pytest
from mlflow import MlflowClient

from fraudstream_cli.backfill import backfill
from fraudstream_modelling.evaluation import METRICS, evaluate, labelled
from fraudstream_modelling.protocol import prequential_folds
from fraudstream_modelling.selection import Search, log_selection, select
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.platform import PLATFORM

pytestmark = pytest.mark.integration


def test_a_selection_and_its_trials_are_recorded_in_mlflow() -> None:
    world = simulate(SimulationConfig(n_customers=300, n_terminals=600, nb_days=60))
    frame = labelled(backfill(world.transactions, world.labels), world.labels)
    test_folds = prequential_folds(date(2018, 5, 8), n_folds=2)
    selection = select(frame, test_folds, Search(trials=2, seed=5))
    test = evaluate(frame, selection.params, test_folds)
    experiment = f"it-selection-{uuid.uuid4().hex[:8]}"

    run_id = log_selection(
        selection, test, {"labels": "reported"}, tracking_uri=PLATFORM.mlflow_url, experiment=experiment
    )

    client = MlflowClient(PLATFORM.mlflow_url)
    run = client.get_run(run_id)
    assert run.data.params["chosen_on.labels"] == "reported"
    assert {k: run.data.params[f"selected.{k}"] for k in asdict(selection.params)} == {
        k: str(v) for k, v in asdict(selection.params).items()
    }
    for metric in METRICS:
        assert run.data.metrics[f"validation_{metric}"] == pytest.approx(selection.value[metric])
    assert run.data.metrics["test_average_precision"] == pytest.approx(test.mean()["average_precision"])
    trials = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=10
    )
    for metric in METRICS:
        assert sorted(t.data.metrics[f"validation_{metric}"] for t in trials) == pytest.approx(
            sorted(t[metric] for t in selection.trials)
        )
