"""The features service scales out on Kafka partitions: two replicas share both stages'
partitions and state; one is killed mid-stream, the other takes its partitions over and
restores their state from the changelogs; a third joins later and is given some of them. Every
transaction is enriched exactly once, equal to the backfill."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from tests.integration.features.streams import feature_store, features_service, produce_history, simulated_history
from tests.integration.features.test_one_definition import enriched_frame
from tests.integration.features.test_recovery import SMALL_BATCHES, changelog_states, events_applied
from tests.platform import ServiceProcess, Topics
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = [pytest.mark.integration, pytest.mark.scale]


@pytest.fixture
def started() -> Iterator[list[ServiceProcess]]:
    """The replicas a test starts; any still running when it ends (a failure) are killed."""
    services: list[ServiceProcess] = []
    yield services
    for service in services:
        if service.process is not None and service.process.poll() is None:
            service.kill()


def replica(topics: Topics, tmp_path: Path, name: str, started: list[ServiceProcess]) -> ServiceProcess:
    service = features_service(
        topics,
        tmp_path,
        FRAUDSTREAM_INSTANCE_ID=name,
        # A held transaction may wait out the failover (session timeout, then the restore).
        FRAUDSTREAM_MAX_WAIT_SECONDS="30",
        **SMALL_BATCHES,
    )
    service.log_dir = tmp_path / name
    service.log_dir.mkdir()
    started.append(service)
    return service


def assigned(service: ServiceProcess) -> dict[str, int]:
    samples = service.metric_samples("fraudstream_stream_assigned_partitions")
    return {stage: int(samples.get(f'{{stage="{stage}"}}', 0)) for stage in ("customers", "terminals")}


def test_two_replicas_one_killed_then_one_added_mid_stream(
    topics: Topics, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    history = simulated_history()
    feature_store(tmp_path)
    expected = backfill(history.transactions, history.labels).set_index("transaction_id")
    total_events = len(history.transactions) + len(history.labels)
    first, second = replica(topics, tmp_path, "features-a", started), replica(topics, tmp_path, "features-b", started)
    first.start(wait_ready=False)
    second.start(wait_ready=False)
    first.wait_ready()
    second.wait_ready()
    deadline = time.monotonic() + 120
    while not all(assigned(first).values()) or not all(assigned(second).values()):
        assert time.monotonic() < deadline, "the two replicas did not share the partitions of both stages"
        time.sleep(0.1)
    producer = threading.Thread(target=produce_history, args=(topics, history))
    producer.start()
    while events_applied(second) < total_events / 6:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second.kill()
    while assigned(first) != {"customers": 8, "terminals": 4}:
        assert time.monotonic() < deadline + 60, "the partitions of the killed replica did not move"
        time.sleep(0.1)
    third = replica(topics, tmp_path, "features-c", started)
    third.start()
    while not all(assigned(third).values()):
        assert time.monotonic() < deadline + 120, "the replica that joined was not given partitions of both stages"
        time.sleep(0.1)

    producer.join()
    streamed = enriched_frame(topics, len(expected))  # fails on a duplicate or a gap
    assert_same(streamed.loc[expected.index], expected, list(FEATURE_NAMES))
    assert changelog_states(topics) == history.final_states()
    for survivor in (first, third):
        assert survivor.metric("fraudstream_features_early_events_total") == 0
        assert survivor.metric("fraudstream_features_late_events_total") == 0
    assert third.terminate() == 0
    assert first.terminate() == 0
