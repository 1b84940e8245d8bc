"""The first model, with no human step: while no version holds the publish alias, the trainer
asks itself for a run as soon as the labelled history allows one whose holdout begins after
the features' warm-up.

Why the warm-up: in the first `feature_warmup_days` of a history the longest feature windows
(30 days, 37 for a terminal's delayed ones) are still filling. A holdout taken then would be
the version's reference with small counts that live traffic never shows again, and the monitor
would raise drift on the windows filling, not on the world changing. Training rows may lie in
the warm-up; the holdout, which the gate judges and the monitor compares with, may not.

The request's id names the day of the latest label and how far the offline store holds
features, so a restart asks nothing twice (the pipeline's idempotency by request id), and a
first run the data checks refused is tried again once either has grown (not before: the same
data would be refused again). Until then `waiting_for` says what is missing and, from the pace
at which labels have arrived, about when it will be there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from mlflow.exceptions import MlflowException

from fraudstream_trainer.pipeline import TrainRequest
from fraudstream_trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)

_DAY = pd.Timedelta(days=1)
# How often the wait is written to the log while nothing changes.
_LOG_EVERY_SECONDS = 300.0

Span = tuple[pd.Timestamp, pd.Timestamp]  # (earliest labelled transaction, latest label)


@dataclass(frozen=True)
class _Pace:
    at: float  # wall clock
    latest_label: pd.Timestamp


class FirstModel:
    def __init__(
        self,
        settings: TrainerSettings,
        aliased_version: Callable[[], str | None],
        label_span: Callable[[], Span | None],
        features_until: Callable[[], pd.Timestamp | None] | None = None,
        *,
        on_wait: Callable[[str | None], None] = lambda _text: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`aliased_version`: the version holding the publish alias (None: none; raises
        MlflowException while the registry cannot say). `label_span`: the stored labels' span.
        `features_until`: how far the offline store holds every transaction's features (it
        returns None while it holds none; no callable: not waited for); the holdout must be in it.
        `on_wait`: told what the first model waits for whenever that changes, None once a
        model exists (the registry keeps it for the console)."""
        self._on_wait = on_wait
        self._settings = settings
        self._aliased_version = aliased_version
        self._label_span = label_span
        self._features_until = features_until
        self._clock = clock
        self._checked_at: float | None = None
        self._request: TrainRequest | None = None
        self._waiting: str | None = None
        self._logged: tuple[str, float] | None = None
        self._first_pace: _Pace | None = None
        self._served = False
        self._answered: set[str] = set()

    def due(self) -> TrainRequest | None:
        """The first model's request when one should run now; checks at most every
        `first_model_check_seconds`."""
        if not self._settings.first_model or self._served:
            return None
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._settings.first_model_check_seconds:
            self._checked_at = now
            self._check(now)
        return self._request

    def done(self, request: TrainRequest) -> None:
        """The request was answered (whatever the outcome); the next check decides again, and
        asks again only with more labels or features than this one had."""
        self._answered.add(request.request_id)
        if self._request == request:
            self._request = None

    def waiting_for(self) -> str | None:
        return self._waiting

    def _check(self, now: float) -> None:
        try:
            version = self._aliased_version()
        except MlflowException as error:
            self._wait(now, f"the registry to answer whether a model exists ({error.message})")
            return
        if version is not None:
            logger.info("a model is published; no first model is waited for", extra={"version": version})
            self._served, self._request = True, None
            self._set_waiting(None, force=True)  # also clears a note a stopped trainer left
            return
        try:
            span = self._label_span()
        except (OSError, ValueError) as error:  # pyarrow's errors are among these
            self._wait(now, f"the label store to be readable ({error})")
            return
        if span is None:
            self._wait(now, "labels: none is stored yet, so no history can be judged")
            return
        start, latest = span
        needed = self._needed_latest_label(start)
        if latest.floor("D") < needed:
            self._wait(now, self._history_missing(now, start, latest, needed))
            return
        holdout_end = latest.floor("D") - self._settings.delay_days * _DAY
        written = None if self._features_until is None else self._features_until()
        if self._features_until is not None and (written is None or written < holdout_end):
            held = "none yet" if written is None else f"them up to {written:%Y-%m-%d %H:%M}"
            self._wait(
                now,
                f"features in the offline store up to {holdout_end:%Y-%m-%d}, where the holdout ends (the features "
                f"service has written {held}; labels come faster than transactions through ingest and the "
                "features stage)",
            )
            return
        request_id = f"first-model-{latest:%Y-%m-%d}" + ("" if written is None else f"-features-{written:%Y%m%dT%H%M}")
        if request_id in self._answered:
            self._wait(now, f"more labels or features than the refused first run {request_id} had")
            return
        self._set_waiting(None)
        self._request = TrainRequest(
            request_id,
            f"first model: no version holds {self._settings.publish_alias.value}, and the labelled history "
            f"from {start:%Y-%m-%d} to {latest:%Y-%m-%d} covers the windows",
            "trainer",
            force=True,  # a refused first run is tried again a day of history later, not a cooldown later
        )
        logger.info("first model due", extra={"request_id": self._request.request_id})

    def _needed_latest_label(self, start: pd.Timestamp) -> pd.Timestamp:
        """The latest label's day from which a holdout begins after the warm-up (see
        fraudstream_trainer.settings for how the windows are laid out)."""
        s = self._settings
        matured = start.ceil("D") + s.feature_warmup_days * _DAY
        return matured + (s.holdout_days + s.delay_days) * _DAY

    def _history_missing(self, now: float, start: pd.Timestamp, latest: pd.Timestamp, needed: pd.Timestamp) -> str:
        text = (
            f"labelled history up to {needed:%Y-%m-%d} (it starts {start:%Y-%m-%d}, the latest label is "
            f"{latest:%Y-%m-%d %H:%M}): the holdout must begin after the {self._settings.feature_warmup_days}-day "
            "warm-up of the feature windows"
        )
        if self._first_pace is None or latest < self._first_pace.latest_label:
            self._first_pace = _Pace(now, latest)
            return text
        wall = now - self._first_pace.at
        history = (latest - self._first_pace.latest_label).total_seconds()
        if wall <= 0 or history <= 0:
            return text
        eta = (needed - latest).total_seconds() * wall / history
        return f"{text}; at the pace labels arrive, in about {_duration(eta)}"

    def _set_waiting(self, waiting_for: str | None, *, force: bool = False) -> None:
        changed = waiting_for != self._waiting
        self._waiting = waiting_for
        if changed or force:
            try:
                self._on_wait(waiting_for)
            except MlflowException as error:
                logger.warning("could not record what the first model waits for: %s", error.message)

    def _wait(self, now: float, waiting_for: str) -> None:
        self._request = None
        self._set_waiting(waiting_for)
        kind = waiting_for.split(" ", 1)[0]
        if self._logged is None or self._logged[0] != kind or now - self._logged[1] >= _LOG_EVERY_SECONDS:
            self._logged = (kind, now)
            logger.info("no model yet; the first waits for %s", waiting_for)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
