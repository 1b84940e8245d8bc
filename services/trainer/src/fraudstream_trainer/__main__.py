"""Run the trainer service: `python -m fraudstream_trainer` (or `fraudstream-trainer`);
`python -m fraudstream_trainer train [...]` makes one run now and exits (fraudstream_trainer.run_once).

It answers `retrain.requests` (the optional schedule, and the first model's request while no
model exists) with training runs, keeps the label store filled from `labels`, and serves
/healthz, /readyz (saying what a first model waits for) and /metrics.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from collections.abc import Callable

import pandas as pd
from fastapi import FastAPI

from fraudstream_common.health import Readiness
from fraudstream_common.http import HttpServer, add_health_routes
from fraudstream_common.kafka import partition_counts
from fraudstream_common.lifecycle import Component, ServiceRunner
from fraudstream_common.logging import configure_logging
from fraudstream_common.topics import Topic, topic_name
from fraudstream_feature_store.repository import transaction_features_until
from fraudstream_registry.publisher import EventPublisher
from fraudstream_registry.registry import FIRST_MODEL_WAIT_TAG, Registry
from fraudstream_trainer import run_once
from fraudstream_trainer.consumer import requests_stream
from fraudstream_trainer.first_model import FirstModel
from fraudstream_trainer.labels import label_sink, label_span, read_labels
from fraudstream_trainer.pipeline import Trainer
from fraudstream_trainer.settings import TrainerSettings


async def serve(settings: TrainerSettings) -> int:
    prefix = settings.topic_prefix
    publisher = EventPublisher(
        settings, topic_name(Topic.MODELS_PUBLISHED, prefix), client_id=f"{settings.instance_id}-published"
    )
    store = settings.feast()
    enriched = topic_name(Topic.TRANSACTIONS_ENRICHED, prefix)
    (enriched_partitions,) = partition_counts(settings, [enriched]).values()

    def features_until() -> pd.Timestamp | None:
        return transaction_features_until(settings.feature_offline_dir, enriched_partitions)

    def trainer_for(should_stop: Callable[[], bool]) -> Trainer:
        return Trainer(
            settings,
            store,
            lambda: read_labels(settings.feature_offline_dir),
            publisher,
            progress=False,
            should_stop=should_stop,
            features_until=features_until,
        )

    registry = Registry(settings.mlflow_tracking_uri, settings.registered_model, settings.mlflow_experiment)
    first_model = FirstModel(
        settings,
        lambda: registry.aliased_version(settings.publish_alias.value),
        lambda: label_span(settings.feature_offline_dir),
        features_until,
        on_wait=lambda text: registry.set_model_note(FIRST_MODEL_WAIT_TAG, text),
    )
    requests = requests_stream(
        settings,
        trainer_for,
        topic_name(Topic.RETRAIN_REQUESTS, prefix),
        topic_name(Topic.DEADLETTER, prefix),
        first_model,
    )
    labels = label_sink(settings, topic_name(Topic.LABELS, prefix))

    readiness = Readiness()

    async def consuming() -> bool:
        return requests.ready and labels.ready

    async def mlflow_reachable() -> bool:
        return await asyncio.to_thread(_reachable, f"{settings.mlflow_tracking_uri.rstrip('/')}/health")

    readiness.add("consumers", consuming)
    readiness.add("mlflow", mlflow_reachable)
    readiness.waiting("first_model", first_model.waiting_for)
    app = FastAPI(title="fraudstream trainer", version="0.1.0")
    add_health_routes(app, readiness)

    # Stop order: the HTTP server, then the requests (a run in progress is abandoned and its
    # request left uncommitted), then the label store (writes and commits what it holds).
    components: list[Component] = [HttpServer(app, settings.http_host, settings.http_port), requests, labels]
    try:
        return await ServiceRunner(components).run()
    finally:
        publisher.close()


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (a configured http(s) URL)
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> None:
    if sys.argv[1:2] == ["train"]:
        sys.exit(run_once.main(sys.argv[2:]))
    settings = TrainerSettings()
    configure_logging("trainer", settings.log_level, settings.log_json)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
