"""The model: gradient-boosted trees (XGBoost), exported to ONNX, and the parity check that
refuses an ONNX model that disagrees with the native one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import Any

import numpy as np
import onnxruntime as ort
import xgboost as xgb
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

ONNX_INPUT = "features"
ONNX_OPSET = 15
# The saved model selection (fraudstream_modelling.selection): the trainer's default parameters.
SELECTED_PARAMS_FILE = "selected_params.json"


@dataclass(frozen=True)
class ModelParams:
    n_estimators: int = 400
    max_depth: int = 5
    # Bins per feature of the histogram split search; more find thresholds such as an
    # amount's nearer to where frauds begin.
    max_bin: int = 256
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    # Frauds are under 1% of transactions: weight them up (1 = no weighting).
    scale_pos_weight: float = 1.0
    random_state: int = 0


def selected_params() -> ModelParams:
    """The parameters of the saved selection, with what they were chosen on beside them in
    the file; ModelParams' own defaults are the hand-chosen ones it started from."""
    saved = json.loads(
        resources.files(__package__ or "fraudstream_modelling").joinpath(SELECTED_PARAMS_FILE).read_text()
    )
    known = {f.name for f in fields(ModelParams)}
    return ModelParams(**{name: value for name, value in saved["params"].items() if name in known})


class ParityError(Exception):
    """The ONNX model's scores differ from the native model's by more than allowed."""


class _AfterTree(xgb.callback.TrainingCallback):
    def __init__(self, after_tree: Callable[[int], bool]) -> None:
        self._after_tree = after_tree

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        return self._after_tree(epoch)


def train(
    features: np.ndarray,
    labels: np.ndarray,
    params: ModelParams,
    *,
    after_tree: Callable[[int], bool] | None = None,
    threads: int | None = None,
) -> xgb.XGBClassifier:
    """`after_tree(n)` is called once each tree is built (for progress); True stops training.
    `threads`: how many XGBoost trains with (None: the cores this process may run on)."""
    callbacks = None if after_tree is None else [_AfterTree(after_tree)]
    n_jobs = threads if threads is not None else len(os.sched_getaffinity(0))
    model = xgb.XGBClassifier(
        tree_method="hist", eval_metric="aucpr", n_jobs=n_jobs, callbacks=callbacks, **asdict(params)
    )
    model.fit(features.astype(np.float32), labels.astype(np.int32))
    return model


def scores(model: xgb.XGBClassifier, features: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(features.astype(np.float32))[:, 1], dtype=np.float64)


def to_onnx(model: xgb.XGBClassifier, n_features: int) -> bytes:
    proto = convert_xgboost(
        model, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))], target_opset=ONNX_OPSET
    )
    serialized: bytes = proto.SerializeToString()
    return serialized


def onnx_scores(onnx_model: bytes, features: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    _labels, probabilities = session.run(None, {ONNX_INPUT: features.astype(np.float32)})
    return np.asarray(probabilities, dtype=np.float64)[:, 1]


def check_parity(model: xgb.XGBClassifier, onnx_model: bytes, features: np.ndarray, tolerance: float = 1e-5) -> float:
    """The largest absolute score difference over `features`; raises ParityError above `tolerance`."""
    difference = float(np.max(np.abs(scores(model, features) - onnx_scores(onnx_model, features))))
    if difference > tolerance:
        raise ParityError(f"ONNX scores differ from the native model's by up to {difference:.2e} > {tolerance:.0e}")
    return difference
