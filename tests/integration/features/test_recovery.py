"""The features service loses nothing and counts nothing twice: across a SIGKILL mid-stream
(state rebuilt from the changelog equals a replay of the source topics; the online store
holds what an uninterrupted run leaves) and across an outage of the online store (it stops
consuming, stays alive, and resumes)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.features.history import FeatureStates
from fraudstream_common.features.state import CustomerState, TerminalState
from fraudstream_common.topics import Topic
from fraudstream_feature_store.repository import transaction_features_dir
from fraudstream_feature_store.store import FeatureStateStore, apply_repository
from tests.integration.features.streams import (
    feature_store,
    features_service,
    produce_history,
    simulated_history,
)
from tests.integration.features.test_one_definition import enriched_frame
from tests.platform import PrivateRedis, ServiceProcess, Topics, drain
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = pytest.mark.integration

SMALL_BATCHES = {"FRAUDSTREAM_BATCH_MAX_MESSAGES": "200", "FRAUDSTREAM_PUSH_MAX_ROWS": "200"}


def events_applied(service: ServiceProcess) -> float:
    return service.metric("fraudstream_features_events_total")


def changelog_states(topics: Topics) -> FeatureStates:
    states = FeatureStates()
    for topic, states_of, kind in (
        (Topic.FEATURES_CUSTOMER_STATE, states.customers, CustomerState),
        (Topic.FEATURES_TERMINAL_STATE, states.terminals, TerminalState),
    ):
        latest: dict[bytes, bytes] = {}
        for record in drain(topics(topic), quiet=2.0):
            if record.key is not None:
                latest[record.key] = record.value
        for key, value in latest.items():
            states_of[key.decode()] = kind.from_json(value.decode())  # type: ignore[assignment]
    return states


def assert_online_store_holds(store: FeatureStateStore, states: FeatureStates) -> None:
    for customer_id, customer in states.customers.items():
        assert store.read(customer_id, "none")[0] == customer, customer_id
    for terminal_id, terminal in states.terminals.items():
        assert store.read("none", terminal_id)[1] == terminal, terminal_id


def test_sigkill_mid_stream_then_restart(topics: Topics, tmp_path: Path) -> None:
    history = simulated_history()
    store = feature_store(tmp_path)
    expected = backfill(history.transactions, history.labels).set_index("transaction_id")
    total_events = len(history.transactions) + len(history.labels)
    produce_history(topics, history)

    service = features_service(topics, tmp_path, **SMALL_BATCHES)
    service.start()
    deadline = time.monotonic() + 120
    while events_applied(service) < total_events / 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    service.kill()

    service.start()
    streamed = enriched_frame(topics, len(expected))
    assert_same(streamed.loc[expected.index], expected, list(FEATURE_NAMES))
    # Applied after the restart: what the killed run had not committed, not everything.
    assert 0 < events_applied(service) < total_events

    replayed = history.final_states()
    assert changelog_states(topics) == replayed

    deadline = time.monotonic() + 60
    while service.metric("fraudstream_features_offline_rows_total") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert service.terminate() == 0  # pushes deferred terminal states
    assert_online_store_holds(store, replayed)
    offline = pd.read_parquet(transaction_features_dir(tmp_path / "offline"))
    assert offline["transaction_id"].is_unique, "an uncommitted offline part survived the kill"
    assert set(offline["transaction_id"]) == set(expected.index)


def test_online_store_outage_holds_the_stream_back(topics: Topics, tmp_path: Path, private_redis: PrivateRedis) -> None:
    history = simulated_history()
    store = FeatureStateStore(apply_repository(private_redis.url, tmp_path / "registry.db", tmp_path / "offline"))
    expected = backfill(history.transactions, history.labels).set_index("transaction_id")
    produce_history(topics, history)

    service = features_service(
        topics,
        tmp_path,
        FRAUDSTREAM_FEATURE_STORE_REDIS_URL=private_redis.url,
        FRAUDSTREAM_REDIS_RETRY_MAX_SECONDS="0.5",
        **SMALL_BATCHES,
    )
    service.start()
    deadline = time.monotonic() + 120
    while events_applied(service) < 5_000:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    private_redis.kill()

    deadline = time.monotonic() + 30
    while service.checks()["customers"]:
        assert time.monotonic() < deadline, "the stream went on without its online store"
        time.sleep(0.05)
    assert service.readiness() == 503
    assert service.checks()["online_store"] is False
    held_at = events_applied(service)
    time.sleep(2)
    assert events_applied(service) == held_at, "the stream went on consuming without pushing"
    assert service.process is not None
    assert service.process.poll() is None, "the service crashed when Redis went away"
    assert service.metric("fraudstream_stream_store_unavailable_total") >= 1

    private_redis.start()
    service.wait_ready(timeout=30)
    streamed = enriched_frame(topics, len(expected))
    assert_same(streamed.loc[expected.index], expected, list(FEATURE_NAMES))
    assert service.terminate() == 0
    assert_online_store_holds(store, history.final_states())
