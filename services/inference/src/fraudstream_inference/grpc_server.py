"""gRPC transport: fraudstream.v1.InferenceService (Predict, PredictBatch), grpc.health.v1 and
server reflection. Same core, rules and keys as HTTP: the key goes in `authorization` metadata
("Bearer KEY"); UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED (rate, size),
INVALID_ARGUMENT (with the reason), UNAVAILABLE before a model is loaded."""

from __future__ import annotations

import time

import grpc

from fraudstream_common.apikeys import ApiKeys, Scope, authorize_grpc
from fraudstream_common.grpc_serving import CallContext, GrpcComponent, grpc_component
from fraudstream_common.health import Readiness
from fraudstream_common.schemas.v1 import inference_service_pb2 as pb
from fraudstream_common.schemas.v1.prediction_pb2 import Transport
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.validation import Rejection, TransactionValidator
from fraudstream_inference import metrics
from fraudstream_inference.core import Answer, ConflictError, InferenceCore, NotReadyError
from fraudstream_inference.settings import InferenceSettings

SERVICE = pb.DESCRIPTOR.services_by_name["InferenceService"]


class InferenceServicer:
    def __init__(self, core: InferenceCore, keys: ApiKeys | None, settings: InferenceSettings) -> None:
        self._core = core
        self._keys = keys
        self._settings = settings
        self._validator = TransactionValidator(settings)

    async def Predict(  # noqa: N802 - the generated interface's name
        self, request: pb.PredictRequest, context: CallContext
    ) -> pb.PredictResponse:
        with metrics.REQUEST_SECONDS.labels("grpc").time():
            await self._authorize(context)
            (answer,) = await self._answer([request], request.explain, context)
            metrics.REQUESTS.labels("grpc", "ok").inc()
            return _response(answer)

    async def PredictBatch(  # noqa: N802
        self, request: pb.PredictBatchRequest, context: CallContext
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

    async def _authorize(self, context: CallContext) -> None:
        if self._keys is not None:
            await authorize_grpc(self._keys, context, Scope.PREDICT, _count_refusal)

    async def _answer(self, requests: list[pb.PredictRequest], explain: bool, context: CallContext) -> list[Answer]:
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
        except ConflictError as error:
            metrics.REQUESTS.labels("grpc", "conflict").inc()
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(error))
            raise


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


def grpc_server(
    core: InferenceCore,
    keys: ApiKeys | None,
    settings: InferenceSettings,
    readiness: Readiness,
    *,
    reuse_port: bool = False,
) -> GrpcComponent:
    """The service's gRPC component; its health follows `readiness` (a model loaded, Redis and
    Kafka reachable). With `reuse_port`, worker processes share the port."""
    return grpc_component(
        host=settings.http_host,
        port=settings.grpc_port,
        service=SERVICE,
        servicer=InferenceServicer(core, keys, settings),
        threads=settings.grpc_threads,
        max_message_bytes=settings.max_http_body_bytes,
        readiness=readiness,
        reuse_port=reuse_port,
    )
