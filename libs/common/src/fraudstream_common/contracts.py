"""The HTTP bodies of the APIs users call (ingest's `POST /v1/transactions`, inference's
`POST /v1/predict` and `/v1/predict/batch`), as pydantic models, for their OpenAPI documents:
what `/docs` shows and what clients are generated from.

The services do not parse requests with these models: their transports validate with
fraudstream_common.validation, which says why a transaction is refused, one by one, at a
fraction of the cost. tests/unit/common/test_contracts.py holds the two to each other.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema


class TransactionIn(BaseModel):
    """A card payment, as ingest and scoring take it."""

    model_config = ConfigDict(extra="allow")

    transaction_id: str = Field(description="Unique per payment; a repeat is dropped by ingest as a duplicate.")
    customer_id: str = Field(description="The card holder.")
    terminal_id: str = Field(description="The merchant's terminal.")
    amount: float = Field(description="At least 0 and at most the service's max_amount.")
    timestamp: str = Field(
        description="RFC 3339 with an offset (2018-04-01T12:00:00Z); not before min_event_time nor more than "
        "max_clock_skew_seconds in the future.",
        json_schema_extra={"format": "date-time"},
    )
    currency: str | None = Field(default=None, description="ISO 4217 code; the service's default_currency if absent.")


class PredictRequest(TransactionIn):
    explain: bool = Field(default=False, description="Add the features that weighed most (also ?explain=true).")


class PredictBatchRequest(BaseModel):
    transactions: list[TransactionIn] = Field(min_length=1, description="1 to max_batch_items transactions.")
    explain: bool = Field(default=False, description="Add the features that weighed most to every prediction.")


class Decision(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class Reason(BaseModel):
    name: str = Field(description="A feature.")
    value: float = Field(description="Its value for this transaction.")
    contribution: float = Field(description="What it added to the model's logit.")


class PredictionOut(BaseModel):
    transaction_id: str
    score: float = Field(ge=0, le=1, description="Fraud probability.")
    decision: Decision = Field(description="By the serving version's review and decline thresholds.")
    model_version: str
    degraded: bool = Field(description="Scored without the stored features (their store did not answer in time).")
    latency_ms: float
    reasons: list[Reason] | None = Field(default=None, description="With explain only.")


class PredictionsOut(BaseModel):
    predictions: list[PredictionOut] = Field(description="In the order asked.")


class Accepted(BaseModel):
    accepted: int = Field(description="Transactions written to transactions.raw.")


class Rejected(BaseModel):
    index: int | None = Field(description="The transaction's place in the call (null: the call as a whole).")
    code: str = Field(description="Machine-readable: missing_field, invalid_type, invalid_timestamp, ...")
    reason: str = Field(description="In words.")
    transaction_id: str | None = Field(default=None, description="The refused transaction's id, where it has one.")


class Invalid(BaseModel):
    detail: list[Rejected] = Field(description="Every transaction refused, and why; nothing of the call was taken.")


class Refused(BaseModel):
    detail: str


_MODELS: tuple[type[BaseModel], ...] = (
    TransactionIn,
    PredictRequest,
    PredictBatchRequest,
    PredictionOut,
    PredictionsOut,
    Accepted,
    Invalid,
    Refused,
)
_REFUSALS = {
    "401": "No API key, an unknown or expired one (WWW-Authenticate: Bearer).",
    "403": "The key lacks the route's scope.",
    "413": "The body is larger than max_http_body_bytes.",
    "429": "The key's rate limit is exceeded.",
}


def reference(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": reference(model)}}


def operation(
    summary: str,
    request: type[BaseModel] | dict[str, Any],
    answers: dict[str, tuple[str, type[BaseModel]]],
    *,
    headers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OpenAPI operation of a JSON route with an API key: `request` (a model, or a schema),
    `answers` by status (description, body model), the refusals every such route has."""
    body = _json(request) if isinstance(request, type) else {"application/json": {"schema": request}}
    responses: dict[str, Any] = {
        status: {"description": text, "content": _json(model)} for status, (text, model) in answers.items()
    }
    for status, text in _REFUSALS.items():
        responses.setdefault(status, {"description": text, "content": _json(Refused)})
    for status, status_headers in (headers or {}).items():
        responses[status]["headers"] = status_headers
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": body},
        "responses": responses,
    }


def document(api: FastAPI, paths: dict[str, dict[str, Any]]) -> None:
    """Makes `api`'s OpenAPI document hold `paths` (routes it serves outside FastAPI's routing,
    or whose bodies FastAPI does not parse), the models above and the bearer scheme."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version, routes=api.routes, description=api.description)
            for path, operations in paths.items():
                schema.setdefault("paths", {}).setdefault(path, {}).update(operations)
            _, definitions = models_json_schema(
                [(model, "validation") for model in _MODELS], ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(definitions.get("$defs", {}))
            components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
