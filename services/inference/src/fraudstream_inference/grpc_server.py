"""gRPC transport: fraudstream.v1.InferenceService (Predict, PredictBatch), grpc.health.v1 and
server reflection. Same core, rules and keys as HTTP: the key goes in `authorization` metadata
("Bearer KEY"); UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED (rate, size),
INVALID_ARGUMENT (with the reason), UNAVAILABLE before a model is loaded."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fraudstream_common.apikeys import ApiKeys, Scope, authorize_grpc
from fraudstream_common.schemas.v1 import inference_service_pb2 as pb
from fraudstream_common.schemas.v1 import inference_service_pb2_grpc as pb_grpc
from fraudstream_common.schemas.v1.prediction_pb2 import Transport
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.validation import Rejection, TransactionValidator
from fraudstream_inference import metrics
from fraudstream_inference.core import Answer, InferenceCore, NotReadyError
from fraudstream_inference.settings import InferenceSettings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InferenceService"].full_name


class InferenceServicer(pb_grpc.InferenceServiceServicer):
    def __init__(self, core: InferenceCore, keys: ApiKeys | None, settings: InferenceSettings) -> None:
        self._core = core
        self._keys = keys
        self._settings = settings
        self._validator = TransactionValidator(settings)

    async def Predict(  # noqa: N802 - the generated interface's name
        self, request: pb.PredictRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictResponse:
        with metrics.REQUEST_SECONDS.labels("grpc").time():
            await self._authorize(context)
            (answer,) = await self._answer([request], request.explain, context)
            metrics.REQUESTS.labels("grpc", "ok").inc()
            return _response(answer)

    async def PredictBatch(  # noqa: N802
        self, request: pb.PredictBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictBatchResponse:
        with metrics.REQUEST_SECONDS.labels("grpc").time():
            await self._authorize(context)
            limit = self._settings.max_batch_items
            if not 1 <= len(request.requests) <= limit:
                metrics.REQUESTS.labels("grpc", "invalid").inc()
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"send 1 to {limit} requests")
            explain = any(r.explain for r in request.requests)
            answers = await self._answer(list(request.requests), explain, context)
            metrics.REQUESTS.labels("grpc", "ok").inc()
            return pb.PredictBatchResponse(responses=[_response(a) for a in answers])

    async def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        if self._keys is not None:
            await authorize_grpc(self._keys, context, Scope.PREDICT, _count_refusal)

    async def _answer(
        self, requests: list[pb.PredictRequest], explain: bool, context: grpc.aio.ServicerContext
    ) -> list[Answer]:
        now = time.time()
        transactions: list[Transaction] = []
        for index, request in enumerate(requests):
            transaction = Transaction(
                transaction_id=request.transaction_id,
                customer_id=request.customer_id,
                terminal_id=request.terminal_id,
                amount=request.amount,
                currency=request.currency,
            )
            if request.HasField("timestamp"):
                transaction.event_time.CopyFrom(request.timestamp)
            validated = self._validator.validate_message(transaction, now)
            if isinstance(validated, Rejection):
                metrics.REQUESTS.labels("grpc", "invalid").inc()
                where = f"request {index}: " if len(requests) > 1 else ""
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"{where}{validated.code.value}: {validated.reason}"
                )
            transactions.append(transaction)
        try:
            return await self._core.predict(transactions, Transport.TRANSPORT_GRPC, explain=explain)
        except NotReadyError as error:
            metrics.REQUESTS.labels("grpc", "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
            raise  # abort raises; this keeps the type checker informed


def _count_refusal(outcome: str) -> None:
    metrics.REQUESTS.labels("grpc", outcome).inc()


def _response(answer: Answer) -> pb.PredictResponse:
    return pb.PredictResponse(
        transaction_id=answer.transaction_id,
        score=answer.score,
        decision=answer.decision,  # type: ignore[arg-type]
        model_version=answer.model_version,
        degraded=answer.degraded,
        latency_ms=answer.latency_ms,
        reasons=[
            pb.FeatureContribution(name=r.name, value=r.value, contribution=r.contribution) for r in answer.reasons
        ],
    )


class GrpcServer:
    """`settings.grpc_acceptors` grpc.aio servers on one port (SO_REUSEPORT), sharing the
    servicer, the health status and the event loop. grpc.aio asks gRPC's core for one call at a
    time per server, the next only after the event loop has taken the last: under load, calls
    wait in the core between the loop's turns, and fewer of them reach each scoring pass. The
    kernel hands each connection to one of the servers, so calls on several connections are
    taken several at a time. Measured with benchmarks/inference_latency.py (README)."""

    name = "grpc"

    def __init__(
        self, core: InferenceCore, keys: ApiKeys | None, settings: InferenceSettings, *, reuse_port: bool = False
    ) -> None:
        """With `reuse_port`, worker processes share the port. Without, a port another process
        holds is refused, although this process's own acceptors share it."""
        shares_port = reuse_port or settings.grpc_acceptors > 1
        if shares_port and not reuse_port:
            _refuse_a_port_in_use(settings.http_host, settings.grpc_port)
        max_bytes = settings.max_http_body_bytes
        options = [
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", int(shares_port)),
        ]
        servicer = InferenceServicer(core, keys, settings)
        self.health = health.aio.HealthServicer()
        self._servers: list[grpc.aio.Server] = []
        port = settings.grpc_port
        for _ in range(settings.grpc_acceptors):
            server = grpc.aio.server(options=options)
            pb_grpc.add_InferenceServiceServicer_to_server(servicer, server)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
            reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
            port = server.add_insecure_port(f"{settings.http_host}:{port}")  # port 0: the first one's
            self._servers.append(server)
        self._core = core

    async def run(self) -> None:
        for server in self._servers:
            await server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        serving = asyncio.create_task(self._serving_once_a_model_is_loaded())
        try:
            await asyncio.gather(*(server.wait_for_termination() for server in self._servers))
        finally:
            serving.cancel()

    async def _serving_once_a_model_is_loaded(self) -> None:
        # The model is loaded by the follower's thread, which knows no event loop: look, often.
        while not self._core.ready:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self) -> None:
        await self.health.enter_graceful_shutdown()
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
