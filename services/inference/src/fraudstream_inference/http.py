"""HTTP transport: POST /v1/predict (one transaction) and /v1/predict/batch, health, metrics.

The body of /v1/predict is a transaction as on `transactions.raw` (JSON: transaction_id,
customer_id, terminal_id, amount, timestamp RFC 3339, optional currency), with an optional
`explain`; /v1/predict/batch takes {"transactions": [...]}. The same validation rules as
ingest (fraudstream_common.validation): a 422 names each invalid transaction and why.
`Authorization: Bearer KEY` with scope predict; 401, 403 and 429 as they apply; 413 above
the size limit; 503 before a model is loaded.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse, Response

from fraudstream_common.apikeys import ApiKeys, AuthError, Scope
from fraudstream_common.health import Readiness
from fraudstream_common.http import add_health_routes
from fraudstream_common.schemas.v1.prediction_pb2 import Transport
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.validation import Rejection, TransactionValidator
from fraudstream_inference import metrics
from fraudstream_inference.core import Answer, InferenceCore, NotReadyError
from fraudstream_inference.settings import InferenceSettings


def create_app(core: InferenceCore, keys: ApiKeys | None, settings: InferenceSettings, readiness: Readiness) -> FastAPI:
    app = FastAPI(title="fraudstream inference", version="0.1.0", default_response_class=ORJSONResponse)
    validator = TransactionValidator(settings)

    async def parse(request: Request) -> Any | Response:
        """The JSON body of an authorized call of acceptable size, or the response refusing it."""
        if keys is not None:
            try:
                await keys.authorize(request.headers.get("authorization"), Scope.PREDICT)
            except AuthError as refused:
                outcome = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}[refused.status]
                metrics.REQUESTS.labels("http", outcome).inc()
                headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
                return ORJSONResponse({"detail": refused.reason}, status_code=refused.status, headers=headers)
        limit = settings.max_http_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _too_large(limit)
        body = await request.body()
        if len(body) > limit:
            return _too_large(limit)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return _invalid([{"index": None, "code": "invalid_json", "reason": f"body is not valid JSON: {error}"}])

    async def answer(transactions: list[Transaction], explain: bool) -> list[Answer] | Response:
        try:
            return await core.predict(transactions, Transport.TRANSPORT_HTTP, explain=explain)
        except NotReadyError as error:
            metrics.REQUESTS.labels("http", "unavailable").inc()
            return ORJSONResponse({"detail": str(error)}, status_code=503)

    @app.post("/v1/predict")
    async def predict(request: Request, explain: bool = False) -> Response:
        with metrics.REQUEST_SECONDS.labels("http").time():
            document = await parse(request)
            if isinstance(document, Response):
                return document
            validated = validator.validate_json(document, time.time())
            if isinstance(validated, Rejection):
                return _invalid([_rejection(None, validated)])
            answers = await answer([validated], explain or _explain_in(document))
            if isinstance(answers, Response):
                return answers
            metrics.REQUESTS.labels("http", "ok").inc()
            return ORJSONResponse(_as_json(answers[0]))

    @app.post("/v1/predict/batch")
    async def predict_batch(request: Request, explain: bool = False) -> Response:
        with metrics.REQUEST_SECONDS.labels("http").time():
            document = await parse(request)
            if isinstance(document, Response):
                return document
            items = document.get("transactions") if isinstance(document, dict) else None
            if not isinstance(items, list) or not 1 <= len(items) <= settings.max_batch_items:
                return _invalid(
                    [
                        {
                            "index": None,
                            "code": "invalid_batch",
                            "reason": f'send {{"transactions": [...]}} with 1 to {settings.max_batch_items} items',
                        }
                    ]
                )
            now = time.time()
            validated = [validator.validate_json(item, now) for item in items]
            rejected = [_rejection(i, v) for i, v in enumerate(validated) if isinstance(v, Rejection)]
            if rejected:
                return _invalid(rejected)
            transactions = [v for v in validated if isinstance(v, Transaction)]
            answers = await answer(transactions, explain or _explain_in(document))
            if isinstance(answers, Response):
                return answers
            metrics.REQUESTS.labels("http", "ok").inc()
            return ORJSONResponse({"predictions": [_as_json(a) for a in answers]})

    add_health_routes(app, readiness)
    return app


def _explain_in(document: Any) -> bool:
    return isinstance(document, dict) and document.get("explain") is True


def _as_json(answer: Answer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": answer.transaction_id,
        "score": answer.score,
        "decision": answer.decision_name,
        "model_version": answer.model_version,
        "degraded": answer.degraded,
        "latency_ms": round(answer.latency_ms, 3),
    }
    if answer.reasons:
        body["reasons"] = [{"name": r.name, "value": r.value, "contribution": r.contribution} for r in answer.reasons]
    return body


def _rejection(index: int | None, rejection: Rejection) -> dict[str, Any]:
    return {
        "index": index,
        "code": rejection.code.value,
        "reason": rejection.reason,
        "transaction_id": rejection.transaction_id,
    }


def _invalid(errors: list[dict[str, Any]]) -> Response:
    metrics.REQUESTS.labels("http", "invalid").inc()
    return ORJSONResponse({"detail": errors}, status_code=422)


def _too_large(limit: int) -> Response:
    metrics.REQUESTS.labels("http", "too_large").inc()
    return ORJSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)
