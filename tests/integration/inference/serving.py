"""A model trained on a small simulated history and published to `models.published`, the
online store of a private Redis filled with the history's final states, and the inference
service against them: what the inference tests share."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
import xgboost as xgb
from google.protobuf.timestamp_pb2 import Timestamp
from mlflow import MlflowClient

from fraudstream_cli.backfill import final_states
from fraudstream_common.apikeys import Scope, create_key
from fraudstream_common.features.history import FeatureStates
from fraudstream_common.schemas.v1 import inference_service_pb2 as pb
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET, ServiceSettings
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import FeatureStateStore, open_store
from fraudstream_registry.publisher import EventPublisher
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation
from fraudstream_trainer.pipeline import Datasets, Outcome, Trainer, TrainRequest
from fraudstream_trainer.settings import PublishAlias, TrainerSettings
from tests.integration.trainer.history import history_in_feast
from tests.platform import PLATFORM, PrivateRedis, ServiceProcess, Topics, feast_env

WORLD = SimulationConfig(n_customers=600, n_terminals=1200, nb_days=50)


@dataclass
class Served:
    world: Simulation
    states: FeatureStates
    store: FeatureStateStore
    model_name: str
    published: ModelPublished
    service: ServiceProcess
    predict_key: str
    ingest_key: str
    trainer: Trainer
    datasets: Datasets
    events: list[ModelPublished]

    def challenger_trainer(self) -> Trainer:
        """The same trainer, publishing what passes its gate as challenger (for the canary)."""
        settings = self.trainer.settings.model_copy(update={"publish_alias": PublishAlias.CHALLENGER})
        return Trainer(settings, self.trainer.store, lambda: self.world.labels, self.trainer.publish, progress=False)

    def native_scores(self, rows: np.ndarray) -> np.ndarray:
        """The trainer's native (XGBoost) model's scores of feature rows."""
        client = MlflowClient(PLATFORM.mlflow_url)
        path = client.download_artifacts(self.published.run_id, "native/model.ubj", str(self.service.log_dir))
        booster = xgb.Booster()
        booster.load_model(bytearray(Path(path).read_bytes()))
        return np.asarray(booster.predict(xgb.DMatrix(rows.astype(np.float32))), dtype=np.float64)


def train_and_publish(
    topics: Topics, directory: Path, model_name: str, *, always_promote: bool
) -> tuple[Simulation, Trainer, Datasets, list[ModelPublished]]:
    """Trains and publishes version 1. With `always_promote`, the gate lets every later
    version through (for swap tests, where the versions need not improve)."""
    world, feast = history_in_feast(WORLD, directory)
    margin = 1.0 if always_promote else 0.005
    settings = TrainerSettings(
        gate_ap_margin=margin,
        gate_card_precision_margin=margin,
        mlflow_tracking_uri=PLATFORM.mlflow_url,
        mlflow_experiment=model_name,
        registered_model=model_name,
        n_estimators=50,
        min_rows=5000,
        min_frauds=20,
        kafka_bootstrap_servers=PLATFORM.kafka_bootstrap,
        topic_prefix=topics.prefix,
    )
    publisher = EventPublisher(settings, topics(Topic.MODELS_PUBLISHED), client_id="test-trainer")
    published: list[ModelPublished] = []

    def publish(event: ModelPublished) -> None:
        publisher(event)
        published.append(event)

    trainer = Trainer(settings, feast, lambda: world.labels, publish, progress=False)
    datasets = trainer.datasets(TrainRequest(f"it-{uuid.uuid4().hex[:8]}", "test", force=True))
    assert datasets is not None
    result = trainer.train_and_decide(datasets)
    assert result.outcome is Outcome.PROMOTED, result.reasons
    return world, trainer, datasets, published


def serve(topics: Topics, directory: Path, online: PrivateRedis, *, always_promote: bool = False, **env: str) -> Served:
    model_name = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    world, trainer, datasets, events = train_and_publish(topics, directory, model_name, always_promote=always_promote)
    states = final_states(world.transactions, world.labels)
    store = FeatureStateStore(open_store(online.url, directory / "registry.db", directory / "offline"))
    store.push(
        {c: s.snapshot() for c, s in states.customers.items()}, {t: s.snapshot() for t, s in states.terminals.items()}
    )
    keys = redis.Redis.from_url(PLATFORM.redis_url)
    predict_key = create_key(keys, [Scope.PREDICT], "test", secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix)
    ingest_key = create_key(keys, [Scope.INGEST], "test", secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix)
    service = inference_service(topics.prefix, directory, model_name, feast_env(online.url, directory), **env)
    service.start()
    return Served(
        world, states, store, model_name, events[0], service, predict_key, ingest_key, trainer, datasets, events
    )


def inference_service(
    prefix: str, log_dir: Path, model_name: str, feast: Mapping[str, str], **env: str
) -> ServiceProcess:
    """Inference serving `model_name` from the platform's MLflow, not started."""
    return ServiceProcess(
        prefix=prefix,
        log_dir=log_dir,
        module="fraudstream_inference",
        extra_env={
            "FRAUDSTREAM_MLFLOW_TRACKING_URI": PLATFORM.mlflow_url,
            "FRAUDSTREAM_REGISTERED_MODEL": model_name,
            **feast,
            **env,
        },
    )


def settings_for(topics: Topics) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=topics.prefix)


def requests_after_history(served: Served, count: int) -> list[dict[str, Any]]:
    """New transactions of known customers on known terminals, an hour after the history ends."""
    sample = served.world.transactions.sample(count, random_state=1)
    when = served.world.transactions["event_time"].max() + pd.Timedelta(hours=1)
    return [
        {
            "transaction_id": f"req-{i}",
            "customer_id": str(row.customer_id),
            "terminal_id": str(row.terminal_id),
            "amount": float(row.amount),  # type: ignore[arg-type]
            "timestamp": (when + pd.Timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }
        for i, row in enumerate(sample.itertuples())
    ]


def grpc_request(request: dict[str, Any], **overrides: Any) -> pb.PredictRequest:
    """A request of `requests_after_history` as gRPC's PredictRequest; `overrides` replace its fields."""
    when = Timestamp()
    when.FromDatetime(pd.Timestamp(str(request["timestamp"])).to_pydatetime())
    fields = {
        "transaction_id": str(request["transaction_id"]),
        "customer_id": str(request["customer_id"]),
        "terminal_id": str(request["terminal_id"]),
        "amount": float(request["amount"]),
        "timestamp": when,
    }
    return pb.PredictRequest(**{**fields, **overrides})
