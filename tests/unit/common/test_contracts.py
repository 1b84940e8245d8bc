"""The OpenAPI documents of the APIs users call say what the validators do: the fields a
transaction must have are the ones the validator refuses it without, the optional ones it takes
without, and every reference resolves."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from fraudstream_common.contracts import TransactionIn
from fraudstream_common.health import Readiness
from fraudstream_common.settings import TransactionRules
from fraudstream_common.validation import ErrorCode, Rejection, TransactionValidator
from fraudstream_inference.core import InferenceCore
from fraudstream_inference.http import create_app as inference_app
from fraudstream_inference.rollout import Rollout
from fraudstream_inference.settings import InferenceSettings
from fraudstream_ingest.http import create_app as ingest_app
from fraudstream_ingest.settings import IngestSettings

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
VALID = {
    "transaction_id": "t1",
    "customer_id": "42",
    "terminal_id": "7",
    "amount": 57.3,
    "timestamp": "2026-12-01T11:59:00Z",
    "currency": "EUR",
}
WRONG_TYPE: dict[str, Any] = {"string": 12, "number": "12"}


def validate(document: dict[str, Any]) -> object:
    return TransactionValidator(TransactionRules()).validate_json(document, NOW.timestamp())


def test_the_valid_example_is_valid() -> None:
    assert not isinstance(validate(VALID), Rejection)


@pytest.mark.parametrize("name", list(TransactionIn.model_json_schema()["properties"]))
def test_a_field_is_required_in_the_document_exactly_when_the_validator_requires_it(name: str) -> None:
    schema = TransactionIn.model_json_schema()
    without = {k: v for k, v in VALID.items() if k != name}
    answer = validate(without)
    if name in schema["required"]:
        assert isinstance(answer, Rejection)
        assert answer.code is ErrorCode.MISSING_FIELD
    else:
        assert not isinstance(answer, Rejection)


@pytest.mark.parametrize("name", list(TransactionIn.model_json_schema()["properties"]))
def test_a_value_of_another_type_than_documented_is_refused(name: str) -> None:
    prop = TransactionIn.model_json_schema()["properties"][name]
    documented = prop.get("type") or next(t["type"] for t in prop["anyOf"] if t["type"] != "null")
    answer = validate({**VALID, name: WRONG_TYPE[documented]})
    assert isinstance(answer, Rejection)
    assert answer.code is ErrorCode.INVALID_TYPE


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in references(value)]
    if isinstance(node, list):
        return [r for value in node for r in references(value)]
    return []


async def served_document(app: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


async def api_documents() -> dict[str, dict[str, Any]]:
    settings = InferenceSettings(auth_enabled=False)
    core = InferenceCore(Rollout(settings), None, None, None)  # type: ignore[arg-type]
    scoring = inference_app(core, None, settings, Readiness())
    ingest = ingest_app(SimpleNamespace(settings=IngestSettings()), None, Readiness())  # type: ignore[arg-type]
    return {"inference": await served_document(scoring), "ingest": await served_document(ingest)}


@pytest.mark.anyio
async def test_the_routes_users_call_are_documented_with_their_bodies_and_every_reference_resolves() -> None:
    documents = await api_documents()
    expected = {"inference": {"/v1/predict", "/v1/predict/batch"}, "ingest": {"/v1/transactions"}}
    for name, document in documents.items():
        for path in expected[name]:
            operation = document["paths"][path]["post"]
            assert operation["requestBody"]["required"] is True
            assert {"200", "202"} & set(operation["responses"]), path
            assert {"401", "403", "413", "422", "429", "503"} <= set(operation["responses"]), path
        schemas = document["components"]["schemas"]
        for ref in references(document):
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.rsplit("/", 1)[1] in schemas, ref
    assert "Retry-After" in documents["inference"]["paths"]["/v1/predict"]["post"]["responses"]["503"]["headers"]
