"""The promotion gate through the real registry: a challenger trained on shuffled labels is
rejected and the champion alias stays; a better one is promoted, the alias moves and the event
is published; every decision is on its MLflow run with its reasons."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_simulator.config import SimulationConfig
from fraudstream_trainer.pipeline import Datasets, Outcome, Trainer, TrainRequest
from fraudstream_trainer.settings import TrainerSettings
from tests.integration.trainer.history import history_in_feast
from tests.platform import PLATFORM

pytestmark = pytest.mark.integration


def shuffled(sets: Datasets, seed: int) -> Datasets:
    training = sets.training.copy()
    training["is_fraud"] = np.random.default_rng(seed).permutation(training["is_fraud"].to_numpy())
    return dataclasses.replace(sets, training=training)


def test_the_gate_rejects_a_worse_challenger_and_promotes_a_better_one(tmp_path: Path) -> None:
    world, feast = history_in_feast(SimulationConfig(n_customers=600, n_terminals=1200, nb_days=50), tmp_path)
    experiment = f"it-{uuid.uuid4().hex[:8]}"
    settings = TrainerSettings(
        mlflow_tracking_uri=PLATFORM.mlflow_url,
        mlflow_experiment=experiment,
        registered_model=f"fraud-detector-{experiment}",
        n_estimators=100,
        min_rows=5000,
        min_frauds=20,
    )
    published: list[ModelPublished] = []
    trainer = Trainer(settings, feast, lambda: world.labels, published.append, progress=False)
    client = MlflowClient(PLATFORM.mlflow_url)

    def champion() -> str:
        return str(client.get_model_version_by_alias(settings.registered_model, "champion").version)

    sets = trainer.datasets(TrainRequest("weak", "test"))
    assert sets is not None
    weak = trainer.train_and_decide(shuffled(sets, seed=1))
    assert (weak.outcome, weak.reasons) == (Outcome.PROMOTED, ("no champion yet",))

    better = trainer.train_and_decide(dataclasses.replace(sets, request=TrainRequest("better", "test")))
    assert better.outcome is Outcome.PROMOTED, better.reasons
    assert better.champion_metrics is not None
    assert better.metrics["average_precision"] > better.champion_metrics["average_precision"] + 0.1
    assert champion() == better.version == "2"
    assert [event.version for event in published] == ["1", "2"]

    worse = trainer.train_and_decide(shuffled(dataclasses.replace(sets, request=TrainRequest("worse", "test")), 2))
    assert worse.outcome is Outcome.REJECTED
    assert any("average_precision" in r and "below the champion's" in r for r in worse.reasons), worse.reasons
    assert champion() == "2"
    assert [event.version for event in published] == ["1", "2"]
    assert client.get_model_version(settings.registered_model, "3").tags["gate"] == "rejected"

    # Every decision, promote or reject, is on its run with its reasons.
    assert worse.run_id is not None
    run = client.get_run(worse.run_id)
    assert run.data.tags["gate.promote"] == "false"
    assert run.data.tags["gate.reasons"] == "; ".join(worse.reasons)
    assert run.data.tags["outcome"] == "rejected"
    gate = client.download_artifacts(worse.run_id, "gate.json", str(tmp_path))
    assert '"champion_version": "2"' in Path(gate).read_text()
