"""A published model is refused when it cannot serve this service's features: a different
input signature, a graph of another width, thresholds that are not probabilities in order.
An acceptable one is warmed up and decides by its thresholds."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from prometheus_client import REGISTRY

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import FeatureSpec, ModelPublished
from fraudstream_common.schemas.v1.prediction_pb2 import Decision
from fraudstream_inference.model import (
    ModelRefusedError,
    ScoringModel,
    cuda_probe,
    cuda_unusable,
    load,
    resolve_device,
    tensor_min_rows_for,
)
from fraudstream_inference.settings import Device
from fraudstream_modelling.model import ModelParams, to_onnx, train
from fraudstream_trainer.tensor_graph import to_tensor_onnx


def onnx_of_width(width: int) -> bytes:
    rng = np.random.default_rng(0)
    features = rng.random((500, width)).astype(np.float32)
    return to_onnx(train(features, features[:, 0] > 0.8, ModelParams(n_estimators=5)), width)


def event(**changes: object) -> ModelPublished:
    fields: dict[str, object] = {
        "model_name": "m",
        "version": "7",
        "alias": "champion",
        "threshold": 0.3,
        "decline_threshold": 0.8,
        "input_signature": [FeatureSpec(name=n, dtype="float") for n in FEATURE_NAMES],
    }
    fields.update(changes)
    return ModelPublished(**fields)  # type: ignore[arg-type]


def load_it(published: ModelPublished, onnx_model: bytes) -> object:
    return load(published, onnx_model, device=Device.CPU, intra_op_threads=1, warmup_rows=8)


def test_an_acceptable_model_serves_and_decides_by_its_thresholds() -> None:
    model = load(event(), onnx_of_width(len(FEATURE_NAMES)), device=Device.CPU, intra_op_threads=1, warmup_rows=8)
    assert model.version == "7"
    assert model.provider == "CPUExecutionProvider"
    assert model.decide(0.1) == Decision.DECISION_APPROVE
    assert model.decide(0.3) == Decision.DECISION_REVIEW
    assert model.decide(0.95) == Decision.DECISION_DECLINE
    scores = model.scores(np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32))
    assert scores.shape == (3,)


@pytest.mark.parametrize(
    ("published", "width", "message"),
    [
        (event(input_signature=[FeatureSpec(name="x", dtype="float")]), len(FEATURE_NAMES), "input signature"),
        (event(), len(FEATURE_NAMES) - 1, "takes"),
        (event(threshold=0.9, decline_threshold=0.5), len(FEATURE_NAMES), "thresholds"),
    ],
)
def test_a_model_that_cannot_serve_is_refused(published: ModelPublished, width: int, message: str) -> None:
    with pytest.raises(ModelRefusedError, match=message):
        load_it(published, onnx_of_width(width))


def test_bytes_that_are_not_onnx_are_refused() -> None:
    with pytest.raises(ModelRefusedError, match="not a one-input ONNX model"):
        load_it(event(), b"not onnx")


def runs(graph: str) -> float:
    value = REGISTRY.get_sample_value(
        "fraudstream_inference_scoring_runs_total", {"graph": graph, "provider": "CPUExecutionProvider"}
    )
    return value or 0.0


def with_tensor_graph(trees: bytes, tensor: bytes, tensor_min_rows: int, warmup_rows: int = 64) -> ScoringModel:
    return load(
        event(),
        trees,
        device=Device.CPU,
        intra_op_threads=1,
        warmup_rows=warmup_rows,
        tensor_model=tensor,
        tensor_min_rows=tensor_min_rows,
    )


def test_batches_from_the_threshold_go_to_the_tensor_graph_with_the_same_scores() -> None:
    width = len(FEATURE_NAMES)
    rng = np.random.default_rng(0)
    features = rng.random((2_000, width)).astype(np.float32)
    trained = train(features, features[:, 0] + features[:, 1] > 1.2, ModelParams(n_estimators=30))
    model = with_tensor_graph(to_onnx(trained, width), to_tensor_onnx(trained, width), tensor_min_rows=4, warmup_rows=8)
    assert "from 4 rows: tensor on CPUExecutionProvider" in model.placement()
    rows = rng.random((8, width)).astype(np.float32)
    before = runs("tree_ensemble"), runs("tensor")
    single = np.concatenate([model.scores(row[None, :]) for row in rows[:3]])
    batch = model.scores(rows)
    assert (runs("tree_ensemble") - before[0], runs("tensor") - before[1]) == (3, 1)
    assert np.max(np.abs(single - batch[:3])) <= 1e-5


def test_a_tensor_graph_that_disagrees_with_the_tree_ensemble_is_refused() -> None:
    width = len(FEATURE_NAMES)
    features = np.random.default_rng(1).random((2_000, width)).astype(np.float32)
    trained = train(features, features[:, 0] > 0.5, ModelParams(n_estimators=30))
    other = train(features, features[:, 1] > 0.5, ModelParams(n_estimators=30))
    with pytest.raises(ModelRefusedError, match="tensor graph"):
        with_tensor_graph(to_onnx(trained, width), to_tensor_onnx(other, width), tensor_min_rows=2)


def test_cuda_asked_for_where_it_is_not_usable_stops_the_service_and_auto_scores_on_the_cpu() -> None:
    if cuda_unusable() is None:
        pytest.skip("this machine has a usable CUDA provider")
    with pytest.raises(RuntimeError, match="FRAUDSTREAM_DEVICE=cuda"):
        resolve_device(Device.CUDA)
    assert resolve_device(Device.AUTO) is Device.CPU
    assert tensor_min_rows_for(Device.CPU, None) == 0  # the TreeEnsemble graph is faster there
    assert tensor_min_rows_for(Device.CUDA, None) >= 1
    assert tensor_min_rows_for(Device.CPU, 64) == 64


def test_the_cuda_probe_loads_on_runtimes_older_than_the_onnx_package() -> None:
    probe = onnx.load_from_string(cuda_probe())
    assert probe.ir_version == onnx.helper.find_min_ir_version_for(probe.opset_import)
    session = ort.InferenceSession(cuda_probe(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.array([-1.0], dtype=np.float32)})[0].tolist() == [0.0]
