"""gRPC serving that every service shares: grpc.aio servers on one port, grpc.health.v1 and
server reflection, as a component of the service runner (fraudstream_common.lifecycle).

grpc.aio asks gRPC's core for one call at a time per server, the next only after the event
loop has taken the last: under load, calls wait in the core between the loop's turns. So a
service runs `acceptors` servers on its port (SO_REUSEPORT), sharing its servicers, the health
status and the loop; the kernel hands each connection to one of them, and calls on several
connections are taken several at a time. Measured with benchmarks/inference_latency.py
(README, "gRPC").
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fraudstream_common.health import Readiness

HEALTH_REFRESH_SECONDS = 1.0
log = logging.getLogger(__name__)


class GrpcAcceptors:
    """The component: `acceptors` servers on `host:port`, each with the services `register`
    adds to it (once per server; they may share one servicer), health and reflection. Health
    says SERVING for the whole server (""; the process serves, as /healthz) from the start, and
    for `service_name` while every check of `readiness` (the checks behind /readyz) passes,
    looked at every HEALTH_REFRESH_SECONDS: a client or balancer watching it stops sending to a
    replica that /readyz would take out."""

    name = "grpc"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        service_name: str,
        register: Callable[[grpc.aio.Server], None],
        acceptors: int = 1,
        max_message_bytes: int = 4 * 1024 * 1024,
        readiness: Readiness | None = None,
        reuse_port: bool = False,
    ) -> None:
        """With `reuse_port`, processes of one service share the port. Without, a port another
        process holds is refused, although this process's own acceptors share it."""
        shares_port = reuse_port or acceptors > 1
        if shares_port and not reuse_port:
            _refuse_a_port_in_use(host, port)
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", int(shares_port)),
        ]
        self._health = health.aio.HealthServicer()
        self._service_name = service_name
        self._readiness = readiness
        self._servers: list[grpc.aio.Server] = []
        for _ in range(acceptors):
            server = grpc.aio.server(options=options)
            register(server)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            reflection.enable_server_reflection((service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
            port = server.add_insecure_port(f"{host}:{port}")  # port 0: the first one's for the rest
            self._servers.append(server)

    async def run(self) -> None:
        for server in self._servers:
            await server.start()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        following = asyncio.create_task(self._follow_readiness())
        try:
            await asyncio.gather(*(server.wait_for_termination() for server in self._servers))
        finally:
            following.cancel()

    async def _follow_readiness(self) -> None:
        # What makes a service ready (a model loaded by another thread, a dependency reachable)
        # has no event to wait on: look again, every so often.
        serving: bool | None = None
        while True:
            ready = self._readiness is None or all((await self._readiness.evaluate()).values())
            if ready != serving:
                status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
                await self._health.set(self._service_name, status)
                log.info("gRPC health of %s: %s", self._service_name, "SERVING" if ready else "NOT_SERVING")
                serving = ready
            if self._readiness is None:
                return
            await asyncio.sleep(HEALTH_REFRESH_SECONDS)

    async def stop(self) -> None:
        await self._health.enter_graceful_shutdown()
        await asyncio.gather(*(server.stop(grace=5) for server in self._servers))


def _refuse_a_port_in_use(host: str, port: int) -> None:
    """SO_REUSEPORT would let this process share a port another one listens on, silently; a
    plain bind first finds out (SO_REUSEADDR only passes connections closing on the port)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RuntimeError(f"gRPC port {host}:{port} is in use: {error}") from None
