"""The scoring core every transport calls (HTTP, gRPC, the stream): each transaction gets its
features (from Feast at request time, or as the stream computed them), is scored by the model
the rollout picks and decided by that version's thresholds; the decision is remembered by
transaction id, or, when one was taken before, that one stands; decisions go to `predictions`
without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.idempotency import content_digest
from fraudstream_common.schemas.v1.prediction_pb2 import Decision, ModelRole, Prediction, Transport
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.timestamps import seconds_of, timestamp_of
from fraudstream_inference import metrics
from fraudstream_inference.decisions import DecisionCache, Taken
from fraudstream_inference.explain import Contribution, contributions
from fraudstream_inference.features import RequestFeatures, TransactionInput
from fraudstream_inference.model import ScoringModel
from fraudstream_inference.predictions import FeatureValues, PredictionSink
from fraudstream_inference.rollout import Rollout

logger = logging.getLogger(__name__)

_FEATURE_NAMES = list(FEATURE_NAMES)
_FEATURE_VALUES = FeatureValues(FEATURE_NAMES)
DECISION_NAMES: dict[int, str] = {
    Decision.DECISION_APPROVE: "approve",
    Decision.DECISION_REVIEW: "review",
    Decision.DECISION_DECLINE: "decline",
}
_ROLE_NAMES: dict[int, str] = {ModelRole.MODEL_ROLE_CHAMPION: "champion", ModelRole.MODEL_ROLE_CANARY: "canary"}


class NotReadyError(Exception):
    """No model has been loaded yet; the message says what the replica waits for. The
    transports answer it as retryable: HTTP 503 with Retry-After, gRPC UNAVAILABLE."""


class ConflictError(Exception):
    """Transaction ids of the call already decided for other content (another customer,
    terminal, amount, currency or event time): a reused id, not a retry. Nothing of the call is
    logged as a prediction; the transports answer HTTP 409, gRPC ALREADY_EXISTS."""

    def __init__(self, transaction_ids: list[str]) -> None:
        super().__init__(
            f"transaction id {', '.join(transaction_ids)} already decided for another customer, terminal, amount, "
            "currency or event time: give each payment its own id"
        )
        self.transaction_ids = transaction_ids


@dataclass(frozen=True)
class Answer:
    transaction_id: str
    score: float
    decision: int
    model_version: str
    degraded: bool
    latency_ms: float
    reasons: list[Contribution] = field(default_factory=list)

    @property
    def decision_name(self) -> str:
        return DECISION_NAMES[self.decision]


@dataclass
class _Call:
    """One transport call waiting for the next scoring pass."""

    transactions: Sequence[Transaction]
    transport: int
    explain: bool
    started: float
    answered: asyncio.Future[list[Answer]]


class InferenceCore:
    """Calls that arrive together are scored together. A call is queued and a scoring pass is
    scheduled for the event loop's next turn; the calls queued by then (every request the loop
    read in the same turn) share one feature read, one model run and one decision-cache round
    trip, and each gets its own answers. Nothing waits for a batch to fill: under light load a
    pass holds one call.

    At most `max_passes_in_flight` passes run at once; calls that arrive meanwhile wait for
    the first of them to finish and then go together. Without the cap a transport that hands
    over one call per loop turn would get a pass per call, each with its own Redis round trips
    and model run; with it, the calls that arrive while a pass waits on Redis share the next.
    What it gains under concurrency: the inference figures in docs/benchmarks.md
    (benchmarks/inference_latency.py)."""

    def __init__(
        self,
        rollout: Rollout,
        features: RequestFeatures,
        decisions: DecisionCache,
        log: PredictionSink | None,
        *,
        max_pass_rows: int = 256,
        max_passes_in_flight: int = 1,
    ) -> None:
        self.rollout = rollout
        self._features = features
        self._decisions = decisions
        self._log = log
        self._max_pass_rows = max_pass_rows
        self._max_passes_in_flight = max_passes_in_flight
        self._queued: deque[_Call] = deque()
        self._passes: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return self.rollout.champion is not None

    async def predict(
        self, transactions: Sequence[Transaction], transport: int, *, explain: bool = False
    ) -> list[Answer]:
        """Answers in the order asked. Raises NotReadyError before the first model is loaded."""
        if self.rollout.champion is None:
            raise NotReadyError(f"no model loaded yet: waiting for {self.rollout.waiting_for()}")
        loop = asyncio.get_running_loop()
        call = _Call(transactions, transport, explain, time.perf_counter(), loop.create_future())
        if not self._queued and len(self._passes) < self._max_passes_in_flight:
            loop.call_soon(self._start_passes)
        self._queued.append(call)  # otherwise the end of a pass in flight starts it
        return await call.answered

    def _start_passes(self) -> None:
        while self._queued and len(self._passes) < self._max_passes_in_flight:
            calls: list[_Call] = []
            rows = 0
            while self._queued and (not calls or rows + len(self._queued[0].transactions) <= self._max_pass_rows):
                call = self._queued.popleft()
                calls.append(call)
                rows += len(call.transactions)
            scoring = asyncio.ensure_future(self._score_pass(calls))
            self._passes.add(scoring)  # held until done: the loop keeps only weak references
            scoring.add_done_callback(self._pass_done)

    def _pass_done(self, scoring: asyncio.Task[None]) -> None:
        self._passes.discard(scoring)
        self._start_passes()

    async def _score_pass(self, calls: list[_Call]) -> None:
        try:
            answers = await self._score_calls(calls)
        except Exception as error:
            for call in calls:
                if not call.answered.done():
                    call.answered.set_exception(error)
            return
        for call, answered in zip(calls, answers, strict=True):
            if call.answered.done():  # a caller that went away (its task was cancelled)
                continue
            if isinstance(answered, ConflictError):
                call.answered.set_exception(answered)
            else:
                call.answered.set_result(answered)

    async def _score_calls(self, calls: list[_Call]) -> list[list[Answer] | ConflictError]:
        metrics.PASS_ROWS.observe(sum(len(call.transactions) for call in calls))
        # One row per transaction id: the first call's transaction and transport; reasons when
        # any call asked for them.
        rows: dict[str, tuple[Transaction, int]] = {}
        explained: set[str] = set()
        for call in calls:
            for t in call.transactions:
                rows.setdefault(t.transaction_id, (t, call.transport))
                if call.explain:
                    explained.add(t.transaction_id)
        unique = [t for t, _ in rows.values()]
        inputs = [
            TransactionInput(t.transaction_id, t.customer_id, t.terminal_id, t.amount, seconds_of(t.event_time))
            for t in unique
        ]
        vectors = await self._features.vectors(inputs)
        decided = await self._decide(
            unique,
            vectors.values,
            vectors.ages,
            vectors.degraded,
            [transport for _, transport in rows.values()],
            min(call.started for call in calls),
            explain=[transaction_id in explained for transaction_id in rows],
        )
        finished = time.perf_counter()
        answers: list[list[Answer] | ConflictError] = []
        for call in calls:
            conflicts = [
                t.transaction_id
                for t in call.transactions
                if decided[t.transaction_id][0].conflicts_with(content_digest(t))
            ]
            if conflicts:
                metrics.CONFLICTS.labels("call").inc(len(conflicts))
                answers.append(ConflictError(conflicts))
                continue
            latency_ms = (finished - call.started) * 1000
            answers.append(
                [
                    Answer(
                        entry.transaction_id,
                        entry.score,
                        entry.decision,
                        entry.model_version,
                        entry.degraded,
                        latency_ms,
                        reasons,
                    )
                    for entry, reasons in (decided[t.transaction_id] for t in call.transactions)
                ]
            )
        return answers

    async def score_enriched(self, records: Sequence[EnrichedTransaction], log: PredictionSink) -> list[Answer]:
        """The stream path: each transaction with the vector the features service computed for
        it. Every record gets its prediction logged to `log`, a replayed one too (the stream may
        replay a batch whose predictions were never acknowledged), with the decision first taken."""
        started = time.perf_counter()
        unique = list({r.transaction.transaction_id: r for r in records}.values())
        values = np.asarray([_in_model_order(r) for r in unique], dtype=np.float32)
        ages = np.zeros_like(values, dtype=np.float64)
        decided = await self._decide(
            [r.transaction for r in unique],
            values,
            ages,
            False,
            [Transport.TRANSPORT_STREAM] * len(unique),
            started,
            log=log,
            log_replays=True,
            rescore_conflicts=True,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        return [
            Answer(tid, entry.score, entry.decision, entry.model_version, entry.degraded, latency_ms)
            for tid, (entry, _reasons) in decided.items()
        ]

    async def _decide(
        self,
        transactions: Sequence[Transaction],
        values: np.ndarray,
        ages: np.ndarray,
        degraded: bool,
        transports: Sequence[int],
        started: float,
        *,
        explain: Sequence[bool] = (),
        log: PredictionSink | None = None,
        log_replays: bool = False,
        rescore_conflicts: bool = False,
    ) -> dict[str, tuple[Taken, list[Contribution]]]:
        """Scores, decides and remembers; a transaction decided before keeps that decision
        (logged again only with `log_replays`). One decided before for other content keeps it
        too, unlogged, for the caller to refuse; with `rescore_conflicts` it gets the new
        decision instead, logged (not remembered: the first stands for retries of the first)."""
        log = log or self._log
        rollout = self.rollout
        champion = rollout.champion
        if champion is None:
            raise NotReadyError(f"no model loaded yet: waiting for {rollout.waiting_for()}")
        routed = [rollout.route(t.transaction_id) for t in transactions]
        champion_scores = champion.scores(values)
        scores = champion_scores.copy()
        models = [champion] * len(transactions)
        roles = [int(ModelRole.MODEL_ROLE_CHAMPION)] * len(transactions)
        for row, (model, role) in enumerate(routed):
            if model is None or model is champion:
                continue
            score_started = time.perf_counter()
            try:
                scores[row] = model.scores(values[row : row + 1])[0]
            except Exception:
                logger.exception("challenger %s failed; the champion answers", model.version)
                rollout.watch(model, failed=True, seconds=0.0, score=0.0, champion_score=None)
                continue
            rollout.watch(
                model,
                failed=False,
                seconds=time.perf_counter() - score_started,
                score=float(scores[row]),
                champion_score=float(champion_scores[row]),
            )
            models[row], roles[row] = model, role
        shadow = rollout.shadow
        shadow_scores = self._shadow_scores(shadow, values, champion_scores) if shadow is not None else None

        entries = [
            Taken(
                t.transaction_id,
                float(scores[row]),
                models[row].decide(float(scores[row])),
                models[row].version,
                models[row].threshold,
                degraded,
                content_digest(t),
            )
            for row, t in enumerate(transactions)
        ]
        winners = await self._decisions.settle(entries)
        latency_ms = (time.perf_counter() - started) * 1000
        features = _FEATURE_VALUES.encode(values, ages) if log is not None else []
        decided: dict[str, tuple[Taken, list[Contribution]]] = {}
        for row, (t, entry) in enumerate(zip(transactions, entries, strict=True)):
            winner = winners.get(t.transaction_id)
            if winner is not None and winner.conflicts_with(entry.digest):
                if not rescore_conflicts:
                    decided[t.transaction_id] = (winner, [])
                    continue
                metrics.CONFLICTS.labels("stream").inc()
                logger.warning("transaction id %s decided before for other content: scored afresh", t.transaction_id)
            elif winner is not None:  # a retry: the first decision stands
                decided[t.transaction_id] = (winner, [])
                metrics.REPLAYED.inc()
                if log is not None and log_replays:
                    role = int(ModelRole.MODEL_ROLE_CHAMPION)
                    record = _prediction(t, models[row].name, role, winner, latency_ms, transports[row])
                    log.log(t.transaction_id, record + features[row])
                continue
            reasons = contributions(models[row], values[row]) if explain and explain[row] else []
            decided[t.transaction_id] = (entry, reasons)
            metrics.DECISIONS.labels(DECISION_NAMES[entry.decision]).inc()
            metrics.SCORES.labels(_ROLE_NAMES.get(roles[row], "champion")).observe(entry.score)
            if log is not None:
                record = _prediction(t, models[row].name, roles[row], entry, latency_ms, transports[row])
                log.log(t.transaction_id, record + features[row])
                if shadow is not None and shadow_scores is not None:
                    shadow_score = float(shadow_scores[row])
                    shadow_entry = Taken(
                        t.transaction_id,
                        shadow_score,
                        shadow.decide(shadow_score),
                        shadow.version,
                        shadow.threshold,
                        degraded,
                    )
                    role = int(ModelRole.MODEL_ROLE_SHADOW)
                    record = _prediction(t, shadow.name, role, shadow_entry, latency_ms, transports[row])
                    log.log(t.transaction_id, record + features[row])
        return decided

    def _shadow_scores(
        self, shadow: ScoringModel, values: np.ndarray, champion_scores: np.ndarray
    ) -> np.ndarray | None:
        started = time.perf_counter()
        try:
            scores = shadow.scores(values)
        except Exception:
            logger.exception("shadow %s failed", shadow.version)
            self.rollout.watch(shadow, failed=True, seconds=0.0, score=0.0, champion_score=None)
            return None
        seconds = (time.perf_counter() - started) / max(len(values), 1)
        for score, champion_score in zip(scores, champion_scores, strict=True):
            metrics.SCORES.labels("shadow").observe(float(score))
            self.rollout.watch(
                shadow, failed=False, seconds=seconds, score=float(score), champion_score=float(champion_score)
            )
        return scores


def _in_model_order(record: EnrichedTransaction) -> list[float]:
    if record.feature_names == _FEATURE_NAMES:
        return list(record.feature_values)
    by_name = dict(zip(record.feature_names, record.feature_values, strict=True))
    return [by_name.get(name, float("nan")) for name in FEATURE_NAMES]


def _prediction(
    transaction: Transaction, model_name: str, role: int, entry: Taken, latency_ms: float, transport: int
) -> bytes:
    """The serialised Prediction without its features (FeatureValues encodes those, appended)."""
    return Prediction(
        transaction_id=transaction.transaction_id,
        customer_id=transaction.customer_id,
        terminal_id=transaction.terminal_id,
        transaction_time=transaction.event_time,
        model_name=model_name,
        model_version=entry.model_version,
        model_role=role,  # type: ignore[arg-type]
        score=entry.score,
        decision=entry.decision,  # type: ignore[arg-type]
        threshold=entry.threshold,
        degraded=entry.degraded,
        latency_ms=latency_ms,
        transport=transport,  # type: ignore[arg-type]
        predicted_at=timestamp_of(time.time()),
        amount=transaction.amount,
    ).SerializeToString()
