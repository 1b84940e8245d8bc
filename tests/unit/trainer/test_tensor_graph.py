"""The trees as a tensor graph: standard ONNX operators only (so that ONNX Runtime's CUDA
provider can run every node), the same scores and labels as the native model and the
TreeEnsemble graph, on the CPU provider."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import xgboost as xgb

from fraudstream_modelling.model import ModelParams, check_parity, onnx_scores, scores, to_onnx, train
from fraudstream_trainer.tensor_graph import to_tensor_onnx
from tests.unit.modelling.test_model import data


def test_the_tensor_graph_scores_as_the_native_model_on_ten_thousand_rows() -> None:
    features, labels = data(20_000)
    model = train(features, labels, ModelParams(n_estimators=100, max_depth=5, scale_pos_weight=3.0))
    tensor = to_tensor_onnx(model, features.shape[1])
    holdout, _ = data(10_000, seed=1)
    assert check_parity(model, tensor, holdout) <= 1e-5
    assert np.max(np.abs(onnx_scores(tensor, holdout) - onnx_scores(to_onnx(model, 8), holdout))) <= 1e-5


def test_it_uses_standard_operators_only_and_the_tree_ensembles_outputs() -> None:
    features, labels = data(5_000)
    model = train(features, labels, ModelParams(n_estimators=20, max_depth=3))
    graph = onnx.load_from_string(to_tensor_onnx(model, features.shape[1]))
    assert {node.domain for node in graph.graph.node} == {""}
    # ONNX Runtime refuses IR versions newer than its own: the lowest one for the opset loads everywhere.
    assert graph.ir_version == onnx.helper.find_min_ir_version_for(graph.opset_import)
    assert "TreeEnsemble" not in {node.op_type for node in graph.graph.node}
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    ensemble = ort.InferenceSession(to_onnx(model, 8), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [o.name for o in ensemble.get_outputs()]
    rows = features[:500].astype(np.float32)
    labels_tensor, probabilities = session.run(None, {"features": rows})
    labels_ensemble, _ = ensemble.run(None, {"features": rows})
    assert probabilities.shape == (500, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    # Labels are the 0.5 cut of the score; a score within float noise of 0.5 may fall either way.
    near = np.abs(probabilities[:, 1] - 0.5) < 1e-6
    assert np.array_equal(labels_tensor[~near], labels_ensemble[~near])


@pytest.mark.parametrize("rows", [1, 7, 4096])
def test_any_batch_size_and_trees_of_uneven_shape(rows: int) -> None:
    """min_child_weight leaves trees of different sizes: the padding must reach no leaf."""
    features, labels = data(3_000, seed=2)
    model = train(features, labels, ModelParams(n_estimators=60, max_depth=6, min_child_weight=40.0))
    tensor = to_tensor_onnx(model, features.shape[1])
    batch, _ = data(rows, seed=3)
    assert np.max(np.abs(scores(model, batch) - onnx_scores(tensor, batch))) <= 1e-5


def test_trees_that_are_a_root_alone() -> None:
    features, labels = data(2_000, seed=4)
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3, gamma=1e9).fit(features.astype(np.float32), labels)
    tensor = to_tensor_onnx(model, features.shape[1])
    assert len(onnx.load_from_string(tensor).graph.initializer) > 0
    assert np.max(np.abs(scores(model, features) - onnx_scores(tensor, features))) <= 1e-6
