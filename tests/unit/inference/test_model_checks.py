"""A published model is refused when it cannot serve this service's features: a different
input signature, a graph of another width, thresholds that are not probabilities in order.
An acceptable one is warmed up and decides by its thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import FeatureSpec, ModelPublished
from fraudstream_common.schemas.v1.prediction_pb2 import Decision
from fraudstream_inference.model import ModelRefusedError, load
from fraudstream_inference.settings import Device
from fraudstream_trainer.model import ModelParams, to_onnx, train


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
