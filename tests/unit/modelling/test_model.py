"""The model exports to ONNX with the same scores, and a model that disagrees is refused."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream_modelling.model import ModelParams, ParityError, check_parity, onnx_scores, scores, to_onnx, train


def data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 8)) * [1, 10, 100, 1000, 0.1, 1, 1, 5]
    signal = features[:, 0] + features[:, 1] / 10 * features[:, 2] / 100 + rng.normal(size=rows)
    return features, signal > 1.5


def test_onnx_scores_equal_the_native_model_on_ten_thousand_rows() -> None:
    features, labels = data(20_000)
    model = train(features, labels, ModelParams(n_estimators=100, max_depth=5))
    exported = to_onnx(model, features.shape[1])
    holdout, _ = data(10_000, seed=1)
    assert check_parity(model, exported, holdout) <= 1e-5
    assert np.corrcoef(scores(model, holdout), onnx_scores(exported, holdout))[0, 1] > 0.999999


def test_an_onnx_model_of_another_model_is_refused() -> None:
    features, labels = data(5_000)
    model = train(features, labels, ModelParams(n_estimators=50))
    other = train(features, ~labels, ModelParams(n_estimators=50))
    with pytest.raises(ParityError, match="differ"):
        check_parity(model, to_onnx(other, features.shape[1]), features)
