"""HTTP transport: POST /v1/predict (one transaction) and /v1/predict/batch, health, metrics.

The body of /v1/predict is a transaction as on `transactions.raw` (JSON: transaction_id,
customer_id, terminal_id, amount, timestamp RFC 3339, optional currency), with an optional
`explain` (or `?explain=true`); /v1/predict/batch takes {"transactions": [...]}. The same
validation rules as ingest (fraudstream_common.validation): a 422 names each invalid
transaction and why. `Authorization: Bearer KEY` with scope predict; 401, 403 and 429 as they
apply; 413 above the size limit; 503 before a model is loaded.

The two scoring routes are plain ASGI in front of the FastAPI app that serves the rest (health,
metrics): they parse, validate and answer by hand, so FastAPI's routing, dependency solving and
middleware would only add cost on the path a payment waits on (about a fifth of the service's
time per request under load, measured with py-spy).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from fraudstream_common.apikeys import REFUSAL_OUTCOMES, ApiKeys, AuthError
from fraudstream_common.apikeys import Scope as KeyScope
from fraudstream_common.contracts import (
    Invalid,
    PredictBatchRequest,
    PredictionOut,
    PredictionsOut,
    PredictRequest,
    Refused,
    document,
    operation,
)
from fraudstream_common.health import Readiness
from fraudstream_common.http import add_health_routes
from fraudstream_common.schemas.v1.prediction_pb2 import Transport
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.validation import Rejection, TransactionValidator
from fraudstream_inference import metrics
from fraudstream_inference.core import Answer, ConflictError, InferenceCore, NotReadyError
from fraudstream_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


class RefusedError(Exception):
    """A call answered with an error status: the JSON body and the outcome counted."""

    def __init__(self, status: int, detail: Any, outcome: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(status)
        self.status, self.detail, self.outcome, self.headers = status, detail, outcome, headers or []


Handler = Callable[[Scope, Receive], Awaitable[Any]]


class ScoringRoutes:
    def __init__(self, core: InferenceCore, keys: ApiKeys | None, settings: InferenceSettings) -> None:
        self._core = core
        self._keys = keys
        self._limit = settings.max_http_body_bytes
        self._max_items = settings.max_batch_items
        self._retry_after = settings.not_ready_retry_after_seconds
        self._validator = TransactionValidator(settings)
        self.routes: dict[str, Handler] = {"/v1/predict": self.predict, "/v1/predict/batch": self.predict_batch}

    async def __call__(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        with metrics.REQUEST_SECONDS.labels("http").time():
            try:
                status, body, headers = 200, await handler(scope, receive), []
                metrics.REQUESTS.labels("http", "ok").inc()
            except RefusedError as refusal:
                status, body, headers = refusal.status, {"detail": refusal.detail}, refusal.headers
                metrics.REQUESTS.labels("http", refusal.outcome).inc()
            except Exception:
                logger.exception("scoring call failed")
                status, body, headers = 500, {"detail": "internal error"}, []
                metrics.REQUESTS.labels("http", "error").inc()
            await _respond(send, status, orjson.dumps(body), headers)

    async def predict(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        document = await self._document(scope, receive)
        validated = self._validator.validate_json(document, time.time())
        if isinstance(validated, Rejection):
            raise _invalid([_rejection(None, validated)])
        (answer,) = await self._answer([validated], _explain(scope, document))
        return _as_json(answer)

    async def predict_batch(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        document = await self._document(scope, receive)
        items = document.get("transactions") if isinstance(document, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= self._max_items:
            reason = f'send {{"transactions": [...]}} with 1 to {self._max_items} items'
            raise _invalid([{"index": None, "code": "invalid_batch", "reason": reason}])
        now = time.time()
        validated = [self._validator.validate_json(item, now) for item in items]
        rejected = [_rejection(i, v) for i, v in enumerate(validated) if isinstance(v, Rejection)]
        if rejected:
            raise _invalid(rejected)
        transactions = [v for v in validated if isinstance(v, Transaction)]
        answers = await self._answer(transactions, _explain(scope, document))
        return {"predictions": [_as_json(a) for a in answers]}

    async def _document(self, scope: Scope, receive: Receive) -> Any:
        """The JSON body of an authorized call of acceptable size."""
        headers = dict(scope["headers"])
        if self._keys is not None:
            authorization = headers.get(b"authorization")
            try:
                await self._keys.authorize(authorization.decode("latin-1") if authorization else None, KeyScope.PREDICT)
            except AuthError as refused:
                challenge = [(b"www-authenticate", b"Bearer")] if refused.status == 401 else None
                raise RefusedError(
                    refused.status, refused.reason, REFUSAL_OUTCOMES[refused.status], challenge
                ) from None
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            raise self._too_large()
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RefusedError(400, "client disconnected", "disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            return orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as error:
            raise _invalid(
                [{"index": None, "code": "invalid_json", "reason": f"body is not valid JSON: {error}"}]
            ) from None

    async def _answer(self, transactions: list[Transaction], explain: bool) -> list[Answer]:
        try:
            return await self._core.predict(transactions, Transport.TRANSPORT_HTTP, explain=explain)
        except NotReadyError as error:
            retry_after = str(self._retry_after).encode()
            raise RefusedError(503, str(error), "unavailable", [(b"retry-after", retry_after)]) from None
        except ConflictError as error:
            raise RefusedError(409, str(error), "conflict") from None

    def _too_large(self) -> RefusedError:
        return RefusedError(413, f"request body larger than {self._limit} bytes", "too_large")


def create_app(core: InferenceCore, keys: ApiKeys | None, settings: InferenceSettings, readiness: Readiness) -> ASGIApp:
    api = FastAPI(title="fraudstream inference", version="0.1.0")
    add_health_routes(api, readiness)
    document(
        api,
        {
            "/v1/predict": _scoring_operation(
                "Score one transaction",
                PredictRequest,
                ("The prediction", PredictionOut),
                "Invalid: the code and reason",
            ),
            "/v1/predict/batch": _scoring_operation(
                "Score 1 to max_batch_items transactions in one call",
                PredictBatchRequest,
                ("The predictions, in the order asked", PredictionsOut),
                "One or more invalid (each named); none is scored",
            ),
        },
    )
    scoring = ScoringRoutes(core, keys, settings)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handler = scoring.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await api(scope, receive, send)
        elif scope["method"] != "POST":
            await _respond(send, 405, orjson.dumps({"detail": "Method Not Allowed"}), [(b"allow", b"POST")])
        else:
            await scoring(handler, scope, receive, send)

    return app


def _scoring_operation(
    summary: str, request: type[BaseModel], answer: tuple[str, type[BaseModel]], invalid: str
) -> dict[str, Any]:
    not_ready = "No model loaded yet (the detail says what the replica waits for): retry after Retry-After"
    retry_after = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    answers: dict[str, tuple[str, type[BaseModel]]] = {
        "200": answer,
        "422": (invalid, Invalid),
        "409": (
            "A transaction id already decided for other content (customer, terminal, amount, currency or "
            "event time); none of the call's predictions is logged",
            Refused,
        ),
        "503": (not_ready, Refused),
    }
    return {"post": operation(summary, request, answers, headers={"503": retry_after})}


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _explain(scope: Scope, document: Any) -> bool:
    """`explain` in the body (true) or in the query string (true/false, 1/0, yes/no, on/off)."""
    if isinstance(document, dict) and document.get("explain") is True:
        return True
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "explain":
            if value.lower() in _TRUE:
                return True
            if value.lower() not in _FALSE:
                reason = f"query parameter explain must be true or false, got {value!r}"
                raise _invalid([{"index": None, "code": "invalid_query", "reason": reason}])
    return False


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


def _invalid(errors: list[dict[str, Any]]) -> RefusedError:
    return RefusedError(422, errors, "invalid")
