"""HTTP transport: POST /v1/transactions (one JSON object or an array), health, metrics.

A call is atomic: every transaction valid, all written to `transactions.raw` before the 202;
any invalid, none written, and a 422 names each one with its reason. Retrying a call is
safe: the stream drops what was already ingested, by transaction id. `Authorization: Bearer
KEY` with scope ingest; 401, 403 and 429 as they apply, before the body is read; 413 for a
body over `max_http_body_bytes`, without reading the rest of it.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from fraudstream_common.apikeys import REFUSAL_OUTCOMES, ApiKeys, AuthError, Scope
from fraudstream_common.contracts import Accepted, Invalid, Refused, TransactionIn, document, operation, reference
from fraudstream_common.health import Readiness
from fraudstream_common.http import BodyLimit, add_health_routes
from fraudstream_common.kafka import DeliveryError
from fraudstream_ingest import metrics
from fraudstream_ingest.core import IngestCore


def create_app(core: IngestCore, keys: ApiKeys | None, readiness: Readiness) -> FastAPI:
    settings = core.settings
    app = FastAPI(title="fraudstream ingest", version="0.1.0")

    @app.post("/v1/transactions", status_code=202)
    async def ingest(request: Request) -> Response:
        if keys is not None:
            try:
                await keys.authorize(request.headers.get("authorization"), Scope.INGEST)
            except AuthError as refused:
                metrics.REQUESTS.labels("http", REFUSAL_OUTCOMES[refused.status]).inc()
                challenge = {"www-authenticate": "Bearer"} if refused.status == 401 else None
                return JSONResponse({"detail": refused.reason}, status_code=refused.status, headers=challenge)
        body = await request.body()  # at most max_http_body_bytes: BodyLimit answers 413 past it
        try:
            document: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            metrics.REQUESTS.labels("http", "invalid").inc()
            return _error(
                422,
                [
                    {
                        "index": None,
                        "code": "invalid_json",
                        "reason": f"body is not valid JSON: {exc}",
                    }
                ],
            )
        items = document if isinstance(document, list) else [document]
        if not items or len(items) > settings.max_batch_items:
            metrics.REQUESTS.labels("http", "invalid").inc()
            return _error(
                422,
                [
                    {
                        "index": None,
                        "code": "invalid_batch",
                        "reason": f"send 1 to {settings.max_batch_items} transactions",
                    }
                ],
            )
        accepted, rejected = core.validate(items)
        if rejected:
            metrics.REQUESTS.labels("http", "invalid").inc()
            return _error(
                422,
                [
                    {
                        "index": index,
                        "code": r.code.value,
                        "reason": r.reason,
                        "transaction_id": r.transaction_id,
                    }
                    for index, r in rejected
                ],
            )
        try:
            await core.submit(accepted)
        except DeliveryError as exc:
            metrics.REQUESTS.labels("http", "unavailable").inc()
            return JSONResponse({"detail": f"Kafka did not acknowledge the write: {exc}"}, status_code=503)
        metrics.REQUESTS.labels("http", "accepted").inc()
        return JSONResponse({"accepted": len(accepted)}, status_code=202)

    add_health_routes(app, readiness)
    one_or_many = {"oneOf": [reference(TransactionIn), {"type": "array", "items": reference(TransactionIn)}]}
    document(
        app,
        {
            "/v1/transactions": {
                "post": operation(
                    "Write transactions to transactions.raw: all of them, or none when one is invalid",
                    one_or_many,
                    {
                        "202": ("Every transaction written (a retried call is safe: duplicates are dropped)", Accepted),
                        "422": ("One or more invalid (each named), or 0 or too many in the call", Invalid),
                        "503": ("Kafka did not acknowledge the write: retry", Refused),
                    },
                )
            }
        },
    )
    app.add_middleware(
        BodyLimit,
        limit=settings.max_http_body_bytes,
        refused=metrics.REQUESTS.labels("http", "too_large").inc,
    )
    return app


def _error(status: int, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=status)
