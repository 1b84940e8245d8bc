"""A monitor service against the real platform, with two model versions in the real MLflow
registry (each run holding its reference distribution, as the trainer stores it) and their
`models.published` records on Kafka. Windows are short (hours of simulated time) so that a test
can fill them with a few thousand predictions."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import redis
from google.protobuf.message import DecodeError
from mlflow import MlflowClient

from fraudstream_common.apikeys import Scope, create_key
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET, ServiceSettings
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic
from fraudstream_registry.publisher import EventPublisher
from fraudstream_registry.registry import CHAMPION, Registry
from tests.integration.monitor.service import monitor_service
from tests.platform import PLATFORM, ServiceProcess, Topics, producer
from tests.unit.monitor.fixtures import HOUR, START, columns, predictions, reference_of

HOLDOUT_AVERAGE_PRECISION = 0.8


@dataclass
class Watched:
    monitor: ServiceProcess
    topics: Topics
    model: str
    experiment: str
    admin_key: str
    predict_key: str
    registry: Registry

    def predictions(
        self, rng: np.random.Generator, hours: range, per_hour: int, *, amount_scale: float = 1.0
    ) -> list[Prediction]:
        """Version 2's predictions, logged now."""
        return predictions(
            rng,
            hours,
            per_hour,
            version="2",
            amount_scale=amount_scale,
            model_name=self.model,
            predicted_at=time.time(),
        )

    def send(self, topic: Topic, records: list[bytes], key: bytes | None = None) -> None:
        """Keyed by transaction id, as the topics' contract says (`key` for every record instead)."""
        kafka = producer()
        for value in records:
            kafka.produce(self.topics(topic), value, key if key is not None else _transaction_id(topic, value))
            kafka.poll(0)
        assert kafka.flush(30) == 0


def _transaction_id(topic: Topic, value: bytes) -> bytes:
    try:
        record = Prediction.FromString(value) if topic == Topic.PREDICTIONS else Label.FromString(value)
    except DecodeError:
        return b"garbage"
    return record.transaction_id.encode()


def drifting_traffic(watched: Watched, rng: np.random.Generator) -> list[Prediction]:
    """Version 2's predictions: 4 stationary hours, 3 hours of amounts 4 times larger, and a
    few in hour 7 that close hour 6."""
    return (
        watched.predictions(rng, range(0, 4), 600)
        + watched.predictions(rng, range(4, 7), 600, amount_scale=4.0)
        + watched.predictions(rng, range(7, 8), 5)
    )


def unranked_frauds_in_hour_0(rng: np.random.Generator) -> list[bytes]:
    """20 frauds among hour 0's predictions that the scores do not rank (random), reported
    within the maturity; then genuine labels 4 hours on (in every partition of `labels`), by which
    hour 0's window has matured.
    Its average precision is far below the holdout's 0.8."""
    frauds = rng.choice(600, 20, replace=False)
    labels = [
        Label(
            transaction_id=f"tx-2-0-{i}",
            is_fraud=True,
            transaction_time=timestamp_of(START + 60),
            label_time=timestamp_of(START + HOUR + int(i)),
            source="test",
        )
        for i in frauds
    ]
    labels += [
        Label(transaction_id=f"tx-2-1-{i}", is_fraud=False, label_time=timestamp_of(START + 4 * HOUR))
        for i in range(40)
    ]
    return [label.SerializeToString() for label in labels]


def register_versions(model: str, experiment: str, rng: np.random.Generator) -> Registry:
    """Versions 1 and 2 of `model`, 2 the champion that replaced 1, each with a reference."""
    client = MlflowClient(PLATFORM.mlflow_url)
    mlflow.set_tracking_uri(PLATFORM.mlflow_url)
    mlflow.set_experiment(experiment)
    client.create_registered_model(model)
    for version in ("1", "2"):
        with mlflow.start_run() as run:
            mlflow.log_dict(reference_of(columns(rng, 20_000)).as_json(), "reference.json")
            mlflow.log_text("not a real model", "model/model.onnx")
            mlflow.log_metric("average_precision", HOLDOUT_AVERAGE_PRECISION)
        created = client.create_model_version(model, f"runs:/{run.info.run_id}/model", run.info.run_id)
        assert str(created.version) == version
        tags = {
            "sha256": hashlib.sha256(b"not a real model").hexdigest(),
            "review_threshold": "0.1",
            "decline_threshold": "0.5",
            "features": ",".join(FEATURE_NAMES),
            "metric.average_precision": str(HOLDOUT_AVERAGE_PRECISION),
        }
        if version == "2":
            tags["replaces"] = "1"
        for key, value in tags.items():
            client.set_model_version_tag(model, version, key, value)
    registry = Registry(PLATFORM.mlflow_url, model, experiment)
    registry.set_alias(CHAMPION, "2")
    return registry


def published_versions(topics: Topics, rng: np.random.Generator) -> tuple[str, str, Registry]:
    """A model of its own experiment with versions 1 and 2 registered (`register_versions`) and
    their `models.published` records on Kafka; returns the experiment, the model and its registry."""
    experiment = f"it-monitor-{uuid.uuid4().hex[:8]}"
    model = f"fraud-detector-{experiment}"
    registry = register_versions(model, experiment, rng)
    publisher = EventPublisher(
        ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap),
        topics(Topic.MODELS_PUBLISHED),
        client_id="it-monitor",
    )
    for version in ("1", "2"):
        publisher(registry.published_event(version, CHAMPION))
    publisher.close()
    return experiment, model, registry


@pytest.fixture
def watched(topics: Topics, tmp_path: Path) -> Iterator[Watched]:
    rng = np.random.default_rng(7)
    experiment, model, registry = published_versions(topics, rng)
    keys = redis.Redis.from_url(PLATFORM.redis_url)
    admin_key = create_key(keys, [Scope.ADMIN], "it-admin", secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix)
    predict_key = create_key(
        keys, [Scope.PREDICT], "it-predict", secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix
    )
    monitor = monitor_service(
        topics.prefix,
        tmp_path,
        experiment,
        model,
        window_hours="2",
        min_window_predictions="500",
        quiet_hours="1000",
        quality_window_hours="1",
        label_maturity_hours="2",
        quality_min_frauds="5",
        debounce_seconds="2",
        # Longer than the event time the traffic covers: the last hours are judged after the request.
        request_cooldown_seconds=str(24 * 3600),
        batch_size="500",
    )
    monitor.start()
    yield Watched(monitor, topics, model, experiment, admin_key, predict_key, registry)
    if monitor.process is not None:
        monitor.terminate()
    keys.delete(f"{topics.prefix}fraudstream:monitor:{model}:paused")


def overview(monitor: ServiceProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{monitor.url}/api/overview", timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document
