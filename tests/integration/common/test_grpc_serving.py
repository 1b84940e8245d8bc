"""gRPC serving (fraudstream_common.grpc_serving) on real sockets: its health follows the
service's readiness both ways, as /readyz does."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fraudstream_common import grpc_serving
from fraudstream_common.grpc_serving import GrpcAcceptors
from fraudstream_common.health import Readiness
from tests.platform import free_port

pytestmark = pytest.mark.anyio

SERVICE_NAME = "fraudstream.v1.InferenceService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def until(health: health_pb2_grpc.HealthStub, service: str, status: int) -> None:
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    deadline = time.monotonic() + 5
    while True:
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:  # NOT_FOUND: not yet set
                raise
        else:
            if answer.status == status:
                return
        assert time.monotonic() < deadline, f"{service or 'the server'} never said {name}"
        await asyncio.sleep(0.02)


async def test_health_follows_readiness_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_serving, "HEALTH_REFRESH_SECONDS", 0.05)
    dependency = {"up": False}

    async def dependency_reachable() -> bool:
        return dependency["up"]

    readiness = Readiness()
    readiness.add("dependency", dependency_reachable)
    port = free_port()
    acceptors = GrpcAcceptors(
        host="127.0.0.1",
        port=port,
        service_name=SERVICE_NAME,
        register=lambda server: None,
        acceptors=2,
        readiness=readiness,
    )
    serving = asyncio.create_task(acceptors.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await until(health, "", SERVING)  # the process serves, whatever its dependencies
            await until(health, SERVICE_NAME, NOT_SERVING)
            dependency["up"] = True
            await until(health, SERVICE_NAME, SERVING)
            dependency["up"] = False
            await until(health, SERVICE_NAME, NOT_SERVING)
    finally:
        await acceptors.stop()
        await serving
