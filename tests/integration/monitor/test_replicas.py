"""Two monitor replicas share the input partitions and one judges; one of them is killed
mid-stream: the survivor takes its partitions (and the judging, if it had it) by replay, and
the alerts that reach `monitor.alerts` are every alert one process, fed the same records as one
stream, raises: no more, no fewer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import redis

from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.monitoring_pb2 import DriftAlert
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.topics import Topic
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_monitor.versions import VersionCatalogue
from fraudstream_registry.registry import CHAMPION, Registry
from tests.integration.monitor.conftest import (
    Watched,
    drifting_traffic,
    overview,
    published_versions,
    unranked_frauds_in_hour_0,
)
from tests.integration.monitor.service import monitor_service
from tests.platform import PLATFORM, Topics, drain, eventually
from tests.unit.monitor.test_core import Clock, Monitor

pytestmark = [pytest.mark.integration, pytest.mark.scale]

SETTINGS = {
    "window_hours": "2",
    "min_window_predictions": "500",
    "quiet_hours": "1000",
    "quality_window_hours": "1",
    "label_maturity_hours": "2",
    "quality_min_frauds": "5",
    "debounce_seconds": "2",
    "request_cooldown_seconds": "3600",
    "batch_size": "200",
    "window_idle_seconds": "20",
}


def single_stream_alerts(
    registry: Registry, predictions: list[Prediction], labels: list[bytes]
) -> set[tuple[str, str, str]]:
    """What one process raises, fed every record as one stream (the versions as registered)."""
    settings = MonitorSettings(registered_model=registry.model_name, **SETTINGS)  # type: ignore[arg-type]
    versions = VersionCatalogue(PLATFORM.mlflow_url)
    versions.published(registry.published_event("2", CHAMPION))
    monitor = Monitor(versions, Clock(), partitions=1, settings=settings)
    alerts = monitor.predictions(predictions) + monitor.labels([Label.FromString(v) for v in labels])
    return {(a.alert_id, a.subject, a.detector) for a in alerts}


def test_two_replicas_one_killed_raise_what_one_stream_raises(topics: Topics, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    experiment, model, registry = published_versions(topics, rng)
    replicas = [
        monitor_service(
            topics.prefix,
            tmp_path / f"r{i}",
            experiment,
            model,
            instance_id=f"monitor-{i}",
            auth_enabled="false",
            **SETTINGS,
        )
        for i in range(2)
    ]
    for replica in replicas:
        replica.log_dir.mkdir(exist_ok=True)
        replica.start()
    watched = Watched(replicas[0], topics, model, experiment, "", "", registry)
    sent = drifting_traffic(watched, rng)
    labels = unranked_frauds_in_hour_0(rng)
    try:
        time.sleep(5)  # both in the group: the partitions shared
        half = len(sent) // 2
        watched.send(Topic.PREDICTIONS, [p.SerializeToString() for p in sent[:half]])
        time.sleep(2)
        replicas[0].kill()
        watched.send(Topic.PREDICTIONS, [p.SerializeToString() for p in sent[half:]])
        watched.send(Topic.LABELS, labels)
        expected = single_stream_alerts(registry, sent, labels)
        assert expected, "the single stream raised nothing: the test would prove nothing"
        records = drain(topics(Topic.MONITOR_ALERTS), expected=len(expected), timeout=180, quiet=8)
        got = [DriftAlert.FromString(r.value) for r in records]
        assert {(a.alert_id, a.subject, a.detector) for a in got} == expected

        def judged_everything() -> bool:
            versions = {v["version"]: v for v in overview(replicas[1])["versions"]}
            return "2" in versions and versions["2"]["predictions"] == len(sent)

        eventually(judged_everything, "the survivor judges and counted every prediction", timeout=60)
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.terminate()
        redis.Redis.from_url(PLATFORM.redis_url).delete(f"{topics.prefix}fraudstream:monitor:{model}:paused")
