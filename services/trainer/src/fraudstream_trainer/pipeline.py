"""One training run, from a request to a decision: the core every entry point calls (the
`retrain.requests` consumer, the schedule, `fraudstream train`).

    windows -> training set (Feast point-in-time join + labels known then) -> data checks
    -> fit -> ONNX + parity -> holdout scores of challenger and champion -> gate
    -> (promoted, `served_model` refit: the same recipe refit on the holdout)
    -> MLflow run and registry version -> aliases -> `models.published`

What the gate judges and what serves: the gate judges the model trained on the window before
the holdout, which meets the holdout as old as a model trained now meets the traffic after the
cutoff (the label delay). Served itself (`judged`), it meets the traffic two label delays older
than that; refit on the holdout, the latest window whose labels have matured (`refit`), it
serves as old as it was judged. Later gates judge a champion by its judged model (kept with the
version), so that both sides meet the holdout as they were trained: neither has seen it.

Order of the last steps, and why: the version is registered (with the gate's decision on its
run) before anything moves; on promotion the alias moves (`champion`, or `challenger` for a
canary), then the event is produced and acknowledged, and only then is the run's outcome
written. A rejected version keeps no alias and is tagged `gate=rejected`. A crash anywhere
before the outcome leaves a run with no outcome, which does not count as an answer to its
request: the request is redone (an orphaned version may remain in the registry, tagged with
the request, without an alias).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from tqdm import tqdm

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.reference import version_reference
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_feature_store import FeatureStore
from fraudstream_feature_store.repository import PartsOfOtherDefinitionsError
from fraudstream_modelling.checks import DataCheckError
from fraudstream_modelling.choice import choose
from fraudstream_modelling.gate import Decision, review_threshold
from fraudstream_modelling.model import ParityError, check_parity, onnx_scores, to_onnx, train
from fraudstream_modelling.windows import Windows
from fraudstream_registry.registry import CHAMPION, REQUEST_TAG, RegisteredModel, Registry
from fraudstream_trainer import metrics
from fraudstream_trainer.dataset import fingerprint, training_set
from fraudstream_trainer.settings import TrainerSettings
from fraudstream_trainer.tensor_graph import to_tensor_onnx
from fraudstream_trainer.tracking import Lineage, TrainingRecord, log_refused_run, log_run

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    DATA_CHECK_FAILED = "data_check_failed"
    PARITY_FAILED = "parity_failed"
    # Requests not acted on.
    DUPLICATE = "duplicate"
    COOLDOWN = "cooldown"


@dataclass(frozen=True)
class TrainRequest:
    request_id: str
    reason: str
    requested_by: str = ""
    # Skip the cooldown (an operator's request).
    force: bool = False
    # Train as of this time instead of the latest label the trainer knows.
    cutoff: pd.Timestamp | None = None


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    reasons: tuple[str, ...]
    run_id: str | None = None
    version: str | None = None
    published: ModelPublished | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None


@dataclass(frozen=True)
class Datasets:
    request: TrainRequest
    windows: Windows
    training: pd.DataFrame
    holdout: pd.DataFrame


@dataclass(frozen=True)
class _Exported:
    model: xgb.XGBClassifier
    onnx_model: bytes
    tensor_model: bytes
    parity: float
    tensor_parity: float


Publish = Callable[[ModelPublished], None]


class FeaturesBehindError(Exception):
    """The offline store does not hold the features of the run's windows yet."""


class RunAbandonedError(Exception):
    """The trainer was asked to stop in the middle of a run."""


