"""gRPC transport: fraudstream.v1.IngestService/Ingest, grpc.health.v1 and server reflection.

Same contract as HTTP: a call is atomic; an invalid one writes nothing and its response lists
each rejection (the call itself succeeds, so the client gets the structured reasons). The API
key goes in `authorization` metadata ("Bearer KEY", scope ingest); UNAUTHENTICATED,
PERMISSION_DENIED and RESOURCE_EXHAUSTED as they apply.
"""

from __future__ import annotations

import grpc

from fraudstream_common.apikeys import ApiKeys, Scope, authorize_grpc
from fraudstream_common.grpc_serving import CallContext, GrpcComponent, grpc_component
from fraudstream_common.health import Readiness
from fraudstream_common.kafka import DeliveryError
from fraudstream_common.schemas.v1 import ingest_service_pb2
from fraudstream_ingest import metrics
from fraudstream_ingest.core import IngestCore

SERVICE = ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"]


class IngestServicer:
    def __init__(self, core: IngestCore, keys: ApiKeys | None) -> None:
        self._core = core
        self._keys = keys

    async def Ingest(  # noqa: N802 - the generated interface's name
        self, request: ingest_service_pb2.IngestRequest, context: CallContext
    ) -> ingest_service_pb2.IngestResponse:
        if self._keys is not None:
            await authorize_grpc(self._keys, context, Scope.INGEST, _count_refusal)
        limit = self._core.settings.max_batch_items
        if not 1 <= len(request.transactions) <= limit:
            metrics.REQUESTS.labels("grpc", "invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"send 1 to {limit} transactions")
        accepted, rejected = self._core.validate(list(request.transactions))
        if rejected:
            metrics.REQUESTS.labels("grpc", "invalid").inc()
            return ingest_service_pb2.IngestResponse(
                accepted=0,
                rejections=[
                    ingest_service_pb2.Rejection(index=i, error_code=r.code.value, reason=r.reason) for i, r in rejected
                ],
            )
        try:
            await self._core.submit(accepted)
        except DeliveryError as exc:
            metrics.REQUESTS.labels("grpc", "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"Kafka did not acknowledge the write: {exc}")
        metrics.REQUESTS.labels("grpc", "accepted").inc()
        return ingest_service_pb2.IngestResponse(accepted=len(accepted))


def _count_refusal(outcome: str) -> None:
    metrics.REQUESTS.labels("grpc", outcome).inc()


def grpc_server(core: IngestCore, keys: ApiKeys | None, readiness: Readiness) -> GrpcComponent:
    """The service's gRPC component; its health follows `readiness` (Redis and Kafka reachable,
    the stream consuming)."""
    settings = core.settings
    return grpc_component(
        host=settings.http_host,
        port=settings.grpc_port,
        service=SERVICE,
        servicer=IngestServicer(core, keys),
        threads=settings.grpc_threads,
        max_message_bytes=settings.max_http_body_bytes,
        readiness=readiness,
    )
