"""The prediction record's features, encoded for a pass at once, parse as the message
protobuf's own encoder would build."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.prediction_pb2 import FeatureValue, Prediction
from fraudstream_inference.predictions import FeatureValues


def _by_protobuf(names: list[str], values: np.ndarray, ages: np.ndarray) -> Prediction:
    return Prediction(
        transaction_id="tx-1",
        score=0.25,
        features=[
            FeatureValue(name=name, value=float(value), age_seconds=float(age))
            for name, value, age in zip(names, values, ages, strict=True)
        ],
    )


@pytest.mark.parametrize(
    "names",
    [list(FEATURE_NAMES), ["x" * 200, "é", "y"]],  # a name (and a field) longer than 127 bytes: two-byte lengths
)
def test_encoded_features_parse_as_protobufs_own(names: list[str]) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(scale=1e4, size=(5, len(names))).astype(np.float32)
    values[0] = 0.0  # zeros, which protobuf leaves out and the encoder writes
    ages = rng.exponential(3600.0, size=values.shape)
    ages[1] = 0.0
    encoded = FeatureValues(names).encode(values, ages)
    assert len(encoded) == len(values)
    head = Prediction(transaction_id="tx-1", score=0.25).SerializeToString()
    for row, features in enumerate(encoded):
        parsed = Prediction.FromString(head + features)
        assert parsed == _by_protobuf(names, values[row], ages[row])


def test_rows_of_the_wrong_width_are_refused() -> None:
    encoder = FeatureValues(["a", "b"])
    with pytest.raises(ValueError, match="2 x 2"):
        encoder.encode(np.zeros((2, 3)), np.zeros((2, 3)))
    assert encoder.encode(np.zeros((0, 2)), np.zeros((0, 2))) == []
