"""Retrain requests: what the monitor asks of the trainer, and when.

An alert does not ask at once (times here are LoopClock's). Requests are debounced: alerts within `debounce_seconds` of
the first one are gathered into one request carrying all of them as evidence; after a request,
nothing is asked for `cooldown_seconds` (the trainer needs time to train, gate and publish,
and inference to swap). An operator can pause the loop (alerts are still raised, no request
goes out) and force a request (cooldown and pause do not apply). Each request's id is derived
from its evidence, so that a monitor restarted from the same inputs asks the same request
again, and the trainer acts on it once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert, RetrainRequest
from fraudstream_common.timestamps import timestamp_of


class LoopClock:
    """The time the debounce and the cooldown count in: it runs at the faster of wall time and
    event time (how far the monitor has judged its predictions). In production the two run
    together; a replay or a demo at 2,880 times real time debounces and cools down in
    simulated hours, not in 2,880 times as many; with no traffic, wall time still runs."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._now = self._last_wall = wall()
        self._event: float | None = None
        self._event_step = 0.0

    def event_time(self, reached: float) -> None:
        """Event time has reached `reached` (it never goes back)."""
        if not math.isfinite(reached):
            return
        if self._event is not None and reached > self._event:
            self._event_step += reached - self._event
        if self._event is None or reached > self._event:
            self._event = reached

    def __call__(self) -> float:
        wall = self._wall()
        self._now += max(wall - self._last_wall, self._event_step, 0.0)
        self._last_wall, self._event_step = wall, 0.0
        return self._now


@dataclass
class RetrainPolicy:
    debounce_seconds: float = 600.0
    cooldown_seconds: float = 6 * 3600.0


@dataclass
class Retrainer:
    model_name: str
    policy: RetrainPolicy
    paused: bool = False
    _pending: list[DriftAlert] = field(default_factory=list)
    _first_at: float | None = None
    _last_request_at: float | None = None

    def alert(self, alert: DriftAlert, now: float) -> None:
        """An alert that may lead to a request (kept as evidence while debouncing)."""
        if self._first_at is None:
            self._first_at = now
        self._pending.append(alert)

    @property
    def deciding(self) -> bool:
        """Whether alerts wait for the debounce."""
        return self._first_at is not None

    def debounced(self, now: float) -> bool:
        """Whether `due` has something to decide now."""
        return self._first_at is not None and now - self._first_at >= self.policy.debounce_seconds

    def due(self, now: float) -> RetrainRequest | None:
        """The request to send now, if one is due."""
        if not self.debounced(now):
            return None
        if self.paused or self.cooling(now):
            # Not asked: the evidence is dropped, a lasting drift raises new alerts.
            self.drop_pending()
            return None
        reason = "drift" if _any_drift(self._pending) else "quality"
        request = self._request(self._pending, reason, "monitor", now, identity="")
        self.drop_pending()
        self._last_request_at = now
        return request

    def force(self, requested_by: str, now: float) -> RetrainRequest:
        """An operator's request: no debounce, no cooldown, not stopped by a pause."""
        request = self._request(list(self._pending), "operator", requested_by, now, identity=f"{requested_by}|{now}")
        request.force = True
        self.drop_pending()
        self._last_request_at = now
        return request

    def drop_pending(self) -> None:
        """Forgets the alerts waiting for the debounce (the judge raises them again)."""
        self._pending, self._first_at = [], None

    def sent(self, at: float) -> None:
        """A request was sent at `at` (by this monitor, or one before it): the cooldown counts from
        the latest."""
        if self._last_request_at is None or at > self._last_request_at:
            self._last_request_at = at

    def cooling(self, now: float) -> bool:
        return self._last_request_at is not None and now - self._last_request_at < self.policy.cooldown_seconds

    def _request(
        self, evidence: list[DriftAlert], reason: str, requested_by: str, now: float, *, identity: str
    ) -> RetrainRequest:
        """Its id: the model, the reason and the evidence's alert ids (and `identity`, for an
        operator's request), so that the same evidence gives the same request id."""
        digest = hashlib.sha256(f"{self.model_name}|{reason}|{identity}".encode())
        for alert_id in sorted(a.alert_id for a in evidence):
            digest.update(alert_id.encode())
        return RetrainRequest(
            request_id=f"{reason}-{digest.hexdigest()[:24]}",
            model_name=self.model_name,
            requested_at=timestamp_of(now),
            reason=reason,
            requested_by=requested_by,
            evidence=evidence,
        )


def _any_drift(alerts: list[DriftAlert]) -> bool:
    return any(a.kind in (AlertKind.ALERT_KIND_INPUT_DRIFT, AlertKind.ALERT_KIND_SCORE_DRIFT) for a in alerts)
