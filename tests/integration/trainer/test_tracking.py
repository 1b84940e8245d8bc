"""A training run on a small simulated history, end to end through Feast and the real MLflow
server: the lineage (window, counts, data hash, feature views), metrics, plots and the ONNX
model with its parity are all there afterwards."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import mlflow.onnx
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_simulator.config import SimulationConfig
from fraudstream_trainer.checks import DataBounds, check_training_set
from fraudstream_trainer.dataset import fingerprint, training_set
from fraudstream_trainer.gate import review_threshold
from fraudstream_trainer.model import ModelParams, check_parity, onnx_scores, scores, to_onnx, train
from fraudstream_trainer.performance import performance
from fraudstream_trainer.tracking import TrainingRecord, log_run
from tests.integration.trainer.history import history_in_feast
from tests.platform import PLATFORM

pytestmark = pytest.mark.integration


def test_a_training_run_is_logged_with_its_lineage(tmp_path: Path) -> None:
    world, feast = history_in_feast(SimulationConfig(n_customers=600, n_terminals=1200, nb_days=50), tmp_path)
    start = pd.Timestamp("2018-04-15", tz="UTC")
    end, week = start + pd.Timedelta(days=14), pd.Timedelta(days=7)
    known_at = end + week
    training = training_set(feast, world.labels, start=start, end=end, labels_known_at=known_at)
    summary = check_training_set(training, DataBounds(min_rows=5_000, min_frauds=20), labels_known_at=known_at)
    later = training_set(feast, world.labels, start=end + week, end=end + 2 * week, labels_known_at=end + 3 * week)

    params = ModelParams(n_estimators=100)
    names = list(FEATURE_NAMES)
    model = train(training[names].to_numpy(), training["is_fraud"].to_numpy(), params)
    onnx_model = to_onnx(model, len(names))
    parity = check_parity(model, onnx_model, later[names].to_numpy()[:10_000])
    test_scores = scores(model, later[names].to_numpy())
    metrics = performance(later, test_scores)
    record = TrainingRecord(
        params,
        start.isoformat(),
        end.isoformat(),
        known_at.isoformat(),
        summary,
        fingerprint(training),
        metrics,
        parity,
    )
    experiment = f"it-{uuid.uuid4().hex[:8]}"
    registered = f"fraud-detector-{experiment}"
    threshold = review_threshold(test_scores, 0.01)
    logged = log_run(
        PLATFORM.mlflow_url,
        experiment,
        record,
        test_labels=later["is_fraud"].to_numpy(),
        test_scores=test_scores,
        feature_importances=np.asarray(model.feature_importances_),
        onnx_model=onnx_model,
        threshold=threshold,
        registered_model=registered,
    )

    client = MlflowClient(PLATFORM.mlflow_url)
    run = client.get_run(logged.run_id)
    assert run.data.params["train_start"] == start.isoformat()
    assert run.data.params["labels_known_at"] == known_at.isoformat()
    assert run.data.params["feature_views"] == "transaction_features"
    assert run.data.params["model.n_estimators"] == "100"
    assert run.data.tags["data_fingerprint"] == fingerprint(training)
    assert run.data.metrics["train_rows"] == len(training)
    assert run.data.metrics["train_frauds"] == training["is_fraud"].sum()
    assert run.data.metrics["average_precision"] == pytest.approx(metrics["average_precision"])
    assert run.data.metrics["onnx_parity_max_abs_difference"] <= 1e-5
    plots = {a.path for a in client.list_artifacts(logged.run_id, "plots")}
    assert plots == {
        "plots/roc.png",
        "plots/precision_recall.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
    }

    # The registry: a version with its checksum and threshold; an alias resolves to it, and the
    # model loaded through the alias scores exactly as the one that was logged.
    assert logged.version == "1"
    client.set_registered_model_alias(registered, "challenger", logged.version)
    version = client.get_model_version_by_alias(registered, "challenger")
    assert version.tags["sha256"] == hashlib.sha256(onnx_model).hexdigest()
    assert float(version.tags["review_threshold"]) == threshold
    loaded = mlflow.onnx.load_model(f"models:/{registered}@challenger").SerializeToString()
    holdout = later[names].to_numpy()[:2_000]
    assert np.array_equal(onnx_scores(loaded, holdout), onnx_scores(onnx_model, holdout))
