"""The simulator feeding the system: `fraudstream simulate` replays to Kafka, the real ingest
service validates it, and every simulated transaction reaches `transactions` exactly once,
with its labels on `labels` after it in event time; then the features service enriches it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.integration.features.streams import features_service
from tests.integration.features.test_one_definition import enriched_frame
from tests.platform import PLATFORM, ServiceProcess, Topics, drain
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = pytest.mark.integration

WORLD = ["--days", "20", "--customers", "400", "--terminals", "800"]


def simulate_to_kafka(topics: Topics, *arguments: str) -> None:
    """`fraudstream simulate` of WORLD, as a user runs it, into this test's topics."""
    replay = subprocess.run(
        [sys.executable, "-m", "fraudstream_cli.main", "simulate", *WORLD, *arguments],
        env={**os.environ, "FRAUDSTREAM_TOPIC_PREFIX": topics.prefix},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr


@pytest.mark.parametrize(("raw_format", "run_id"), [("json", ""), ("protobuf", "run7")])
def test_simulator_through_ingest(topics: Topics, ingest: ServiceProcess, raw_format: str, run_id: str) -> None:
    expected = simulate(SimulationConfig(n_customers=400, n_terminals=800, nb_days=20))
    limit = 5_000
    ingest.start()
    simulate_to_kafka(topics, "--limit", str(limit), "--format", raw_format, "--run-id", run_id)
    sent = expected.transactions.iloc[:limit].copy()
    if run_id:
        sent["transaction_id"] = run_id + "-" + sent["transaction_id"]

    out = [Transaction.FromString(m.value) for m in drain(topics(Topic.TRANSACTIONS), expected=limit)]
    assert sorted(t.transaction_id for t in out) == sorted(sent["transaction_id"])
    by_id = {t.transaction_id: t for t in out}
    first = sent.iloc[0]
    assert by_id[first["transaction_id"]].amount == pytest.approx(first["amount"])
    assert (
        by_id[first["transaction_id"]].event_time.ToDatetime().isoformat()
        == first["event_time"].tz_convert(None).isoformat()
    )

    labels = [Label.FromString(m.value) for m in drain(topics(Topic.LABELS), expected=limit)]
    assert sorted(label.transaction_id for label in labels) == sorted(sent["transaction_id"])
    assert all(label.label_time.seconds > label.transaction_time.seconds for label in labels)
    frauds = {label.transaction_id for label in labels if label.is_fraud}
    assert frauds == set(sent.loc[sent["is_fraud"], "transaction_id"])


def test_simulator_through_ingest_and_features(topics: Topics, ingest: ServiceProcess, tmp_path: Path) -> None:
    """The whole feature path: simulator -> transactions.raw -> ingest -> transactions (+ labels)
    -> features -> transactions.enriched, every vector equal to the backfill of the same history."""
    world = simulate(SimulationConfig(n_customers=400, n_terminals=800, nb_days=20))
    limit = 5_000
    ingest.start()
    simulate_to_kafka(topics, "--limit", str(limit))
    drain(topics(Topic.TRANSACTIONS), expected=limit)  # ingest is through: the input is complete

    # The online store's database of this test only: the ids are the simulator's plain ones.
    online_store = PLATFORM.feature_store_redis_url.rsplit("/", 1)[0] + "/2"
    redis.Redis.from_url(online_store).flushdb()
    apply_repository(online_store, tmp_path / "registry.db", tmp_path / "offline")
    features = features_service(topics, tmp_path, FRAUDSTREAM_FEATURE_STORE_REDIS_URL=online_store)
    features.start()
    try:
        streamed = enriched_frame(topics, limit)
    finally:
        assert features.terminate() == 0
    sent = world.transactions.iloc[:limit]
    expected = backfill(sent, world.labels[world.labels["transaction_id"].isin(set(sent["transaction_id"]))])
    expected = expected.set_index("transaction_id")
    assert_same(streamed.loc[expected.index], expected, list(FEATURE_NAMES))
