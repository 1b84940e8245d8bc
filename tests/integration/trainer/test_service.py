"""The trainer service end to end: labels from the `labels` topic into its label store,
features from Feast's offline store, a retrain request on `retrain.requests`, a run in the real
MLflow server, a registered version, and the `models.published` event; then the request's
idempotency, the cooldown and a forced request gated against the champion."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from pathlib import Path

import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.reference import JOINT_SUBJECTS, Reference
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.settings import DEVELOPMENT_RETRAIN_REQUEST_SECRET as DEVELOPMENT_SECRET
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.signing import sign_request
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic
from fraudstream_modelling.model import onnx_scores
from fraudstream_modelling.windows import Windows
from fraudstream_registry.registry import Registry
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from fraudstream_trainer.dataset import fingerprint, training_set
from tests.integration.trainer.history import history_in_feast, trainer_service
from tests.platform import PLATFORM, Topics, drain, eventually, producer

pytestmark = pytest.mark.integration

WORLD = SimulationConfig(n_customers=600, n_terminals=1200, nb_days=50)


def send_request(
    topic: str, request_id: str, model: str, *, force: bool = False, secret: str | None = DEVELOPMENT_SECRET
) -> None:
    """A retrain request, signed as the monitor signs them (unless `secret` is None)."""
    request = RetrainRequest(
        request_id=request_id,
        model_name=model,
        requested_at=timestamp_of(time.time()),
        reason="drift",
        requested_by="test",
        force=force,
    )
    if secret is not None:
        sign_request(request, secret)
    kafka = producer()
    kafka.produce(topic, request.SerializeToString(), model.encode())
    assert kafka.flush(10) == 0


def test_a_retrain_request_trains_registers_and_publishes(topics: Topics, tmp_path: Path) -> None:
    world, feast = history_in_feast(WORLD, tmp_path)
    experiment = f"it-{uuid.uuid4().hex[:8]}"
    model = f"fraud-detector-{experiment}"
    service = trainer_service(topics.prefix, tmp_path, experiment, model, n_estimators="100", served_model="refit")
    service.start()
    try:
        # Labels arrive on their topic, as the label feed writes them.
        replay_to_kafka(
            world,
            ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=topics.prefix),
            pacing=Pacing.fast(),
        )
        eventually(
            lambda: service.metric("fraudstream_trainer_labels_stored_total") == len(world.labels),
            "every label in the label store",
        )

        kafka = producer()
        kafka.produce(topics(Topic.RETRAIN_REQUESTS), b"\x08\x96not a request", model.encode())
        assert kafka.flush(10) == 0
        send_request(topics(Topic.RETRAIN_REQUESTS), "forged-1", model, force=True, secret=None)
        send_request(topics(Topic.RETRAIN_REQUESTS), "forged-2", model, force=True, secret="not-the-secret")  # noqa: S106
        send_request(topics(Topic.RETRAIN_REQUESTS), "r-1", model)
        (record,) = drain(topics(Topic.MODELS_PUBLISHED), expected=1, timeout=300, quiet=1)
        published = ModelPublished.FromString(record.value)

        # The invalid record and the two forged requests went to the dead-letter topic with their
        # reasons; only the signed request was trained on.
        letters = [DeadLetter.FromString(r.value) for r in drain(topics(Topic.DEADLETTER), expected=3, quiet=1)]
        assert [(letter.service, letter.error_code) for letter in letters] == [
            ("trainer", "invalid_retrain_request"),
            ("trainer", "unsigned_retrain_request"),
            ("trainer", "unsigned_retrain_request"),
        ]
        assert service.metric_samples("fraudstream_trainer_retrain_requests_total")['{outcome="refused"}'] == 2

        # The event: the registered version, as champion, with its checksum, threshold and input signature.
        assert (published.model_name, published.version, published.alias) == (model, "1", "champion")
        assert record.key == model.encode()
        assert [spec.name for spec in published.input_signature] == list(FEATURE_NAMES)
        assert {spec.dtype for spec in published.input_signature} == {"float"}
        local = Path(
            mlflow.artifacts.download_artifacts(
                published.artifact_uri, dst_path=str(tmp_path / "artifact"), tracking_uri=PLATFORM.mlflow_url
            )
        )
        (onnx_file,) = local.rglob("*.onnx")
        onnx_model = onnx_file.read_bytes()
        assert hashlib.sha256(onnx_model).hexdigest() == published.sha256
        # The environment a server builds for it (tracking.MODEL_REQUIREMENTS): what MLflow infers.
        (requirements,) = local.rglob("requirements.txt")
        pinned = dict(line.split("==") for line in requirements.read_text().split())
        assert set(pinned) == {"mlflow", "numpy", "onnx", "onnxruntime"}
        assert pinned["numpy"] == np.__version__
        assert published.threshold > 0
        assert published.threshold <= published.decline_threshold
        assert set(published.metrics) == {"auc_roc", "average_precision", "card_precision_at_100"}

        client = MlflowClient(PLATFORM.mlflow_url)
        version = client.get_model_version_by_alias(model, "champion")
        assert version.version == "1"
        assert version.tags["sha256"] == published.sha256
        assert float(version.tags["review_threshold"]) == published.threshold

        # The lineage: the windows laid out from the latest label; the served model is the judged
        # recipe refit on the holdout, with the labels known at the cutoff; the training data's
        # hash (recomputed here from Feast), the feature views, the request that caused it.
        windows = Windows.ending_at(
            pd.Timestamp(world.labels["label_time"].max()), train_days=7, delay_days=7, holdout_days=7
        )
        training = training_set(
            feast, world.labels, start=windows.holdout_start, end=windows.holdout_end, labels_known_at=windows.cutoff
        )
        run = client.get_run(published.run_id)
        assert run.data.params["train_start"] == windows.holdout_start.isoformat()
        assert run.data.params["train_end"] == windows.holdout_end.isoformat()
        assert run.data.params["labels_known_at"] == windows.cutoff.isoformat()
        gate_document = json.loads(
            Path(client.download_artifacts(published.run_id, "gate.json", str(tmp_path))).read_text()
        )
        assert gate_document["served"] == "refit"
        assert gate_document["judged_trained_on"] == [windows.train_start.isoformat(), windows.train_end.isoformat()]
        assert run.data.params["feature_views"] == "transaction_features"
        assert run.data.params["features"] == ",".join(FEATURE_NAMES)
        assert run.data.tags["data_fingerprint"] == fingerprint(training)
        assert run.data.tags["retrain_request_id"] == "r-1"
        assert run.data.tags["outcome"] == "promoted"
        assert run.data.tags["gate.reasons"] == "no champion yet"
        assert run.data.metrics["train_rows"] == len(training)
        assert run.data.metrics["train_frauds"] == training["is_fraud"].sum()
        assert run.data.metrics["average_precision"] == pytest.approx(published.metrics["average_precision"])

        plots = {a.path for a in client.list_artifacts(published.run_id, "plots")}
        assert plots == {
            "plots/roc.png",
            "plots/precision_recall.png",
            "plots/calibration.png",
            "plots/feature_importance.png",
        }

        # The reference distribution the monitor compares traffic with: every input and the score,
        # and the grid of feature pairs, each pair's cells holding the whole holdout.
        reference = Reference.from_json(
            json.loads(Path(client.download_artifacts(published.run_id, "reference.json", str(tmp_path))).read_text())
        )
        assert set(reference.edges) == {*FEATURE_NAMES, "score"}
        assert reference.period_end == windows.holdout_end.timestamp()  # the monitor judges what comes after
        assert abs(sum(reference.shares["score"]) - 1) < 1e-9
        assert reference.joint is not None
        assert reference.joint.subjects == JOINT_SUBJECTS
        assert reference.joint_counts is not None
        assert reference.joint_rows > 0
        for first, last in itertools.pairwise(reference.joint.offsets):
            assert reference.joint_counts[first:last].sum() == reference.joint_rows

        # The parity: logged, and true again here on 10,000 rows between the logged native model and the ONNX.
        assert run.data.metrics["onnx_parity_max_abs_difference"] <= 1e-5
        assert run.data.metrics["tensor_parity_max_abs_difference"] <= 1e-5
        native = Path(client.download_artifacts(published.run_id, "native/model.ubj", str(tmp_path)))
        booster = xgb.Booster()
        booster.load_model(bytearray(native.read_bytes()))
        rows = np.tile(training[list(FEATURE_NAMES)].to_numpy(), (2, 1))[:10_000].astype(np.float32)
        assert len(rows) == 10_000
        native_scores = booster.predict(xgb.DMatrix(rows))
        assert np.max(np.abs(native_scores - onnx_scores(onnx_model, rows))) <= 1e-5
        # The tensor graph beside it, checked against its version tag by the registry.
        tensor_model = Registry(PLATFORM.mlflow_url, model).tensor_onnx("1")
        assert tensor_model is not None
        assert hashlib.sha256(tensor_model).hexdigest() == version.tags["tensor_sha256"]
        assert np.max(np.abs(native_scores - onnx_scores(tensor_model, rows))) <= 1e-5
        # The model the gate judged is kept beside it, for later gates, and is another model.
        judged_model = Registry(PLATFORM.mlflow_url, model).judged_onnx("1")
        assert judged_model is not None
        assert hashlib.sha256(judged_model).hexdigest() == version.tags["judged_sha256"]
        assert np.max(np.abs(native_scores - onnx_scores(judged_model, rows))) > 1e-3

        # The same request again is a duplicate; another within the cooldown is skipped.
        send_request(topics(Topic.RETRAIN_REQUESTS), "r-1", model)
        send_request(topics(Topic.RETRAIN_REQUESTS), "r-2", model)
        eventually(
            lambda: service.metric("fraudstream_trainer_retrain_requests_total") == 6,
            "six requests answered (invalid, two refused, trained, duplicate, cooldown)",
        )
        # A forced one trains again, judged against the champion on the same holdout.
        send_request(topics(Topic.RETRAIN_REQUESTS), "r-3", model, force=True)
        records = drain(topics(Topic.MODELS_PUBLISHED), expected=2, timeout=300, quiet=1)
        second = ModelPublished.FromString(records[1].value)
        assert second.version == "2"
        gated = client.get_run(second.run_id)
        assert gated.data.tags["champion_version"] == "1"
        assert "against the champion's" in gated.data.tags["gate.reasons"]
        # The same data and seed give the same judged model: no worse, promoted, and a roll back knows where to go.
        assert gated.data.metrics["champion_average_precision"] == pytest.approx(run.data.metrics["average_precision"])
        assert client.get_model_version(model, "2").tags["replaces"] == "1"
        assert client.get_model_version_by_alias(model, "champion").version == "2"
        runs = client.search_runs([run.info.experiment_id])
        assert sorted(r.data.tags["retrain_request_id"] for r in runs) == ["r-1", "r-3"]
    finally:
        assert service.terminate() == 0
