"""The rollout's routing, its score comparison and its rollback verdicts (no I/O: models are
stand-ins with a version)."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream_common.schemas.v1.prediction_pb2 import ModelRole
from fraudstream_inference.rollout import Rollout, RolloutStep, psi, stable_share
from fraudstream_inference.settings import InferenceSettings
from tests.unit.inference.models import stand_in_model


def test_the_canary_share_is_stable_per_transaction_and_close_to_the_setting() -> None:
    rollout = Rollout(InferenceSettings(canary_share=0.2))
    rollout.install(stand_in_model("1", "champion"))
    rollout.install(stand_in_model("2", "challenger"))
    routed = [rollout.route(f"tx-{i}") for i in range(20_000)]
    canary = sum(role == ModelRole.MODEL_ROLE_CANARY for _, role in routed)
    assert canary / len(routed) == pytest.approx(0.2, abs=0.01)
    assert [rollout.route(f"tx-{i}")[1] for i in range(100)] == [role for _, role in routed[:100]]
    assert 0 <= stable_share("anything") < 1


def test_psi_is_small_for_the_same_distribution_and_large_for_another() -> None:
    rng = np.random.default_rng(0)
    champion = rng.beta(0.5, 30, 5000)
    assert psi(champion, rng.beta(0.5, 30, 5000)) < 0.05
    assert psi(champion, np.full(5000, 0.02)) > 1.0


def test_a_challenger_over_a_limit_is_rolled_back_once_enough_requests_were_seen() -> None:
    steps: list[RolloutStep] = []
    rollout = Rollout(
        InferenceSettings(canary_share=0.5, rollback_min_requests=50, rollback_max_p99_ms=5.0), steps.append
    )
    rollout.install(stand_in_model("1", "champion"))
    challenger = stand_in_model("2", "challenger")
    rollout.install(challenger)
    for _ in range(49):
        rollout.watch(challenger, failed=False, seconds=0.010, score=0.1, champion_score=0.1)
    assert rollout.challenger is challenger  # not judged yet
    rollout.watch(challenger, failed=False, seconds=0.010, score=0.1, champion_score=0.1)
    assert rollout.challenger is None
    assert steps[-1].step == "rolled_back"
    assert steps[-1].reason.startswith("latency: p99 10.0 ms")
    assert rollout.route("tx")[0] is rollout.champion


def test_errors_roll_a_challenger_back_and_a_promotion_clears_it() -> None:
    rollout = Rollout(InferenceSettings(canary_share=0.5, rollback_min_requests=10, rollback_max_error_rate=0.1))
    rollout.install(stand_in_model("1", "champion"))
    challenger = stand_in_model("2", "challenger")
    rollout.install(challenger)
    for n in range(10):
        rollout.watch(challenger, failed=n < 2, seconds=0.001, score=0.1, champion_score=0.1)
    assert rollout.challenger is None

    rollout.install(stand_in_model("3", "challenger"))
    rollout.install(stand_in_model("3", "champion"))
    assert rollout.challenger is None
    assert rollout.champion is not None
    assert rollout.champion.version == "3"
