"""Every HTTP API users call (ingest, scoring, the monitor's admin actions), fuzzed from its own
OpenAPI document (Schemathesis): bodies that
fit the schema and bodies that do not, odd types, huge numbers, unicode, missing fields. Each
answer must be no server error and must be what the document says (status, content type,
schema, headers). The apps run in process on their real routes, validation and core, with
stand-ins for Kafka and the feature store.

One check is left out: that every body the schema allows is accepted. A transaction's
validity also depends on the clock (its timestamp may be at most `max_clock_skew_seconds`
ahead and not before `min_event_time`) and on limits a JSON Schema cannot say across fields;
those refusals are 422s with reasons, which the other checks hold to the document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from fraudstream_common.apikeys import ApiKeys, Scope, create_key
from fraudstream_common.audit import AuditLog, AuditTrail
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.health import Readiness
from fraudstream_inference.core import InferenceCore
from fraudstream_inference.http import create_app as inference_app
from fraudstream_inference.model import ScoringModel, load
from fraudstream_inference.rollout import Rollout
from fraudstream_inference.settings import Device, InferenceSettings
from fraudstream_ingest.core import IngestCore
from fraudstream_ingest.http import create_app as ingest_app
from fraudstream_ingest.settings import IngestSettings
from fraudstream_modelling.model import ModelParams, to_onnx, train
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.http import PauseFlag
from fraudstream_monitor.http import create_app as monitor_app
from fraudstream_monitor.operations import AliasMove, OperationError
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_monitor.versions import VersionCatalogue
from tests.unit.common.test_apikeys import SECRET, FakeRedis
from tests.unit.inference.test_core import Decisions, Features
from tests.unit.inference.test_model_checks import event
from tests.unit.monitor.fixtures import InMemoryVersions


class AcknowledgingProducer:
    """transactions.raw as a broker that acknowledges every write."""

    def __init__(self) -> None:
        self.written = 0

    async def produce(self, topic: str, value: bytes, key: bytes, headers: Sequence[tuple[str, Any]]) -> None:
        self.written += 1


# One key with both scopes, in a stand-in for Redis, checked as the services check keys.
KEYS = FakeRedis()
KEY = create_key(KEYS, [Scope.PREDICT, Scope.INGEST, Scope.ADMIN], "fuzz", secret=SECRET)  # type: ignore[arg-type]
BEARER = {"Authorization": f"Bearer {KEY}"}


def key_check() -> ApiKeys:
    return ApiKeys(KEYS, secret=SECRET, rate_per_second=1e9, burst=1e9)  # type: ignore[arg-type]


def small_model() -> ScoringModel:
    """A real model (trees, ONNX, the explainer's graph), trained on noise in a second."""
    width = len(FEATURE_NAMES)
    features = np.random.default_rng(0).random((2_000, width)).astype(np.float32)
    trees = to_onnx(train(features, features[:, 0] > 0.7, ModelParams(n_estimators=20)), width)
    return load(event(), trees, device=Device.CPU, intra_op_threads=1, warmup_rows=8)


def scoring() -> Any:
    settings = InferenceSettings()
    rollout = Rollout(settings)
    rollout.install(small_model())
    core = InferenceCore(rollout, Features(), Decisions(), None)  # type: ignore[arg-type]
    return inference_app(core, key_check(), settings, Readiness())


def ingest() -> Any:
    core = IngestCore(IngestSettings(), None, AcknowledgingProducer())  # type: ignore[arg-type]
    return ingest_app(core, key_check(), Readiness())


def now_for_half(case: schemathesis.Case[Any]) -> None:
    """Gives every other generated transaction a timestamp valid now (a random date-time almost
    never is), so that the fuzzing reaches scoring and writing, not only refusals."""
    body = case.body
    transactions = body.get("transactions") if isinstance(body, dict) else body
    items = transactions if isinstance(transactions, list) else [body]
    for index, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("timestamp"), str) and index % 2 == 0:
            item["timestamp"] = datetime.now(UTC).isoformat()


class Registry:
    """The monitor's registry operations: version 1 exists; nothing to roll back to."""

    def promote(self, version: str, by: str) -> AliasMove:
        if version != "1":
            raise OperationError(f"no version {version}")
        return AliasMove("champion", version, None)

    def roll_back(self, by: str) -> AliasMove:
        raise OperationError("champion version 1 replaced no earlier version")

    def registry_state(self) -> tuple[dict[str, str], str | None]:
        return {"champion": "1"}, None

    def runs(self) -> list[dict[str, Any]]:
        return []


class Flag:
    def __init__(self) -> None:
        self.value: str | None = None

    async def get(self, key: str) -> str | None:
        return self.value

    async def set(self, key: str, value: str) -> None:
        self.value = value

    async def delete(self, key: str) -> None:
        self.value = None


def monitor() -> Any:
    settings = MonitorSettings()
    core = MonitorCore(settings, InMemoryVersions(), 1)
    return monitor_app(
        core,
        VersionCatalogue("http://127.0.0.1:9"),
        Registry(),  # type: ignore[arg-type]
        AcknowledgingProducer(),  # type: ignore[arg-type]
        "retrain.requests",
        PauseFlag(Flag(), "paused"),  # type: ignore[arg-type]
        key_check(),
        Readiness(),
        AuditLog(AcknowledgingProducer(), "audit", "test"),  # type: ignore[arg-type]
        AuditTrail(settings, client_id="test"),
    )


SCORING = schemathesis.openapi.from_asgi("/openapi.json", scoring())
INGEST = schemathesis.openapi.from_asgi("/openapi.json", ingest())
MONITOR = schemathesis.openapi.from_asgi("/openapi.json", monitor())
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@SCORING.include(path_regex="^/v1/").parametrize()
@FUZZ
def test_scoring_answers_every_body_as_its_document_says(case: schemathesis.Case[Any]) -> None:
    now_for_half(case)
    case.call_and_validate(headers=BEARER, excluded_checks=[positive_data_acceptance])


@INGEST.include(path_regex="^/v1/").parametrize()
@FUZZ
def test_ingest_answers_every_body_as_its_document_says(case: schemathesis.Case[Any]) -> None:
    now_for_half(case)
    case.call_and_validate(headers=BEARER, excluded_checks=[positive_data_acceptance])


@MONITOR.include(path_regex="^/api/admin/").parametrize()
@FUZZ
def test_the_admin_actions_answer_every_body_as_their_document_says(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers=BEARER, excluded_checks=[positive_data_acceptance])


def test_the_fuzzing_reaches_both_answers() -> None:
    """Not only refusals: a body valid now is accepted by both, so the fuzzing above exercises
    the paths behind validation too."""
    body = {"transaction_id": "f1", "customer_id": "c", "terminal_id": "t", "amount": 1.5}
    body["timestamp"] = datetime.now(UTC).isoformat()
    assert TestClient(scoring()).post("/v1/predict", json=body, headers=BEARER).status_code == 200
    assert TestClient(ingest()).post("/v1/transactions", json=body, headers=BEARER).status_code == 202
    assert TestClient(ingest()).post("/v1/transactions", json=body).status_code == 401
