"""Reasons from the ONNX trees: the path attributions and the trees' root values add up to the
model's logit, so the score is explained exactly; the strongest credit goes to the feature
the label was made of."""

from __future__ import annotations

import numpy as np

from fraudstream_inference.explain import TreeExplainer
from fraudstream_modelling.model import ModelParams, onnx_scores, to_onnx, train


def test_attributions_add_up_to_the_score_and_find_the_feature_that_matters() -> None:
    rng = np.random.default_rng(0)
    features = rng.random((3000, 22)).astype(np.float32)
    labels = features[:, 4] + 0.2 * rng.random(3000) > 0.9
    onnx_model = to_onnx(train(features, labels, ModelParams(n_estimators=60)), 22)
    explainer = TreeExplainer(onnx_model)
    scores = onnx_scores(onnx_model, features[:50])
    for row, score in zip(features[:50], scores, strict=True):
        margin, credits = explainer.margin_and_credits(row)
        assert abs(1 / (1 + np.exp(-margin)) - score) < 1e-6
        roots = explainer.base + sum(tree[0].expected for tree in explainer.trees)
        assert abs(margin - (roots + credits.sum())) < 1e-9
    strongest = [int(np.argmax(np.abs(explainer.margin_and_credits(row)[1]))) for row in features[:200]]
    assert np.mean(np.asarray(strongest) == 4) > 0.75
