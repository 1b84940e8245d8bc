"""The loop, closed with no human step, on the real platform: inference serves version 1 and
logs its predictions; the amounts of the traffic shift; the monitor sees it against version 1's
reference and asks for a new model; the trainer service trains, gates and publishes version 2;
inference swaps it in and answers with it. Every hop is a Kafka topic or a shared store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
from fraudstream_common.topics import Topic
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from tests.integration.inference.serving import Served, serve, settings_for
from tests.integration.monitor.service import monitor_service
from tests.integration.trainer.history import trainer_service
from tests.platform import PLATFORM, PrivateRedis, Topics, drain, eventually

pytestmark = pytest.mark.integration

HOURS_OF_SHIFTED_TRAFFIC = 3
PER_HOUR = 300


@pytest.fixture
def served(topics: Topics, tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Served]:
    served = serve(topics, tmp_path, private_redis, always_promote=True)
    yield served
    assert served.service.terminate() == 0


def shifted_traffic(served: Served, hour: int) -> list[dict[str, Any]]:
    """An hour of transactions of known customers on known terminals, after the history ends,
    with amounts four times what they were."""
    start = served.world.transactions["event_time"].max() + pd.Timedelta(hours=1 + hour)
    sample = served.world.transactions.sample(PER_HOUR, random_state=hour)
    return [
        {
            "transaction_id": f"loop-{hour}-{i}",
            "customer_id": str(row.customer_id),
            "terminal_id": str(row.terminal_id),
            "amount": round(float(row.amount) * 4, 2),  # type: ignore[arg-type]
            "timestamp": (start + pd.Timedelta(seconds=i * 3600 // PER_HOUR)).isoformat().replace("+00:00", "Z"),
        }
        for i, row in enumerate(sample.itertuples())
    ]


def test_drift_seen_by_the_monitor_ends_in_a_new_model_served_with_no_human_step(
    served: Served, topics: Topics, tmp_path: Path
) -> None:
    trainer = trainer_service(
        topics.prefix,
        tmp_path,
        served.model_name,
        served.model_name,
        n_estimators="50",
        gate_ap_margin="1",
        gate_card_precision_margin="1",
        cooldown_seconds="0",
    )
    monitor = monitor_service(
        topics.prefix,
        tmp_path,
        served.model_name,
        served.model_name,
        window_hours="2",
        min_window_predictions="300",
        debounce_seconds="1",
    )
    trainer.start()
    monitor.start()
    try:
        # The trainer's label store fills from the labels topic, as in production.
        replay_to_kafka(served.world, settings_for(topics), pacing=Pacing.fast())
        eventually(
            lambda: trainer.metric("fraudstream_trainer_labels_stored_total") == len(served.world.labels),
            "every label in the trainer's label store",
        )

        bearer = {"Authorization": f"Bearer {served.predict_key}"}
        with httpx.Client(base_url=served.service.url, timeout=30) as http:
            for hour in range(HOURS_OF_SHIFTED_TRAFFIC + 1):
                traffic = shifted_traffic(served, hour)[: PER_HOUR if hour < HOURS_OF_SHIFTED_TRAFFIC else 5]
                answer = http.post("/v1/predict/batch", json={"transactions": traffic}, headers=bearer)
                assert answer.status_code == 200, answer.text
                assert {p["model_version"] for p in answer.json()["predictions"]} == {"1"}

            # The monitor asks, with the amount's drift as evidence.
            (record,) = drain(topics(Topic.RETRAIN_REQUESTS), expected=1, timeout=120, quiet=1)
            request = RetrainRequest.FromString(record.value)
            assert (request.model_name, request.reason, request.requested_by) == (served.model_name, "drift", "monitor")
            assert any((a.subject, a.detector, a.model_version) == ("tx_amount", "PSI", "1") for a in request.evidence)

            # The trainer answers it: version 2, promoted and published.
            published = [
                ModelPublished.FromString(r.value)
                for r in drain(topics(Topic.MODELS_PUBLISHED), expected=2, timeout=300, quiet=1)
            ]
            assert [(p.version, p.alias) for p in published] == [("1", "champion"), ("2", "champion")]
            run = MlflowClient(PLATFORM.mlflow_url).get_run(published[-1].run_id)
            assert run.data.tags["retrain_request_id"] == request.request_id
            assert run.data.tags["outcome"] == "promoted"

            # Inference swaps it in and answers with it.
            probe = shifted_traffic(served, HOURS_OF_SHIFTED_TRAFFIC + 1)

            def answers_with_version_2() -> bool:
                probe[0]["transaction_id"] += "-again"
                response = http.post("/v1/predict", json=probe[0], headers=bearer)
                return response.status_code == 200 and response.json()["model_version"] == "2"

            eventually(answers_with_version_2, "inference answering with version 2", timeout=120)
    finally:
        assert monitor.terminate() == 0
        assert trainer.terminate() == 0

    # Nothing secret in any service's log: no key, no key secret, no card (customer) id.
    logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
    assert {"inference", "monitor", "trainer"} <= {name.split("-")[0] for name in logs}
    secrets = [served.predict_key, served.ingest_key, DEVELOPMENT_API_KEY_SECRET]
    cards = {
        row["customer_id"] for hour in range(HOURS_OF_SHIFTED_TRAFFIC + 2) for row in shifted_traffic(served, hour)
    }
    for name, text in logs.items():
        assert not [s for s in secrets if s in text], f"a key or secret in {name}"
        assert not [c for c in cards if re.search(rf"\b{re.escape(c)}\b", text)], f"a card id in {name}"
