"""HTTP and gRPC ingest against the real service, broker and Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import httpx
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fraudstream_common.apikeys import Scope, create_key
from fraudstream_common.schemas.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
from fraudstream_common.topics import Topic
from tests.platform import PLATFORM, ServiceProcess, Topics, drain

SERVING = health_pb2.HealthCheckResponse.SERVING

pytestmark = pytest.mark.integration


def body(transaction_id: str, **overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "transaction_id": transaction_id,
        "customer_id": "c42",
        "terminal_id": "t7",
        "amount": 19.99,
        "timestamp": "2018-06-01T09:30:00+02:00",
    }
    document.update(overrides)
    return document


@dataclass(frozen=True)
class Keys:
    ingest: str
    predict_only: str


@pytest.fixture
def keys(topics: Topics) -> Keys:
    client = redis.Redis.from_url(PLATFORM.redis_url)
    return Keys(
        ingest=create_key(
            client, [Scope.INGEST], "it-ingest", secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix
        ),
        predict_only=create_key(
            client, [Scope.PREDICT], "it-predict", secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix
        ),
    )


@pytest.fixture
def running(ingest: ServiceProcess) -> ServiceProcess:
    ingest.start()
    return ingest


def test_http_contract(running: ServiceProcess, topics: Topics, keys: Keys) -> None:
    with httpx.Client(base_url=running.url, timeout=10) as anonymous:
        missing = anonymous.post("/v1/transactions", json=body("h0"))
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in missing.json()["detail"]
        unknown = anonymous.post("/v1/transactions", json=body("h0"), headers={"Authorization": "Bearer fsk_nope"})
        assert unknown.status_code == 401
        wrong_scope = anonymous.post(
            "/v1/transactions", json=body("h0"), headers={"Authorization": f"Bearer {keys.predict_only}"}
        )
        assert wrong_scope.status_code == 403
        assert "ingest scope" in wrong_scope.json()["detail"]

    bearer = {"Authorization": f"Bearer {keys.ingest}"}
    with httpx.Client(base_url=running.url, timeout=10, headers=bearer) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"redis": True, "kafka": True, "stream": True}

        one = client.post("/v1/transactions", json=body("h1"))
        assert one.status_code == 202
        assert one.json() == {"accepted": 1}
        batch = client.post("/v1/transactions", json=[body("h2"), body("h3", currency="USD")])
        assert batch.json() == {"accepted": 2}
        retry = client.post("/v1/transactions", json=body("h1", timestamp="2018-06-01T07:30:00Z"))
        assert retry.status_code == 202
        reused = client.post("/v1/transactions", json=body("h1", amount=1999.0))
        assert reused.status_code == 202  # accepted onto transactions.raw; the stream tells it apart

        invalid = client.post(
            "/v1/transactions", json=[body("h4"), body("h5", amount=-3), body("h6", timestamp="soon")]
        )
        assert invalid.status_code == 422
        details = invalid.json()["detail"]
        assert [(d["index"], d["code"]) for d in details] == [(1, "invalid_amount"), (2, "invalid_timestamp")]
        assert "negative" in details[0]["reason"]

        assert client.post("/v1/transactions", content=b"{nope").status_code == 422
        assert client.post("/v1/transactions", json=[]).status_code == 422
        too_big = client.post("/v1/transactions", content=b"[" + b" " * 1_100_000 + b"]")
        assert too_big.status_code == 413

        metrics = client.get("/metrics").text
        assert 'fraudstream_ingest_requests_total{result="accepted",transport="http"} 4.0' in metrics
        assert 'fraudstream_ingest_requests_total{result="unauthorized",transport="http"} 2.0' in metrics
        assert 'fraudstream_ingest_requests_total{result="forbidden",transport="http"} 1.0' in metrics

    # Nothing refused was written (h0); the invalid batch wrote nothing (h4 was valid but its
    # batch was refused); the retry of h1 (its time written otherwise) was dropped as a duplicate
    # by the stream, and h1's id under another amount went to the dead letters.
    out = drain(topics(Topic.TRANSACTIONS), expected=3)
    transactions = sorted((Transaction.FromString(m.value) for m in out), key=lambda t: t.transaction_id)
    assert [t.transaction_id for t in transactions] == ["h1", "h2", "h3"]
    assert [t.currency for t in transactions] == ["EUR", "EUR", "USD"]
    assert transactions[0].event_time.ToJsonString() == "2018-06-01T07:30:00Z"
    assert transactions[0].amount == pytest.approx(19.99)
    [letter] = [DeadLetter.FromString(m.value) for m in drain(topics(Topic.DEADLETTER), expected=1)]
    assert (letter.transaction_id, letter.error_code) == ("h1", "conflicting_duplicate")
    assert Transaction.FromString(letter.original_value).amount == pytest.approx(1999.0)


def test_grpc_contract(running: ServiceProcess, topics: Topics, keys: Keys) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        checked = health_pb2.HealthCheckRequest(service="fraudstream.v1.IngestService")
        deadline = time.monotonic() + 10  # gRPC's health looks at readiness every second
        while health_pb2_grpc.HealthStub(channel).Check(checked, timeout=5).status != SERVING:
            assert time.monotonic() < deadline, "gRPC health never said SERVING while /readyz did"
            time.sleep(0.1)

        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        bearer = [("authorization", f"Bearer {keys.ingest}")]

        def tx(transaction_id: str, amount: float = 5.0) -> Transaction:
            return Transaction(
                transaction_id=transaction_id,
                customer_id="c9",
                terminal_id="t9",
                amount=amount,
                event_time=Timestamp(seconds=1528000000),
            )

        with pytest.raises(grpc.RpcError) as missing:
            stub.Ingest(ingest_service_pb2.IngestRequest(transactions=[tx("g0")]), timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as wrong_scope:
            stub.Ingest(
                ingest_service_pb2.IngestRequest(transactions=[tx("g0")]),
                metadata=[("authorization", f"Bearer {keys.predict_only}")],
                timeout=10,
            )
        assert wrong_scope.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "ingest scope" in (wrong_scope.value.details() or "")

        accepted = stub.Ingest(
            ingest_service_pb2.IngestRequest(transactions=[tx("g1"), tx("g2")]), timeout=10, metadata=bearer
        )
        assert accepted.accepted == 2
        refused = stub.Ingest(
            ingest_service_pb2.IngestRequest(transactions=[tx("g3"), tx("g4", -1)]), timeout=10, metadata=bearer
        )
        assert refused.accepted == 0
        assert [(r.index, r.error_code) for r in refused.rejections] == [(1, "invalid_amount")]
        with pytest.raises(grpc.RpcError) as empty:
            stub.Ingest(ingest_service_pb2.IngestRequest(), timeout=10, metadata=bearer)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        oversized = ingest_service_pb2.IngestRequest(transactions=[tx(f"x{i}") for i in range(40_000)])
        with pytest.raises(grpc.RpcError) as too_big:
            stub.Ingest(oversized, timeout=10, metadata=bearer)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    ids = sorted(Transaction.FromString(m.value).transaction_id for m in drain(topics(Topic.TRANSACTIONS), expected=2))
    assert ids == ["g1", "g2"]


def test_sigterm_stops_cleanly(running: ServiceProcess) -> None:
    assert running.terminate() == 0
