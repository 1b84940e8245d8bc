"""The core's scoring passes: calls that arrive together share one feature read, one model run
and one decision-cache round trip, and each gets its own answers (no I/O: the store, the cache
and the model session are stand-ins)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.health import Readiness
from fraudstream_common.idempotency import content_digest
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction, Transport
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.timestamps import timestamp_of
from fraudstream_inference import core as core_module
from fraudstream_inference.core import ConflictError, InferenceCore, NotReadyError
from fraudstream_inference.decisions import Taken
from fraudstream_inference.explain import Contribution
from fraudstream_inference.features import TransactionInput, Vectors
from fraudstream_inference.http import create_app
from fraudstream_inference.rollout import Rollout
from fraudstream_inference.settings import InferenceSettings
from tests.unit.inference.models import stand_in_model

pytestmark = pytest.mark.anyio


class AmountSession:
    """Scores each row by its amount column; counts its runs."""

    def __init__(self) -> None:
        self.runs: list[int] = []

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> tuple[None, np.ndarray]:
        rows = feeds["features"]
        self.runs.append(len(rows))
        score = np.clip(rows[:, FEATURE_NAMES.index("tx_amount")] / 100, 0, 1)
        return None, np.stack([1 - score, score], axis=1)


class Features:
    def __init__(self) -> None:
        self.reads: list[list[str]] = []

    async def vectors(self, transactions: list[TransactionInput]) -> Vectors:
        self.reads.append([t.transaction_id for t in transactions])
        values = np.zeros((len(transactions), len(FEATURE_NAMES)), dtype=np.float32)
        values[:, FEATURE_NAMES.index("tx_amount")] = [t.amount for t in transactions]
        return Vectors(values, np.zeros_like(values, dtype=np.float64), degraded=False)


class Decisions:
    def __init__(self, taken: dict[str, Taken] | None = None) -> None:
        self.taken = taken or {}
        self.round_trips = 0

    async def settle(self, decisions: list[Taken]) -> dict[str, Taken]:
        self.round_trips += 1
        return {d.transaction_id: self.taken[d.transaction_id] for d in decisions if d.transaction_id in self.taken}


def core_with(
    session: AmountSession,
    features: Features,
    decisions: Decisions,
    *,
    max_pass_rows: int = 256,
    max_passes_in_flight: int = 1,
) -> InferenceCore:
    rollout = Rollout(InferenceSettings())
    rollout.install(stand_in_model("1", "champion", session))
    return InferenceCore(
        rollout,
        features,  # type: ignore[arg-type]
        decisions,  # type: ignore[arg-type]
        None,
        max_pass_rows=max_pass_rows,
        max_passes_in_flight=max_passes_in_flight,
    )


def tx(transaction_id: str, amount: float) -> Transaction:
    return Transaction(
        transaction_id=transaction_id,
        customer_id="c",
        terminal_id="t",
        amount=amount,
        event_time=timestamp_of(1_700_000_000.0),
    )


async def test_calls_arriving_together_are_scored_in_one_pass_and_answered_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reason = Contribution("tx_amount", 70.0, 1.5)
    monkeypatch.setattr(core_module, "contributions", lambda _model, _row: [reason])
    session, features, decisions = AmountSession(), Features(), Decisions()
    core = core_with(session, features, decisions)
    answers = await asyncio.gather(
        core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP),
        core.predict([tx("b", 60), tx("c", 95)], Transport.TRANSPORT_GRPC),
        core.predict([tx("d", 70)], Transport.TRANSPORT_HTTP, explain=True),
    )
    assert features.reads == [["a", "b", "c", "d"]]
    assert session.runs == [4]
    assert decisions.round_trips == 1
    assert [[(a.transaction_id, a.decision_name) for a in call] for call in answers] == [
        [("a", "approve")],
        [("b", "review"), ("c", "decline")],
        [("d", "review")],
    ]
    assert answers[1][0].score == pytest.approx(0.6)
    assert [a.reasons for call in answers for a in call] == [[], [], [], [reason]]  # only where asked


async def test_a_pass_holds_at_most_max_pass_rows_and_the_rest_go_in_the_next() -> None:
    session, features, decisions = AmountSession(), Features(), Decisions()
    core = core_with(session, features, decisions, max_pass_rows=3)
    await asyncio.gather(*(core.predict([tx(f"t{i}", 10)], Transport.TRANSPORT_HTTP) for i in range(7)))
    assert [len(read) for read in features.reads] == [3, 3, 1]


async def test_calls_arriving_while_the_passes_in_flight_are_at_the_cap_go_together_in_the_next() -> None:
    class HeldFeatures(Features):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def vectors(self, transactions: list[TransactionInput]) -> Vectors:
            read = await super().vectors(transactions)
            await self.release.wait()
            return read

    session, features, decisions = AmountSession(), HeldFeatures(), Decisions()
    core = core_with(session, features, decisions, max_passes_in_flight=1)
    calls = [asyncio.ensure_future(core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP))]
    await asyncio.sleep(0)  # the first pass starts and waits on its feature read
    for later in ("b", "c", "d"):  # one a loop turn, as grpc.aio hands them over
        calls.append(asyncio.ensure_future(core.predict([tx(later, 10)], Transport.TRANSPORT_GRPC)))
        await asyncio.sleep(0)
    assert features.reads == [["a"]]
    features.release.set()
    answers = await asyncio.gather(*calls)
    assert features.reads == [["a"], ["b", "c", "d"]]
    assert session.runs == [1, 3]
    assert [call[0].transaction_id for call in answers] == ["a", "b", "c", "d"]


async def test_a_call_alone_is_not_held_back() -> None:
    session, features, decisions = AmountSession(), Features(), Decisions()
    core = core_with(session, features, decisions)
    first = await core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP)
    second = await core.predict([tx("b", 10)], Transport.TRANSPORT_HTTP)
    assert [first[0].transaction_id, second[0].transaction_id] == ["a", "b"]
    assert features.reads == [["a"], ["b"]]


async def test_the_same_transaction_in_two_calls_of_a_pass_gets_one_decision() -> None:
    session, features, decisions = AmountSession(), Features(), Decisions()
    core = core_with(session, features, decisions)
    first, retry = await asyncio.gather(
        core.predict([tx("a", 95)], Transport.TRANSPORT_HTTP),
        core.predict([tx("a", 95)], Transport.TRANSPORT_GRPC),
    )
    assert features.reads == [["a"]]
    assert first[0].decision_name == retry[0].decision_name == "decline"


async def test_a_reused_id_with_other_content_is_refused_in_its_call_only() -> None:
    core = core_with(AmountSession(), Features(), Decisions())
    first, reused, other = await asyncio.gather(
        core.predict([tx("a", 95)], Transport.TRANSPORT_HTTP),
        core.predict([tx("b", 5), tx("a", 5)], Transport.TRANSPORT_GRPC),
        core.predict([tx("b", 5)], Transport.TRANSPORT_HTTP),
        return_exceptions=True,
    )
    assert isinstance(first, list)
    assert first[0].decision_name == "decline"
    assert isinstance(reused, ConflictError)
    assert reused.transaction_ids == ["a"]
    assert isinstance(other, list)
    assert other[0].decision_name == "approve"


async def test_a_decision_taken_before_for_other_content_refuses_the_call() -> None:
    earlier = Taken("a", 0.95, 3, "0", 0.5, False, content_digest(tx("a", 10)))
    core = core_with(AmountSession(), Features(), Decisions({"a": earlier}))
    [retried] = await core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP)
    assert (retried.model_version, retried.decision_name) == ("0", "decline")
    with pytest.raises(ConflictError, match="already decided"):
        await core.predict([tx("a", 10.01)], Transport.TRANSPORT_HTTP)


async def test_the_stream_scores_a_conflicting_transaction_afresh_and_logs_it() -> None:
    class Log:
        def __init__(self) -> None:
            self.records: list[Prediction] = []

        def log(self, transaction_id: str, record: bytes) -> None:
            self.records.append(Prediction.FromString(record))

    earlier = Taken("a", 0.95, 3, "0", 0.5, False, content_digest(tx("a", 10)))
    core = core_with(AmountSession(), Features(), Decisions({"a": earlier}))
    values = [0.0] * len(FEATURE_NAMES)
    values[FEATURE_NAMES.index("tx_amount")] = 5.0
    enriched = EnrichedTransaction(transaction=tx("a", 5), feature_names=FEATURE_NAMES, feature_values=values)
    log = Log()
    [answer] = await core.score_enriched([enriched], log)
    assert (answer.model_version, answer.decision_name) == ("1", "approve")
    [record] = log.records
    assert record.model_version == "1"
    assert record.score == pytest.approx(0.05)


async def test_a_decision_taken_before_stands_for_its_call_only() -> None:
    earlier = Taken("a", 0.95, 3, "0", 0.5, False)
    core = core_with(AmountSession(), Features(), Decisions({"a": earlier}))
    retried, fresh = await asyncio.gather(
        core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP), core.predict([tx("b", 10)], Transport.TRANSPORT_HTTP)
    )
    assert (retried[0].model_version, retried[0].decision_name) == ("0", "decline")
    assert (fresh[0].model_version, fresh[0].decision_name) == ("1", "approve")


async def test_a_failing_pass_fails_each_of_its_calls_and_the_next_pass_serves() -> None:
    class Failing(Features):
        async def vectors(self, transactions: list[TransactionInput]) -> Vectors:
            if len(self.reads) == 0:
                self.reads.append([])
                raise RuntimeError("boom")
            return await super().vectors(transactions)

    core = core_with(AmountSession(), Failing(), Decisions())
    outcomes = await asyncio.gather(
        core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP),
        core.predict([tx("b", 10)], Transport.TRANSPORT_HTTP),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
    assert (await core.predict([tx("c", 10)], Transport.TRANSPORT_HTTP))[0].decision_name == "approve"


async def test_before_a_model_is_loaded_a_call_is_refused() -> None:
    core = InferenceCore(Rollout(InferenceSettings()), Features(), Decisions(), None)  # type: ignore[arg-type]
    with pytest.raises(NotReadyError):
        await core.predict([tx("a", 10)], Transport.TRANSPORT_HTTP)


async def test_before_a_model_is_loaded_http_answers_503_with_retry_after_and_readyz_says_why() -> None:
    settings = InferenceSettings(auth_enabled=False, not_ready_retry_after_seconds=17)
    rollout = Rollout(settings)
    core = InferenceCore(rollout, Features(), Decisions(), None)  # type: ignore[arg-type]
    readiness = Readiness()

    async def model_loaded() -> bool:
        return core.ready

    readiness.add("model", model_loaded)
    readiness.waiting("model", rollout.waiting_for)
    app = create_app(core, None, settings, readiness)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inference") as client:
        answer = await client.post(
            "/v1/predict",
            json={
                "transaction_id": "a",
                "customer_id": "1",
                "terminal_id": "2",
                "amount": 10.0,
                "timestamp": datetime.now(UTC).isoformat(),
            },
        )
        ready = await client.get("/readyz")
        rollout.install(stand_in_model("1", "champion", AmountSession()))
        ready_later = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "17"
    assert "first model" in answer.json()["detail"]
    assert ready.status_code == 503
    assert "fraud-detector" in ready.json()["waiting_for"]["model"]
    assert ready_later.status_code == 200
    assert ready_later.json()["waiting_for"] == {}
