"""The model the GPU benchmarks score (tensor_graph.py, gpu_path.py): the trainer's default
parameters trained on random rows of the service's width, exported both ways as the trainer
exports it (the TreeEnsemble graph and the tensor graph).

A GPU machine often lacks the trainer's dependencies (XGBoost, onnxmltools). Export the graphs
where the trainer is installed and read them there:

    uv run python benchmarks/tensor_graph.py --export-graphs /tmp/graphs   # writes and exits
    python benchmarks/tensor_graph.py --graphs /tmp/graphs                 # on the GPU machine
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fraudstream_common.features.definitions import FEATURE_NAMES

GRAPH_FILES = {"tree_ensemble": "tree_ensemble.onnx", "tensor": "tensor.onnx"}
PARAMETERS_FILE = "model.json"


@dataclass(frozen=True)
class ModelGraphs:
    tree_ensemble: bytes
    tensor: bytes
    trees: int
    max_depth: int


def trained() -> ModelGraphs:
    """Trains and exports the model (needs the trainer's dependencies)."""
    from fraudstream_modelling.model import ModelParams, to_onnx, train
    from fraudstream_trainer.tensor_graph import to_tensor_onnx

    rng = np.random.default_rng(0)
    width = len(FEATURE_NAMES)
    features = rng.random((20_000, width), dtype=np.float32)
    labels = (features[:, 0] + 0.3 * rng.random(20_000) > 1.0).astype(np.int32)
    params = ModelParams()
    model = train(features, labels, params)
    return ModelGraphs(to_onnx(model, width), to_tensor_onnx(model, width), params.n_estimators, params.max_depth)


def export(graphs: ModelGraphs, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / GRAPH_FILES["tree_ensemble"]).write_bytes(graphs.tree_ensemble)
    (directory / GRAPH_FILES["tensor"]).write_bytes(graphs.tensor)
    (directory / PARAMETERS_FILE).write_text(json.dumps({"trees": graphs.trees, "max_depth": graphs.max_depth}))


def model_graphs(directory: Path | None) -> ModelGraphs:
    """The graphs exported to `directory`, or freshly trained ones where it is None."""
    if directory is None:
        return trained()
    parameters = json.loads((directory / PARAMETERS_FILE).read_text())
    return ModelGraphs(
        (directory / GRAPH_FILES["tree_ensemble"]).read_bytes(),
        (directory / GRAPH_FILES["tensor"]).read_bytes(),
        parameters["trees"],
        parameters["max_depth"],
    )
