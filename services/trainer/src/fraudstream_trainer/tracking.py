"""Everything about a training run, in MLflow: parameters, metrics, the training window, row
and fraud counts, a hash of the training data, the feature views it came from, plots (ROC and
precision-recall curves, calibration, feature importance), the ONNX model and its parity."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import mlflow.onnx
import numpy as np
import onnx
from matplotlib.figure import Figure
from mlflow import MlflowClient
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_modelling.model import ModelParams
from fraudstream_registry.registry import (
    JUDGED_FOLDER,
    JUDGED_SHA256_TAG,
    ONNX_FILE,
    TENSOR_FOLDER,
    TENSOR_SHA256_TAG,
)

FEATURE_VIEWS = ("transaction_features",)
# What MLflow infers for the model, named here: its inference imports the model in a process of
# its own, about 2.5 s of every training run.
MODEL_REQUIREMENTS = [*mlflow.onnx.get_default_pip_requirements(), f"numpy=={np.__version__}"]


@dataclass(frozen=True)
class Lineage:
    """What a run knows before its data passed the checks: the model's parameters and its window."""

    params: ModelParams
    train_start: str
    train_end: str
    labels_known_at: str


@dataclass(frozen=True)
class TrainingRecord:
    lineage: Lineage
    summary: dict[str, float]
    data_fingerprint: str
    metrics: dict[str, float]
    parity_max_abs_difference: float
    tensor_parity_max_abs_difference: float | None = None


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    # The registry version, when the model was registered.
    version: str | None


