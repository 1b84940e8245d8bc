"""The first model with no human step: the trainer service, with history but no champion and
no request, says what it waits for while the labelled history is too short for a holdout after
the feature warm-up, then trains, registers and publishes a version on its own."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import Topic
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from fraudstream_trainer.settings import FEATURE_WARMUP_DAYS
from tests.integration.trainer.history import history_in_feast, trainer_service
from tests.platform import PLATFORM, Topics, drain, eventually

pytestmark = pytest.mark.integration

WORLD = SimulationConfig(n_customers=600, n_terminals=1200, nb_days=60)


def test_with_history_and_no_champion_the_first_model_comes_on_its_own(topics: Topics, tmp_path: Path) -> None:
    world, _feast = history_in_feast(WORLD, tmp_path)
    experiment = f"it-{uuid.uuid4().hex[:8]}"
    model = f"fraud-detector-{experiment}"
    service = trainer_service(
        topics.prefix,
        tmp_path,
        experiment,
        model,
        n_estimators="100",
        first_model="true",
        first_model_check_seconds="1",
    )
    writer = ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=topics.prefix)
    start = pd.Timestamp(world.transactions["event_time"].min())
    matured = start.ceil("D") + pd.Timedelta(days=FEATURE_WARMUP_DAYS)
    needed = matured + pd.Timedelta(days=14)  # a 7-day holdout that ends a 7-day label delay before the cutoff
    early = world.labels[world.labels["label_time"] < needed - pd.Timedelta(days=1)]
    no_transactions = world.transactions.iloc[:0]
    service.start()
    try:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            # Labels of a history too short: the trainer serves, says what it waits for, trains nothing.
            replay_to_kafka(
                dataclasses.replace(world, transactions=no_transactions, labels=early), writer, pacing=Pacing.fast()
            )
            eventually(
                lambda: service.metric("fraudstream_trainer_labels_stored_total") == len(early),
                "the early labels stored",
            )
            eventually(
                lambda: f"{needed:%Y-%m-%d}" in http.get("/readyz").json()["waiting_for"].get("first_model", ""),
                f"the trainer saying it waits for labels up to {needed:%Y-%m-%d}",
            )
            assert http.get("/readyz").status_code == 200, "waiting for history is not being unready"
            # The registry keeps the wait for the console (the model exists there with no version yet).
            registry = MlflowClient(PLATFORM.mlflow_url)
            assert f"{needed:%Y-%m-%d}" in registry.get_registered_model(model).tags["first_model.waiting_for"]
            assert drain(topics(Topic.MODELS_PUBLISHED), expected=0, timeout=3, quiet=3) == []

            # The rest of the history: the first model is trained and published with no request.
            rest = world.labels[world.labels["label_time"] >= needed - pd.Timedelta(days=1)]
            replay_to_kafka(
                dataclasses.replace(world, transactions=no_transactions, labels=rest), writer, pacing=Pacing.fast()
            )
            (record,) = drain(topics(Topic.MODELS_PUBLISHED), expected=1, timeout=300, quiet=1)
            published = ModelPublished.FromString(record.value)
            assert (published.model_name, published.version, published.alias) == (model, "1", "champion")
            eventually(lambda: http.get("/readyz").json()["waiting_for"] == {}, "the wait over")
            eventually(
                lambda: "first_model.waiting_for" not in registry.get_registered_model(model).tags,
                "the registry's note of the wait removed",
            )

        run = MlflowClient(PLATFORM.mlflow_url).get_run(published.run_id)
        assert run.data.tags["retrain_request_id"].startswith("first-model-")
        assert run.data.tags["outcome"] == "promoted"
        # The holdout, which becomes the monitor's reference, begins after the warm-up (the
        # training labels are those known when the holdout begins).
        assert pd.Timestamp(run.data.params["labels_known_at"]) >= matured
    finally:
        service.terminate()
