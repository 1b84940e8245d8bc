"""Which model answers: the champion, and while one is published a challenger that takes a
share of traffic (canary) or scores every request beside the champion (shadow).

The challenger is watched on the traffic it sees: its error rate, its p99 scoring latency,
and its score distribution against the champion's on the same transactions (PSI). Past
`rollback_min_requests` requests, crossing any limit takes it out of traffic at once, with no
human step; the step is logged and counted, and `on_step` is told (the service publishes it).
Swapping is one reference assignment: a request reads the model once and keeps it to its end.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fraudstream_common.schemas.v1.prediction_pb2 import ModelRole
from fraudstream_inference import metrics
from fraudstream_inference.model import ScoringModel
from fraudstream_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class RolloutStep:
    step: str  # "installed", "refused", "rolled_back"
    alias: str
    version: str
    reason: str


def stable_share(transaction_id: str) -> float:
    """Where a transaction falls in [0, 1): the same on every replica and every retry."""
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, over the deciles of
    `expected` (fraud scores crowd near 0: fixed-width bins would put nearly all in one)."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) / max(len(expected), 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / max(len(actual), 1)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


class Rollout:
    def __init__(self, settings: InferenceSettings, on_step: Callable[[RolloutStep], None] = lambda _s: None) -> None:
        self._settings = settings
        self._on_step = on_step
        self._lock = threading.Lock()
        self.champion: ScoringModel | None = None
        self.challenger: ScoringModel | None = None
        self._last_refusal: str | None = None
        self._reset_watch()

    def install(self, model: ScoringModel) -> None:
        with self._lock:
            if model.alias == CHAMPION:
                previous = self.champion
                self.champion = model
                if self.challenger is not None and self.challenger.version == model.version:
                    self.challenger = None  # the challenger was promoted
                _served(previous, model, CHAMPION)
            else:
                previous = self.challenger
                self.challenger = model
                self._reset_watch()
                _served(previous, model, CHALLENGER)
        self._step(RolloutStep("installed", model.alias, model.version, f"published as {model.alias}"))

    def refused(self, alias: str, version: str, reason: str) -> None:
        """A published version that failed its checks: the current model keeps serving."""
        self._last_refusal = f"version {version} ({alias}) was refused: {reason}"
        self._step(RolloutStep("refused", alias, version, reason))

    def waiting_for(self) -> str | None:
        """What this replica waits for before it can answer; None once a champion serves."""
        if self.champion is not None:
            return None
        waiting = (
            f"a first model: no version of {self._settings.registered_model!r} has been published as {CHAMPION} "
            "yet (the trainer publishes one once the labelled history covers its windows; its /readyz says until when)"
        )
        return waiting if self._last_refusal is None else f"{waiting}; {self._last_refusal}"

    def route(self, transaction_id: str) -> tuple[ScoringModel | None, int]:
        """The model that answers this transaction, and its role."""
        champion, challenger = self.champion, self.challenger
        share = self._settings.canary_share
        if challenger is not None and share > 0 and stable_share(transaction_id) < share:
            return challenger, ModelRole.MODEL_ROLE_CANARY
        return champion, ModelRole.MODEL_ROLE_CHAMPION

    @property
    def shadow(self) -> ScoringModel | None:
        return self.challenger if self._settings.shadow else None

    def watch(
        self, challenger: ScoringModel, *, failed: bool, seconds: float, score: float, champion_score: float | None
    ) -> None:
        """One request the challenger scored (or failed to), with the champion's score of it."""
        with self._lock:
            if challenger is not self.challenger:
                return
            self._requests += 1
            self._errors += int(failed)
            if not failed:
                self._latencies.append(seconds)
                if champion_score is not None:
                    self._challenger_scores.append(score)
                    self._champion_scores.append(champion_score)
            reason = self._verdict()
            if reason is None:
                return
            self.challenger = None
            metrics.MODEL_INFO.labels(CHALLENGER, challenger.version).set(0)
        metrics.ROLLBACKS.labels(reason.split(" ", 1)[0]).inc()
        self._step(RolloutStep("rolled_back", CHALLENGER, challenger.version, reason))

    def _verdict(self) -> str | None:
        limits = self._settings
        if self._requests < limits.rollback_min_requests:
            return None
        error_rate = self._errors / self._requests
        if error_rate > limits.rollback_max_error_rate:
            return f"errors: {error_rate:.3f} of requests failed (limit {limits.rollback_max_error_rate})"
        if self._latencies:
            p99_ms = float(np.percentile(np.asarray(self._latencies), 99)) * 1000
            if p99_ms > limits.rollback_max_p99_ms:
                return f"latency: p99 {p99_ms:.1f} ms (limit {limits.rollback_max_p99_ms} ms)"
        if len(self._challenger_scores) >= limits.rollback_min_requests:
            drift = psi(np.asarray(self._champion_scores), np.asarray(self._challenger_scores))
            if drift > limits.rollback_max_score_psi:
                limit = limits.rollback_max_score_psi
                return f"scores: PSI {drift:.3f} against the champion on the same traffic (limit {limit})"
        return None

    def _reset_watch(self) -> None:
        self._requests = 0
        self._errors = 0
        self._latencies: deque[float] = deque(maxlen=2000)
        self._challenger_scores: deque[float] = deque(maxlen=5000)
        self._champion_scores: deque[float] = deque(maxlen=5000)

    def _step(self, step: RolloutStep) -> None:
        logger.info(
            "rollout step",
            extra={"step": step.step, "alias": step.alias, "model_version": step.version, "reason": step.reason},
        )
        self._on_step(step)


def _served(previous: ScoringModel | None, model: ScoringModel, alias: str) -> None:
    if previous is not None:
        metrics.MODEL_INFO.labels(alias, previous.version).set(0)
    metrics.MODEL_INFO.labels(alias, model.version).set(1)
