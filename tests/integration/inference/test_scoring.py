"""The inference service over HTTP and gRPC against the real platform: scores equal to the
trainer's native model on the features used (which equal the stored state combined by the
shared definitions), the same decision for a retried transaction on either transport and a
refusal for its id under other content, reasons
that add up, auth and validation failures, and degraded answers with the feature store down."""

from __future__ import annotations

import time

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1 import inference_service_pb2 as pb
from fraudstream_common.schemas.v1 import inference_service_pb2_grpc as pb_grpc
from fraudstream_common.schemas.v1.prediction_pb2 import Decision, Prediction
from fraudstream_common.topics import Topic
from fraudstream_inference.grpc_server import SERVICE
from tests.integration.inference.serving import Served, grpc_request, requests_after_history
from tests.platform import PrivateRedis, Topics, drain

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING


def test_http_and_grpc_score_as_the_trainer_would(served: Served, topics: Topics) -> None:
    service = served.service
    bearer = {"Authorization": f"Bearer {served.predict_key}"}
    requests = requests_after_history(served, 40)
    acknowledged_before = service.metric("fraudstream_inference_predictions_logged_total")
    with httpx.Client(base_url=service.url, timeout=10) as http:
        answers = [http.post("/v1/predict", json=r, headers=bearer) for r in requests[:30]]
        batch = http.post("/v1/predict/batch", json={"transactions": requests[30:]}, headers=bearer)
    assert [a.status_code for a in answers] == [200] * 30
    assert batch.status_code == 200
    bodies = [a.json() for a in answers] + batch.json()["predictions"]
    assert [b["transaction_id"] for b in bodies] == [r["transaction_id"] for r in requests]
    assert {b["model_version"] for b in bodies} == {served.published.version}
    assert not any(b["degraded"] for b in bodies)

    # The prediction log holds the features each answer was scored on.
    logged = {
        p.transaction_id: p
        for p in (Prediction.FromString(r.value) for r in drain(topics(Topic.PREDICTIONS), expected=40, quiet=1))
    }
    rows = np.asarray([[f.value for f in logged[r["transaction_id"]].features] for r in requests])
    assert [f.name for f in logged["req-0"].features] == list(FEATURE_NAMES)
    # The broker's acknowledgements are counted without a delivery report per record.
    deadline = time.monotonic() + 5
    while service.metric("fraudstream_inference_predictions_logged_total") - acknowledged_before < 40:
        assert time.monotonic() < deadline, "the acknowledged predictions were not counted"
        time.sleep(0.1)
    assert service.metric("fraudstream_inference_predictions_logged_total") - acknowledged_before == 40
    assert service.metric("fraudstream_inference_prediction_log_errors_total") == 0
    # ... which are what the stored state and the shared definitions give ...
    for request, row in zip(requests, rows, strict=True):
        expected = served.store.request_features(
            customer_id=str(request["customer_id"]),
            terminal_id=str(request["terminal_id"]),
            event_time=pd.Timestamp(str(request["timestamp"])).timestamp(),
            amount=float(request["amount"]),
        )
        np.testing.assert_allclose(row, [expected[n] for n in FEATURE_NAMES], rtol=1e-6)
    # ... and the score is the trainer's native model's on them.
    native = served.native_scores(rows)
    np.testing.assert_allclose([b["score"] for b in bodies], native, atol=1e-5)
    for body in bodies:
        threshold, decline = served.published.threshold, served.published.decline_threshold
        expected_decision = (
            "decline" if body["score"] >= decline else "review" if body["score"] >= threshold else "approve"
        )
        assert body["decision"] == expected_decision

    # gRPC: the same transaction again gets the same answer; a new one is scored.
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = pb_grpc.InferenceServiceStub(channel)
        metadata = (("authorization", f"Bearer {served.predict_key}"),)
        first = requests[0]
        again = stub.Predict(grpc_request(first), metadata=metadata)
        assert again.score == pytest.approx(bodies[0]["score"], abs=1e-12)
        assert Decision.Name(again.decision).removeprefix("DECISION_").lower() == bodies[0]["decision"]
        # Its id under other content is no retry: refused on both transports.
        with pytest.raises(grpc.RpcError) as reused:
            stub.Predict(grpc_request(first, amount=float(first["amount"]) + 1), metadata=metadata)
        assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert first["transaction_id"] in (reused.value.details() or "")
        conflict = httpx.post(
            f"{service.url}/v1/predict", json={**first, "terminal_id": "another"}, headers=bearer, timeout=10
        )
        assert conflict.status_code == 409
        assert "already decided" in conflict.json()["detail"]
        explained = stub.Predict(
            grpc_request(first, transaction_id="grpc-new", amount=float(first["amount"]) * 3, explain=True),
            metadata=metadata,
        )
        assert explained.model_version == served.published.version
        assert 1 <= len(explained.reasons) <= 5
        assert {r.name for r in explained.reasons} <= set(FEATURE_NAMES)
        with pytest.raises(grpc.RpcError) as no_key:
            stub.Predict(pb.PredictRequest(transaction_id="x"))
        assert no_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as invalid:
            stub.Predict(
                pb.PredictRequest(transaction_id="x", customer_id="c", terminal_id="t", amount=-1), metadata=metadata
            )
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "amount" in (invalid.value.details() or "")


