"""Worker processes (FRAUDSTREAM_WORKERS=2): both share the HTTP and gRPC ports and answer,
/metrics on either counts the requests of both, SIGTERM stops them all cleanly, and a worker
that dies takes the service down with a failing exit code (for the orchestrator to restart)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from fraudstream_common.schemas.v1 import inference_service_pb2_grpc as pb_grpc
from tests.integration.inference.serving import grpc_request, requests_after_history, serve
from tests.platform import PrivateRedis, Topics

pytestmark = pytest.mark.integration


def listening_ports(process: psutil.Process) -> set[int]:
    return {c.laddr.port for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def test_two_workers_share_the_ports_and_stop_together(
    topics: Topics, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    served = serve(topics, tmp_path, private_redis, FRAUDSTREAM_WORKERS="2")
    service = served.service
    assert service.process is not None
    supervisor = psutil.Process(service.process.pid)
    workers = supervisor.children()
    assert len(workers) == 2
    ports = {service.http_port, service.grpc_port}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(ports <= listening_ports(w) for w in workers):
        time.sleep(0.2)
    assert all(ports <= listening_ports(w) for w in workers), "each worker listens on both ports"
    assert listening_ports(supervisor) == set()

    bearer = {"Authorization": f"Bearer {served.predict_key}"}
    requests = requests_after_history(served, 61)
    answers = []
    deadline = time.monotonic() + 60
    for request in requests[:60]:
        while True:  # a new connection each time: the kernel picks a worker for each
            with httpx.Client(base_url=service.url, timeout=10) as http:
                answer = http.post("/v1/predict", json=request, headers=bearer)
            if answer.status_code != 503 or time.monotonic() > deadline:  # 503: that worker still loading
                break
            time.sleep(0.2)
        answers.append(answer)
    assert [a.status_code for a in answers] == [200] * 60
    assert {a.json()["model_version"] for a in answers} == {served.published.version}
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        response = pb_grpc.InferenceServiceStub(channel).Predict(
            grpc_request(requests[60]),
            metadata=[("authorization", f"Bearer {served.predict_key}")],
            timeout=10,
        )
    assert response.model_version == served.published.version
    # Either worker answers /metrics with both workers' counts.
    http_ok = 'fraudstream_inference_requests_total{outcome="ok",transport="http"}'
    for _ in range(4):
        with httpx.Client(base_url=service.url, timeout=10) as http:
            text = http.get("/metrics").text
        assert f"{http_ok} 60.0" in text
        assert 'fraudstream_inference_requests_total{outcome="ok",transport="grpc"} 1.0' in text

    # SIGTERM: every worker stops in its order, the service exits 0.
    assert service.terminate() == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)

    # Started again, a worker that dies stops the service, which says so by its exit code.
    service.start()
    assert service.process is not None
    workers = psutil.Process(service.process.pid).children()
    assert len(workers) == 2
    workers[0].send_signal(signal.SIGKILL)
    assert service.process.wait(60) != 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
