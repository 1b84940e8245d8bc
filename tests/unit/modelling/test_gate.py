"""The promotion gate on real models trained on simulated data: a challenger trained on
shuffled labels is rejected, a better one promoted, each with its reasons; and the review
threshold sends the budgeted share to review."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_modelling.evaluation import labelled
from fraudstream_modelling.gate import GatePolicy, decide, judge, review_threshold
from fraudstream_modelling.model import ModelParams, scores, train
from fraudstream_modelling.performance import performance
from fraudstream_modelling.protocol import Fold, train_test_split
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    world = simulate(SimulationConfig(n_customers=800, n_terminals=1600, nb_days=60))
    frame = labelled(backfill(world.transactions, world.labels), world.labels)
    return train_test_split(frame, Fold(pd.Timestamp("2018-05-01").date(), train_days=14, delay_days=7, test_days=14))


def metrics_of(training: pd.DataFrame, test: pd.DataFrame, labels: np.ndarray, params: ModelParams) -> dict[str, float]:
    names = list(FEATURE_NAMES)
    model = train(training[names].to_numpy(), labels, params)
    return performance(test, scores(model, test[names].to_numpy()))


def test_the_gate_rejects_a_worse_challenger_and_promotes_a_better_one(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    training, test = split
    labels = training["is_fraud"].to_numpy()
    champion = metrics_of(training, test, labels, ModelParams(n_estimators=30, max_depth=2))
    shuffled = np.random.default_rng(0).permutation(labels)
    worse = metrics_of(training, test, shuffled, ModelParams())
    better = metrics_of(training, test, labels, ModelParams())
    assert better["average_precision"] > champion["average_precision"] > worse["average_precision"]

    rejected = decide(worse, champion, GatePolicy())
    assert not rejected.promote
    assert any("below the champion's" in reason for reason in rejected.reasons)
    assert "average_precision" in rejected.refused_on
    promoted = decide(better, champion, GatePolicy())
    assert promoted.promote, promoted.reasons
    assert promoted.refused_on == ()
    assert all("no worse" in reason for reason in promoted.reasons)
    assert decide(worse, None, GatePolicy()).reasons == ("no champion yet",)


def test_the_review_threshold_sends_the_budgeted_share_to_review() -> None:
    scores_ = np.random.default_rng(1).beta(0.5, 20, size=100_000)
    threshold = review_threshold(scores_, 0.01)
    assert (scores_ >= threshold).mean() == pytest.approx(0.01, abs=1e-4)
    with pytest.raises(ValueError, match="between 0 and 1"):
        review_threshold(scores_, 1.0)


def test_the_gate_refuses_only_a_shortfall_beyond_the_holdouts_noise(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    training, test = split
    names = list(FEATURE_NAMES)
    labels = training["is_fraud"].to_numpy()
    champion = scores(train(training[names].to_numpy(), labels, ModelParams()), test[names].to_numpy())
    # The same ranking, blurred a little: worse on this holdout by a point estimate, not beyond its noise.
    blurred = champion + np.random.default_rng(3).normal(0, 0.01, len(champion))
    by_points = decide(performance(test, blurred), performance(test, champion), GatePolicy(card_precision_margin=0))
    assert not by_points.promote, "the blur must lose by the point estimates for this test to mean anything"
    judged = judge(test, blurred, champion, GatePolicy())
    assert judged.decision.promote, judged.decision.reasons
    assert all("95% bound on the shortfall" in reason for reason in judged.decision.reasons)

    shuffled = np.random.default_rng(0).permutation(labels)
    worse = scores(train(training[names].to_numpy(), shuffled, ModelParams()), test[names].to_numpy())
    refused = judge(test, worse, champion, GatePolicy())
    assert not refused.decision.promote
    assert refused.champion == performance(test, champion)