def log_run(
    tracking_uri: str,
    experiment: str,
    record: TrainingRecord,
    *,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    feature_importances: np.ndarray,
    onnx_model: bytes,
    threshold: float,
    tensor_model: bytes | None = None,
    judged_model: bytes | None = None,
    decline_threshold: float | None = None,
    registered_model: str | None = None,
    native_model: bytes | None = None,
    run_tags: Mapping[str, str] | None = None,
    extra_metrics: Mapping[str, float] | None = None,
    documents: Mapping[str, Mapping[str, Any]] | None = None,
) -> LoggedRun:
    """Logs one run, the ONNX model as an MLflow model (onnx flavour, servable by `mlflow
    models serve`), and registers it under `registered_model` when given, with its checksum,
    thresholds, data fingerprint and metrics as version tags. `native_model` (XGBoost's UBJSON)
    is kept beside it, so that the parity can be checked again, and `tensor_model` (the same
    trees as a tensor graph, fraudstream_trainer.tensor_graph) as `tensor/model.onnx`, its
    checksum a version tag; `judged_model`, the model the gate judged where another is served,
    as `judged/model.onnx`, its checksum a version tag; `documents` go in as JSON."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as scratch:
        mlflow.set_tags({"data_fingerprint": record.data_fingerprint, **(run_tags or {})})
        _log_lineage(record.lineage)
        mlflow.log_metrics({f"train_{k}": v for k, v in record.summary.items()})
        mlflow.log_metrics(record.metrics)
        mlflow.log_metrics(dict(extra_metrics or {}))
        mlflow.log_metric("onnx_parity_max_abs_difference", record.parity_max_abs_difference)
        if record.tensor_parity_max_abs_difference is not None:
            mlflow.log_metric("tensor_parity_max_abs_difference", record.tensor_parity_max_abs_difference)
        mlflow.log_metric("review_threshold", threshold)
        if decline_threshold is not None:
            mlflow.log_metric("decline_threshold", decline_threshold)
        for name, document in (documents or {}).items():
            mlflow.log_dict(dict(document), f"{name}.json")
        folder = Path(scratch)
        if native_model is not None:
            (folder / "model.ubj").write_bytes(native_model)
            mlflow.log_artifact(str(folder / "model.ubj"), artifact_path="native")
        for artifact_folder, artifact in ((TENSOR_FOLDER, tensor_model), (JUDGED_FOLDER, judged_model)):
            if artifact is not None:
                (folder / artifact_folder).mkdir()
                (folder / artifact_folder / ONNX_FILE).write_bytes(artifact)
                mlflow.log_artifact(str(folder / artifact_folder / ONNX_FILE), artifact_path=artifact_folder)
        for name, figure in _plots(test_labels, test_scores, feature_importances).items():
            figure.savefig(folder / f"{name}.png", dpi=80)
            plt.close(figure)
            mlflow.log_artifact(str(folder / f"{name}.png"), artifact_path="plots")
        logged = mlflow.onnx.log_model(
            onnx.load_from_string(onnx_model),
            name="model",
            registered_model_name=registered_model,
            input_example=np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32),
            pip_requirements=MODEL_REQUIREMENTS,
        )
        version = None if logged.registered_model_version is None else str(logged.registered_model_version)
        if registered_model is not None and version is not None:
            client = MlflowClient(tracking_uri)
            tags = {
                "sha256": hashlib.sha256(onnx_model).hexdigest(),
                **({} if tensor_model is None else {TENSOR_SHA256_TAG: hashlib.sha256(tensor_model).hexdigest()}),
                **({} if judged_model is None else {JUDGED_SHA256_TAG: hashlib.sha256(judged_model).hexdigest()}),
                "review_threshold": repr(threshold),
                **({} if decline_threshold is None else {"decline_threshold": repr(decline_threshold)}),
                "data_fingerprint": record.data_fingerprint,
                "train_start": record.lineage.train_start,
                "train_end": record.lineage.train_end,
                "features": ",".join(FEATURE_NAMES),
                **{f"metric.{k}": repr(v) for k, v in record.metrics.items()},
            }
            for key, value in tags.items():
                client.set_model_version_tag(registered_model, version, key, value)
        return LoggedRun(run.info.run_id, logged.model_uri, version)


def log_refused_run(
    tracking_uri: str, experiment: str, lineage: Lineage, *, reasons: list[str], run_tags: Mapping[str, str]
) -> str:
    """A run that stopped before a model was logged (its data or its ONNX refused): the
    lineage it had, and why it stopped. Returns its run id."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.set_tags({**run_tags, "refused_because": "; ".join(reasons)[:5000]})
        _log_lineage(lineage)
        mlflow.log_dict({"reasons": reasons}, "refused.json")
        return str(run.info.run_id)


def _log_lineage(lineage: Lineage) -> None:
    mlflow.log_params({f"model.{k}": v for k, v in asdict(lineage.params).items()})
    mlflow.log_params(
        {
            "train_start": lineage.train_start,
            "train_end": lineage.train_end,
            "labels_known_at": lineage.labels_known_at,
            "feature_views": ",".join(FEATURE_VIEWS),
            "features": ",".join(FEATURE_NAMES),
        }
    )


def _plots(labels: np.ndarray, scores: np.ndarray, importances: np.ndarray) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    fpr, tpr, _ = roc_curve(labels, scores)
    figure, axes = plt.subplots()
    axes.plot(fpr, tpr)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    figures["roc"] = figure
    precision, recall, _ = precision_recall_curve(labels, scores)
    figure, axes = plt.subplots()
    axes.plot(recall, precision)
    axes.set(xlabel="recall", ylabel="precision", title="precision-recall")
    figures["precision_recall"] = figure
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
    figure, axes = plt.subplots()
    axes.plot(predicted, observed, marker="o")
    axes.plot([0, 1], [0, 1], linestyle=":")
    axes.set(xlabel="mean score", ylabel="fraud share", title="calibration")
    figures["calibration"] = figure
    order = np.argsort(importances)
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.barh(np.asarray(FEATURE_NAMES)[order], importances[order])
    axes.set(title="feature importance (gain)")
    figure.tight_layout()
    figures["feature_importance"] = figure
    return figures