class Trainer:
    def __init__(
        self,
        settings: TrainerSettings,
        store: FeatureStore,
        labels: Callable[[], pd.DataFrame],
        publish: Publish | None,
        *,
        clock: Callable[[], float] = time.time,
        progress: bool | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        features_until: Callable[[], pd.Timestamp | None] | None = None,
    ) -> None:
        """`labels`: reads the labels (COLUMNS of fraudstream_trainer.labels) when a run starts.
        `publish`: produces a `models.published` record and returns once it is acknowledged;
        None runs without publishing (an offline run: the alias still moves). `progress`:
        progress bars; None shows them on a terminal only. `should_stop`: asked between steps
        and after every tree; True abandons the run (RunAbandonedError). `features_until`: how
        far the offline store holds every transaction's features (it returns None while it holds
        none; no callable: not checked); a run whose holdout ends later is refused, not joined
        against missing rows."""
        self._features_until = features_until
        self.settings = settings
        self.registry = Registry(settings.mlflow_tracking_uri, settings.registered_model, settings.mlflow_experiment)
        self.store = store
        self._labels = labels
        self.publish = publish
        self._clock = clock
        self._progress = progress
        self._should_stop = should_stop

    def handle(self, request: TrainRequest) -> RunResult:
        """A request, at most once per request id, not within the cooldown unless forced."""
        answered = self.registry.answered(request.request_id)
        if answered is not None:
            return RunResult(Outcome.DUPLICATE, (f"request {request.request_id} was answered: {answered}",))
        if not request.force:
            last = self.registry.last_run_started()
            wait = None if last is None else last + self.settings.cooldown_seconds - self._clock()
            if wait is not None and wait > 0:
                cooldown = self.settings.cooldown_seconds
                reason = f"the last run started less than the cooldown ({cooldown:.0f} s) ago; {wait:.0f} s left"
                return RunResult(Outcome.COOLDOWN, (reason,))
        started = time.monotonic()
        result = self.run(request)
        metrics.RUNS.labels(result.outcome.value).inc()
        metrics.RUN_SECONDS.observe(time.monotonic() - started)
        metrics.LAST_RUN.set(self._clock())
        return result

    def run(self, request: TrainRequest) -> RunResult:
        """One run, whatever came before it."""
        try:
            sets = self.datasets(request)
        except (FeaturesBehindError, PartsOfOtherDefinitionsError) as unusable:
            return RunResult(Outcome.DATA_CHECK_FAILED, (str(unusable),))
        if sets is None:
            return RunResult(Outcome.DATA_CHECK_FAILED, ("no labels stored yet: nothing to train on",))
        return self.train_and_decide(sets)

    def datasets(self, request: TrainRequest) -> Datasets | None:
        """The request's training set and holdout, point-in-time from Feast with the labels
        known then; None when there are no labels at all."""
        labels = self._labels()
        if request.cutoff is None and labels.empty:
            return None
        cutoff = request.cutoff if request.cutoff is not None else pd.Timestamp(labels["label_time"].max())
        windows = Windows.ending_at(
            cutoff,
            train_days=self.settings.train_days,
            delay_days=self.settings.delay_days,
            holdout_days=self.settings.holdout_days,
        )
        written = None if self._features_until is None else self._features_until()
        if self._features_until is not None and (written is None or written < windows.holdout_end):
            held = "no features" if written is None else f"features up to {written.isoformat()}"
            raise FeaturesBehindError(
                f"the offline store holds {held}; the holdout ends "
                f"{windows.holdout_end.isoformat()} (labels are ahead of the features stage)"
            )
        with self._bar(2, "training set and holdout", "set") as bar:
            training = training_set(
                self.store,
                labels,
                start=windows.train_start,
                end=windows.train_end,
                labels_known_at=windows.holdout_start,
            )
            bar.update()
            holdout = training_set(
                self.store,
                labels,
                start=windows.holdout_start,
                end=windows.holdout_end,
                labels_known_at=windows.cutoff,
            )
            bar.update()
        return Datasets(request, windows, training, holdout)

    def train_and_decide(self, sets: Datasets) -> RunResult:
        """Checks the data, trains, exports and checks the ONNX model, gates it against the
        champion on the holdout, logs and registers it, and acts on the decision."""
        self._check_stop()
        windows, training, holdout = sets.windows, sets.training, sets.holdout
        params = self.settings.model_params()
        lineage = Lineage(
            params, windows.train_start.isoformat(), windows.train_end.isoformat(), windows.holdout_start.isoformat()
        )
        request = sets.request
        tags = {REQUEST_TAG: request.request_id, "reason": request.reason, "requested_by": request.requested_by}
        names = list(FEATURE_NAMES)

        def parity_rows() -> np.ndarray:
            return pd.concat([training[names], holdout[names]]).to_numpy()[: self.settings.parity_rows]

        champion = self.registry.holder(CHAMPION)
        try:
            choice = choose(
                windows,
                training,
                holdout,
                fit=lambda rows, purpose: self._fit(rows, parity_rows(), purpose),
                score=lambda model, rows: onnx_scores(model.onnx_model, rows[names].to_numpy()),
                champion_scores=lambda rows: self._champion_scores(champion, rows),
                gate=self.settings.gate_policy(),
                bounds=self.settings.data_bounds(),
                served_model=self.settings.served_model,
            )
        except DataCheckError as error:
            return self._refused(Outcome.DATA_CHECK_FAILED, error.failures, lineage, tags)
        except ParityError as error:
            return self._refused(Outcome.PARITY_FAILED, [str(error)], lineage, tags)
        judgement, served, challenger_scores = choice.judgement, choice.served, choice.judged_scores
        decision, challenger, champion_metrics = judgement.decision, judgement.challenger, judgement.champion
        champion_version = None if champion is None else champion.version
        if choice.refit_skipped is not None:
            logger.warning(
                "the holdout is no training set: the judged model serves", extra={"why": choice.refit_skipped}
            )
        if choice.refit:
            lineage = Lineage(
                params, windows.holdout_start.isoformat(), windows.holdout_end.isoformat(), windows.cutoff.isoformat()
            )

        record = TrainingRecord(
            lineage, choice.summary, fingerprint(choice.served_rows), challenger, served.parity, served.tensor_parity
        )
        gate = {
            "promote": decision.promote,
            "reasons": list(decision.reasons),
            "champion_version": champion_version,
            "challenger": challenger,
            "champion": champion_metrics,
            "holdout": [windows.holdout_start.isoformat(), windows.holdout_end.isoformat()],
            "holdout_rows": len(holdout),
            "judged_trained_on": [windows.train_start.isoformat(), windows.train_end.isoformat()],
            "served": "refit" if choice.refit else "judged",
            **({} if choice.refit_skipped is None else {"refit_skipped": choice.refit_skipped}),
        }
        logged = log_run(
            self.settings.mlflow_tracking_uri,
            self.settings.mlflow_experiment,
            record,
            test_labels=holdout["is_fraud"].to_numpy(),
            test_scores=challenger_scores,
            feature_importances=np.asarray(served.model.feature_importances_),
            onnx_model=served.onnx_model,
            tensor_model=served.tensor_model,
            judged_model=choice.judged.onnx_model if choice.refit else None,
            threshold=review_threshold(challenger_scores, self.settings.review_share),
            decline_threshold=review_threshold(challenger_scores, self.settings.decline_share),
            registered_model=self.settings.registered_model,
            native_model=bytes(served.model.get_booster().save_raw("ubj")),
            run_tags={
                **tags,
                "gate.promote": str(decision.promote).lower(),
                "gate.reasons": "; ".join(decision.reasons),
                "holdout_start": windows.holdout_start.isoformat(),
                "holdout_end": windows.holdout_end.isoformat(),
                "champion_version": champion_version or "",
            },
            extra_metrics={f"champion_{k}": v for k, v in (champion_metrics or {}).items()},
            documents={
                "gate": gate,
                "reference": _reference(holdout, choice.reference_scores, windows.holdout_end),
            },
        )
        if logged.version is None:
            raise RuntimeError(f"run {logged.run_id}: MLflow registered no version")
        return self._decided(decision, logged.run_id, logged.version, champion_version, challenger, champion_metrics)

    def _fit(self, rows: pd.DataFrame, parity_rows: np.ndarray, description: str) -> _Exported:
        """A model of `rows`, as ONNX and as a tensor graph, each checked against it (ParityError)."""
        params, names = self.settings.model_params(), list(FEATURE_NAMES)
        with self._bar(params.n_estimators, description, "tree") as trees:

            def after_tree(_n: int) -> bool:
                trees.update()
                return self._should_stop()

            model = train(rows[names].to_numpy(), rows["is_fraud"].to_numpy(), params, after_tree=after_tree)
        self._check_stop()
        onnx_model = to_onnx(model, len(names))
        tensor_model = to_tensor_onnx(model, len(names))
        parity = check_parity(model, onnx_model, parity_rows, self.settings.parity_tolerance)
        tensor_parity = check_parity(model, tensor_model, parity_rows, self.settings.parity_tolerance)
        return _Exported(model, onnx_model, tensor_model, parity, tensor_parity)

    def _champion_scores(self, champion: RegisteredModel | None, holdout: pd.DataFrame) -> np.ndarray | None:
        if champion is None:
            return None
        missing = [name for name in champion.features if name not in holdout.columns]
        if missing:
            # It cannot be scored on the holdout as it is: judge the challenger on its own.
            logger.warning("champion %s needs features the store lacks: %s", champion.version, missing)
            return None
        # Judged as the gate judged it when it was made: the model trained before its holdout.
        judged = self.registry.judged_onnx(champion.version) or champion.onnx_model
        return onnx_scores(judged, holdout[list(champion.features)].to_numpy())

    def _decided(
        self,
        decision: Decision,
        run_id: str,
        version: str,
        champion_version: str | None,
        challenger: dict[str, float],
        champion: dict[str, float] | None,
    ) -> RunResult:
        registry = self.registry
        published = None
        if decision.promote:
            alias = self.settings.publish_alias.value
            if champion_version is not None:
                # Where a roll back goes.
                registry.set_version_tag(version, "replaces", champion_version)
            registry.set_alias(alias, version)
            if self.publish is not None:
                published = registry.published_event(version, alias)
                self.publish(published)
            outcome = Outcome.PROMOTED
        else:
            registry.set_version_tag(version, "gate", "rejected")
            outcome = Outcome.REJECTED
        registry.set_outcome(run_id, outcome.value)
        logger.info(
            "gate decision",
            extra={"version": version, "outcome": outcome.value, "reasons": list(decision.reasons), "run_id": run_id},
        )
        return RunResult(outcome, decision.reasons, run_id, version, published, challenger, champion)

    def _refused(self, outcome: Outcome, reasons: list[str], lineage: Lineage, tags: dict[str, str]) -> RunResult:
        run_id = log_refused_run(
            self.settings.mlflow_tracking_uri, self.settings.mlflow_experiment, lineage, reasons=reasons, run_tags=tags
        )
        self.registry.set_outcome(run_id, outcome.value)
        logger.warning("training run refused", extra={"outcome": outcome.value, "reasons": reasons, "run_id": run_id})
        return RunResult(outcome, tuple(reasons), run_id)

    def _bar(self, total: int, description: str, unit: str) -> tqdm[Any]:
        disable = None if self._progress is None else not self._progress
        return tqdm(total=total, desc=description, unit=unit, disable=disable)

    def _check_stop(self) -> None:
        if self._should_stop():
            raise RunAbandonedError("the trainer is stopping: the run is abandoned, its request will be redone")


def _reference(holdout: pd.DataFrame, scores: np.ndarray, holdout_end: pd.Timestamp) -> dict[str, Any]:
    """The version's reference distribution (its inputs and its scores on the holdout), which
    the monitor compares the traffic after the holdout with."""
    columns = {name: holdout[name].to_numpy(dtype=np.float64) for name in FEATURE_NAMES}
    hours = holdout["event_time"].dt.tz_convert("UTC").dt.hour.to_numpy()
    return version_reference(columns, scores, holdout_end.timestamp(), hours).as_json()
