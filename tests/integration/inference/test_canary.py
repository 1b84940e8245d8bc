"""A canary that misbehaves is rolled back with no human step: a challenger trained on
shuffled labels (the holdout's too, which the served model is refit on) takes half the
traffic; its scores, against the champion's on the same transactions, cross the PSI limit;
the replica takes it out of traffic, says so on `models.rollout`, and the champion answers
everything after."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fraudstream_common.schemas.v1.model_pb2 import RolloutEvent
from fraudstream_common.topics import Topic
from tests.integration.inference.serving import Served, serve
from tests.platform import PrivateRedis, Topics, drain

pytestmark = pytest.mark.integration


@pytest.fixture
def served(topics: Topics, tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Served]:
    served = serve(
        topics,
        tmp_path,
        private_redis,
        always_promote=True,
        FRAUDSTREAM_CANARY_SHARE="0.5",
        FRAUDSTREAM_ROLLBACK_MIN_REQUESTS="100",
    )
    yield served
    assert served.service.terminate() == 0


def rollout_events(topics: Topics, expected: int) -> list[RolloutEvent]:
    return [RolloutEvent.FromString(r.value) for r in drain(topics(Topic.MODELS_ROLLOUT), expected=expected, quiet=1)]


def test_a_misbehaving_canary_is_rolled_back(served: Served, topics: Topics) -> None:
    sets = served.datasets
    rng = np.random.default_rng(7)
    training, holdout = sets.training.copy(), sets.holdout.copy()
    for frame in (training, holdout):
        frame["is_fraud"] = rng.permutation(frame["is_fraud"].to_numpy())
    challenger = served.challenger_trainer().train_and_decide(
        dataclasses.replace(sets, training=training, holdout=holdout)
    )
    assert challenger.version == "2"
    events = rollout_events(topics, expected=2)
    assert [(e.step, e.alias, e.version) for e in events] == [
        ("installed", "champion", "1"),
        ("installed", "challenger", "2"),
    ]

    sample = served.world.transactions.sample(600, random_state=3)
    when = served.world.transactions["event_time"].max() + pd.Timedelta(hours=3)
    versions = []
    with httpx.Client(base_url=served.service.url, timeout=10) as http:
        for i, row in enumerate(sample.itertuples()):
            response = http.post(
                "/v1/predict",
                json={
                    "transaction_id": f"canary-{i}",
                    "customer_id": str(row.customer_id),
                    "terminal_id": str(row.terminal_id),
                    "amount": float(row.amount),  # type: ignore[arg-type]
                    "timestamp": (when + pd.Timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                },
                headers={"Authorization": f"Bearer {served.predict_key}"},
            )
            assert response.status_code == 200
            versions.append(response.json()["model_version"])

    assert "2" in versions[:250], "the canary took no traffic"
    (rolled_back,) = [e for e in rollout_events(topics, expected=3) if e.step == "rolled_back"]
    assert (rolled_back.alias, rolled_back.version) == ("challenger", "2")
    assert rolled_back.reason.startswith("scores: PSI")
    last_canary = max(i for i, v in enumerate(versions) if v == "2")
    assert last_canary < 400
    assert set(versions[last_canary + 1 :]) == {"1"}
    assert served.service.metric("fraudstream_inference_rollbacks_total") == 1
