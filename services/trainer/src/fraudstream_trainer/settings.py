"""Trainer configuration: environment variables prefixed FRAUDSTREAM_.

The windows follow the handbook's protocol, counted back from the cutoff (the latest label
time the trainer knows, or the one a request names): the holdout is the `holdout_days` days
that end `delay_days` before the cutoff (their labels have matured); the training period is the
`train_days` days that end `delay_days` before the holdout, with the labels known when the
holdout began. A promoted run publishes the same recipe refit on the holdout (`served_model`;
fraudstream_trainer.pipeline says why).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from fraudstream_common.features.definitions import CUSTOMER_HORIZON, DAY, TERMINAL_HORIZON
from fraudstream_common.settings import RetrainRequestSecret, ServiceSettings
from fraudstream_feature_store.settings import FeatureStoreSettings
from fraudstream_modelling.checks import DataBounds
from fraudstream_modelling.choice import ServedModel
from fraudstream_modelling.gate import GatePolicy
from fraudstream_modelling.model import ModelParams, selected_params

# The longest window a feature looks back over: a terminal's 30 days, delayed by the label delay.
FEATURE_WARMUP_DAYS = max(CUSTOMER_HORIZON, TERMINAL_HORIZON) // DAY


SELECTED = selected_params()


class PublishAlias(StrEnum):
    """The alias a version that passes the gate gets, and publishes under."""

    CHAMPION = "champion"
    # Inference's canary or shadow takes it the rest of the way.
    CHALLENGER = "challenger"


class TrainerSettings(ServiceSettings, FeatureStoreSettings, RetrainRequestSecret):
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8084, description="HTTP port: /healthz, /readyz, /metrics.")
    instance_id: str = Field(default="trainer-0", description="Name of this trainer in Kafka client ids.")
    mlflow_tracking_uri: str = Field(default="http://127.0.0.1:5000", description="MLflow tracking server.")
    mlflow_experiment: str = Field(default="fraud-detector", description="MLflow experiment the runs go to.")
    registered_model: str = Field(default="fraud-detector", description="Registry model name.")
    publish_alias: PublishAlias = Field(
        default=PublishAlias.CHAMPION,
        description="Alias a version that passes the gate gets: champion, or challenger for a canary.",
    )
    train_days: int = Field(default=7, ge=1, description="Days of transactions a model trains on.")
    delay_days: int = Field(
        default=7, ge=0, description="Days after which a transaction's label is taken as known (the label delay)."
    )
    holdout_days: int = Field(default=7, ge=1, description="Days of the later period the gate compares models on.")
    review_share: float = Field(
        default=0.01, gt=0, lt=1, description="Share of transactions the review threshold sends to analysts."
    )
    decline_share: float = Field(
        default=0.001, gt=0, lt=1, description="Share of transactions the decline threshold declines outright."
    )
    gate_ap_margin: float = Field(
        default=GatePolicy.ap_margin,
        ge=0,
        description="How far below the champion's average precision a challenger may be.",
    )
    gate_card_precision_margin: float = Field(
        default=GatePolicy.card_precision_margin,
        ge=0,
        description="How far below the champion's card precision@100 a challenger may be.",
    )
    served_model: ServedModel = Field(
        default=ServedModel.REFIT,
        description=(
            "What a promoted run publishes: refit (the judged recipe trained again on the holdout, the latest "
            "matured labels) or judged (the model the gate judged, a label delay older)."
        ),
    )
    gate_confidence: float = Field(
        default=GatePolicy.confidence,
        ge=0,
        lt=1,
        description=(
            "A challenger is refused only when it is below the champion by more than a margin with this "
            "confidence (a paired bootstrap of the holdout's cards); 0 compares the point estimates."
        ),
    )
    gate_bootstrap_rounds: int = Field(
        default=GatePolicy.bootstrap_rounds, ge=20, description="Bootstrap rounds of the gate's confidence bound."
    )
    # The model's defaults are the saved model selection's (`fraudstream evaluate --select`).
    n_estimators: int = Field(default=SELECTED.n_estimators, ge=1, description="Trees in the model.")
    max_depth: int = Field(default=SELECTED.max_depth, ge=1, description="Depth of each tree.")
    max_bin: int = Field(
        default=SELECTED.max_bin, ge=2, description="Bins per feature in which the trees look for split thresholds."
    )
    learning_rate: float = Field(default=SELECTED.learning_rate, gt=0, description="Boosting learning rate.")
    subsample: float = Field(default=SELECTED.subsample, gt=0, le=1, description="Rows sampled per tree.")
    colsample_bytree: float = Field(
        default=SELECTED.colsample_bytree, gt=0, le=1, description="Features sampled per tree."
    )
    min_child_weight: float = Field(default=SELECTED.min_child_weight, ge=0, description="Least weight per leaf.")
    scale_pos_weight: float = Field(
        default=SELECTED.scale_pos_weight, gt=0, description="Weight of a fraud against a genuine transaction."
    )
    random_state: int = Field(default=SELECTED.random_state, description="Seed of the model's sampling.")
    min_rows: int = Field(default=DataBounds.min_rows, ge=1, description="Fewest rows a training set may have.")
    max_rows: int = Field(default=DataBounds.max_rows, ge=1, description="Most rows a training set may have.")
    min_frauds: int = Field(default=DataBounds.min_frauds, ge=1, description="Fewest frauds a training set may have.")
    max_fraud_share: float = Field(
        default=DataBounds.max_fraud_share, gt=0, le=1, description="Largest fraud share a training set may have."
    )
    parity_rows: int = Field(
        default=10_000, ge=1, description="Rows the ONNX model is checked on against the native one."
    )
    parity_tolerance: float = Field(
        default=1e-5, gt=0, description="Largest absolute score difference allowed between ONNX and native."
    )
    cooldown_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="A retrain request within this long (wall time) of the last run is skipped (unless forced).",
    )
    first_model: bool = Field(
        default=True,
        description=(
            "While no version holds the publish alias, train one without a request as soon as the labelled "
            "history allows a holdout after the feature warm-up."
        ),
    )
    first_model_check_seconds: float = Field(
        default=30.0, gt=0, description="How often the history is looked at while no model exists."
    )
    feature_warmup_days: int = Field(
        default=FEATURE_WARMUP_DAYS,
        ge=0,
        description=(
            "Days from the start of the history in which the longest feature windows are still filling; the "
            "first model's holdout (its reference for the monitor) begins after them."
        ),
    )
    schedule_interval_seconds: float = Field(
        default=0.0, ge=0, description="Retrain this often without a request; 0 turns the schedule off."
    )
    request_give_up_seconds: float = Field(
        default=900.0,
        gt=0,
        description=(
            "A request whose answer keeps failing this long (MLflow or Feast down, or a fault of the run "
            "itself) goes to the dead-letter topic with its last error, so that the requests behind it are "
            "answered; the monitor asks again after its cooldown."
        ),
    )
    request_max_seconds: int = Field(
        default=3600, ge=60, description="Longest a training run may take before Kafka hands its request to another."
    )
    label_part_max_rows: int = Field(
        default=100_000, ge=1, description="The label store starts a new part after this many labels."
    )
    label_part_max_seconds: float = Field(
        default=30.0, gt=0, description="The label store writes its part at least this often while labels arrive."
    )
    label_compact_rows: int = Field(
        default=1_000_000,
        ge=0,
        description=(
            "The label store merges each partition's committed parts, every 10 minutes, into parts of up to this "
            "many labels (0: never), so that a run does not read thousands of small files."
        ),
    )

    def model_params(self) -> ModelParams:
        return ModelParams(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            max_bin=self.max_bin,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight,
            scale_pos_weight=self.scale_pos_weight,
            random_state=self.random_state,
        )

    def data_bounds(self) -> DataBounds:
        return DataBounds(
            min_rows=self.min_rows,
            max_rows=self.max_rows,
            min_frauds=self.min_frauds,
            max_fraud_share=self.max_fraud_share,
        )

    def gate_policy(self) -> GatePolicy:
        return GatePolicy(
            ap_margin=self.gate_ap_margin,
            card_precision_margin=self.gate_card_precision_margin,
            confidence=self.gate_confidence,
            bootstrap_rounds=self.gate_bootstrap_rounds,
        )
