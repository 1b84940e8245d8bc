"""A model trained by the trainer on a simulated history and published on a topic prefix, with
a Feast store of its own: what the benchmarks that run inference start from."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from fraudstream_cli.backfill import backfill_offline_store
from fraudstream_cli.platform.kafka import ensure_topics
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.topics import Topic, topic_name
from fraudstream_feature_store.store import apply_repository
from fraudstream_registry.publisher import EventPublisher
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import write_parquet
from fraudstream_trainer.pipeline import Trainer, TrainRequest
from fraudstream_trainer.settings import TrainerSettings

# A Redis database of the benchmarks' own, emptied by each: never the platform's online store.
ONLINE_DATABASE = 3


@dataclass(frozen=True)
class PublishedModel:
    world: Simulation
    model_name: str
    version: str
    online_url: str
    registry: Path
    offline: Path


def publish_model(platform: PlatformSettings, prefix: str, scratch: Path, config: SimulationConfig) -> PublishedModel:
    """Simulates `config`, backfills it into a Feast store under `scratch`, trains on it and
    publishes the version on `prefix`'s topics (created here, with the platform's partition count)."""
    online_url = platform.redis_url.rsplit("/", 1)[0] + f"/{ONLINE_DATABASE}"
    redis.Redis.from_url(online_url).flushdb()
    ensure_topics({"bootstrap.servers": platform.kafka_bootstrap}, prefix, stream_partitions=platform.stream_partitions)
    print("setting up: simulate, backfill, train, publish ...", file=sys.stderr)
    world = simulate(config)
    write_parquet(world, scratch / "history")
    feast = apply_repository(online_url, scratch / "registry.db", scratch / "offline")
    backfill_offline_store(scratch / "history", scratch / "offline")
    model_name = f"bench-{uuid.uuid4().hex[:6]}"
    settings = TrainerSettings(
        mlflow_tracking_uri=platform.mlflow_url,
        mlflow_experiment=model_name,
        registered_model=model_name,
        min_rows=5000,
        min_frauds=20,
        kafka_bootstrap_servers=platform.kafka_bootstrap,
        topic_prefix=prefix,
    )
    publisher = EventPublisher(settings, topic_name(Topic.MODELS_PUBLISHED, prefix), client_id="bench")
    result = Trainer(settings, feast, lambda: world.labels, publisher, progress=False).handle(
        TrainRequest("bench", "benchmark", force=True)
    )
    if result.published is None:
        raise SystemExit(f"the trainer published nothing: {result.reasons}")
    return PublishedModel(
        world, model_name, str(result.version), online_url, scratch / "registry.db", scratch / "offline"
    )
