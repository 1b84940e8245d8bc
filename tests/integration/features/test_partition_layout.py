"""Partitions added to a topic after it holds state: Kafka allows it (`kafka-topics --alter`, a
Strimzi KafkaTopic's `partitions` raised), and it moves keys away from the state their changelog
partition holds. The features service and `fraudstream platform up` refuse it by name, rather
than restore the wrong state or start over forever."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewPartitions

from fraudstream_cli.platform.kafka import ensure_topics
from fraudstream_cli.platform.processes import PlatformError
from fraudstream_common.topics import Topic
from fraudstream_simulator.config import SimulationConfig
from tests.integration.features.streams import feature_store, features_service, produce_history, simulated_history
from tests.platform import PLATFORM, ServiceProcess, Topics, eventually

pytestmark = pytest.mark.integration

GROWN = 8  # the topics fixture creates 4


def grow(topics: Topics, *grown: Topic) -> None:
    admin = AdminClient({"bootstrap.servers": PLATFORM.kafka_bootstrap})
    for future in admin.create_partitions([NewPartitions(topics(t), GROWN) for t in grown]).values():
        future.result()
    eventually(  # acknowledged before the metadata shows them
        lambda: all(len(admin.list_topics(timeout=10).topics[topics(t)].partitions) == GROWN for t in grown),
        f"{GROWN} partitions in the metadata",
        timeout=30,
    )


def exit_log(service: ServiceProcess, timeout: float = 90) -> str:
    """The service's log once it has exited on its own; fails if it is still running."""
    assert service.process is not None
    try:
        service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.kill()
        raise
    assert service.process.returncode == 1
    return service.log_path.read_text()


def test_an_input_grown_apart_from_its_changelog_is_refused_by_name(topics: Topics, tmp_path: Path) -> None:
    grow(topics, Topic.TRANSACTIONS)
    expected = f"{topics(Topic.FEATURES_CUSTOMER_STATE)} has 4 partitions and {topics(Topic.TRANSACTIONS)} {GROWN}"

    with pytest.raises(PlatformError, match=expected):
        ensure_topics({"bootstrap.servers": PLATFORM.kafka_bootstrap}, topics.prefix)
    service = features_service(topics, tmp_path)
    service.start(wait_ready=False)
    assert expected in exit_log(service)


def test_state_kept_before_every_topic_grew_is_refused_not_lost(topics: Topics, tmp_path: Path) -> None:
    history = simulated_history(SimulationConfig(n_customers=100, n_terminals=200, nb_days=10))
    produce_history(topics, history)
    feature_store(tmp_path)  # the Feast repository the service writes to
    service = features_service(topics, tmp_path)
    service.start()
    total = len(history.transactions) + len(history.labels)
    eventually(lambda: service.metric("fraudstream_features_events_total") >= total, "every event applied", 120)
    assert service.terminate() == 0

    # Grown together, as the first test's message asks of co-partitioned topics: the counts agree,
    # but about half the customers and terminals now hash to a partition that holds no state of theirs.
    grow(
        topics,
        Topic.TRANSACTIONS,
        Topic.FEATURES_CUSTOMER_STATE,
        Topic.FEATURES_BY_TERMINAL,
        Topic.FEATURES_TERMINAL_STATE,
    )
    ensure_topics({"bootstrap.servers": PLATFORM.kafka_bootstrap}, topics.prefix)
    service.start(wait_ready=False)
    log = exit_log(service)
    assert "gained partitions after that state was written" in log
    assert topics(Topic.FEATURES_CUSTOMER_STATE) in log or topics(Topic.FEATURES_TERMINAL_STATE) in log