def test_grpc_serves_scoring_health_and_reflection_on_its_port(served: Served) -> None:
    service = served.service
    request = requests_after_history(served, 1)[0]
    metadata = (("authorization", f"Bearer {served.predict_key}"),)
    checked = health_pb2.HealthCheckRequest(service=SERVICE.full_name)
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        deadline = time.monotonic() + 10  # gRPC's health follows the model's loading by a poll
        while health_pb2_grpc.HealthStub(channel).Check(checked, timeout=10).status != SERVING:
            assert time.monotonic() < deadline, "gRPC health never said SERVING"
            time.sleep(0.1)
    # Each channel its own connection: every one is answered the same.
    for n in range(8):
        with grpc.insecure_channel(
            f"127.0.0.1:{service.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            assert health_pb2_grpc.HealthStub(channel).Check(checked, timeout=10).status == SERVING
            method = (
                DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
                .FindServiceByName(SERVICE.full_name)
                .FindMethodByName("Predict")
            )
            assert method.input_type.full_name == "fraudstream.v1.PredictRequest"
            assert "timestamp" in method.input_type.fields_by_name  # its imports are served too
            answer = pb_grpc.InferenceServiceStub(channel).Predict(
                grpc_request(request, transaction_id=f"connection-{n}"), metadata=metadata, timeout=10
            )
            assert answer.model_version == served.published.version


def test_auth_validation_and_degraded_answers(served: Served, private_redis: PrivateRedis) -> None:
    service = served.service
    request = requests_after_history(served, 1)[0]
    with httpx.Client(base_url=service.url, timeout=10) as http:
        unauthorized = http.post("/v1/predict", json=request)
        assert unauthorized.status_code == 401
        assert unauthorized.headers["www-authenticate"] == "Bearer"
        assert http.post("/v1/predict", json=request, headers={"Authorization": "Bearer fsk_nope"}).status_code == 401
        wrong_scope = http.post("/v1/predict", json=request, headers={"Authorization": f"Bearer {served.ingest_key}"})
        assert wrong_scope.status_code == 403
        assert "predict scope" in wrong_scope.json()["detail"]

        bearer = {"Authorization": f"Bearer {served.predict_key}"}
        missing = http.post("/v1/predict", json={k: v for k, v in request.items() if k != "amount"}, headers=bearer)
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["code"] == "missing_field"
        assert "amount is required" in missing.json()["detail"][0]["reason"]
        bad_time = http.post("/v1/predict", json={**request, "timestamp": "yesterday"}, headers=bearer)
        assert bad_time.status_code == 422
        assert bad_time.json()["detail"][0]["code"] == "invalid_timestamp"
        assert http.post("/v1/predict", content=b"{nope", headers=bearer).status_code == 422
        too_large = http.post("/v1/predict", content=b"x" * 2_000_000, headers=bearer)
        assert too_large.status_code == 413
        bad_query = http.post("/v1/predict?explain=maybe", json=request, headers=bearer)
        assert bad_query.status_code == 422
        assert bad_query.json()["detail"][0]["code"] == "invalid_query"
        assert http.get("/v1/predict", headers=bearer).status_code == 405

        explained = http.post("/v1/predict?explain=true", json={**request, "transaction_id": "why"}, headers=bearer)
        assert explained.status_code == 200
        reasons = explained.json()["reasons"]
        assert 1 <= len(reasons) <= 5
        assert {r["name"] for r in reasons} <= set(FEATURE_NAMES)
        plain = http.post("/v1/predict", json={**request, "transaction_id": "why-not"}, headers=bearer)
        assert "reasons" not in plain.json()

        # The feature store goes away: answers still come, degraded, and counted.
        private_redis.kill()
        degraded = http.post("/v1/predict", json={**request, "transaction_id": "while-down"}, headers=bearer)
        assert degraded.status_code == 200
        assert degraded.json()["degraded"] is True
        assert degraded.json()["decision"] in {"approve", "review", "decline"}
    assert service.metric("fraudstream_inference_degraded_total") >= 1
