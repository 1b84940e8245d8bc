"""Monitor configuration: environment variables prefixed FRAUDSTREAM_."""

from __future__ import annotations

from pydantic import Field

from fraudstream_common.settings import ApiKeySecret, RetrainRequestSecret, ServiceSettings
from fraudstream_drift.drift import DriftPolicy
from fraudstream_drift.regions import RegionPolicy
from fraudstream_drift.retrain import RetrainPolicy

_NIGHT = DriftPolicy().night_regions or RegionPolicy()


class MonitorSettings(ServiceSettings, ApiKeySecret, RetrainRequestSecret):
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(
        default=8082, description="HTTP port: the ops console, its API, /healthz, /readyz, /metrics."
    )
    instance_id: str = Field(default="monitor-0", description="Name of this monitor in Kafka client ids.")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis holding the API keys and whether the loop is paused."
    )
    auth_enabled: bool = Field(default=True, description="Require an admin API key for the console's admin actions.")
    mlflow_tracking_uri: str = Field(default="http://127.0.0.1:5000", description="MLflow tracking server.")
    mlflow_experiment: str = Field(default="fraud-detector", description="MLflow experiment the trainer's runs go to.")
    registered_model: str = Field(default="fraud-detector", description="Registry model name the monitor watches.")
    replay_seconds: float = Field(
        default=9 * 24 * 3600.0,
        ge=0,
        description=(
            "At start, predictions and labels produced this far back are read again to rebuild the windows "
            "(alerts they raise were raised before and are not sent again). Covers a quality window and its maturity."
        ),
    )
    batch_size: int = Field(default=2000, ge=1, description="Most records a stage takes at once.")
    commit_interval_seconds: float = Field(
        default=1.0, gt=0, description="Longest a stage holds what it read before committing it with its outputs."
    )
    window_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "An input partition with nothing new this long is idle: hours and quality windows are judged without "
            "waiting for it. Longer than a replica takes to be replaced, or a lost replica's partitions are judged "
            "without. Not the features' FRAUDSTREAM_PARTITION_IDLE_SECONDS."
        ),
    )
    hour_lateness_seconds: float = Field(
        default=600.0,
        ge=0,
        description=(
            "An hour of event time stays open on an input partition until its watermark (the least of its "
            "sources', see hour_source_idle_seconds) is this far past its end; predictions of an hour closed "
            "already are late and not counted (they are out of order when the inference service catches up, and by "
            "as far as producers' clocks differ). Multiply it by the speed of a replay faster than real time."
        ),
    )
    hour_max_ahead_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "A prediction of an hour further than this past the latest in step of its partition (a live transaction in "
            "a replay) is not counted and closes no hour, unless hour_confirm_rows of them come in a row. Multiply it "
            "by the speed of a replay faster than real time."
        ),
    )
    hour_confirm_rows: int = Field(
        default=100,
        ge=1,
        description=(
            "Predictions of a partition ahead in a row (see hour_max_ahead_seconds) that show it moved on (traffic "
            "back after a gap, a replay reaching the present): from the last of them, its watermark follows them."
        ),
    )
    hour_source_idle_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "An input partition's predictions are interleaved from sources each nearly in event-time order (a "
            "terminal's partition of features.by-terminal and a customer's of transactions.enriched: "
            "counting.Upstream), by as much as days of event time while the services catch up on a backlog, and "
            "its hours close on the least watermark of those sources; one that brought nothing for this long holds "
            "no hour open (none did: the traffic stopped, and its hours close on the latest prediction)."
        ),
    )
    window_hours: int = Field(
        default=DriftPolicy.window_hours, ge=1, description="Hours of predictions a PSI compares."
    )
    psi_threshold: float = Field(
        default=DriftPolicy.psi_threshold, gt=0, description="PSI of a subject above which it has drifted."
    )
    min_window_predictions: int = Field(
        default=DriftPolicy.min_window_predictions, ge=1, description="Fewest predictions a window needs to be judged."
    )
    quiet_hours: int = Field(
        default=DriftPolicy.quiet_hours, ge=0, description="Hours of event time a subject stays quiet after an alert."
    )
    adwin_delta: float = Field(
        default=DriftPolicy.adwin_delta, gt=0, lt=1, description="ADWIN's confidence on the hourly mean score."
    )
    page_hinkley_threshold: float = Field(
        default=DriftPolicy.page_hinkley_threshold,
        gt=0,
        description="PageHinkley's threshold on the hourly mean score.",
    )
    out_of_range_share: float = Field(
        default=DriftPolicy.out_of_range_share,
        gt=0,
        lt=1,
        description="Share of a window's values outside the reference's range above which a subject alerts.",
    )
    out_of_range_min: int = Field(
        default=DriftPolicy.out_of_range_min, ge=1, description="Fewest values outside the range that alert."
    )
    joint_regions: bool = Field(
        default=True,
        description="Watch pairs of features for new patterns (regions the reference left almost empty).",
    )
    region_rare_share: float = Field(
        default=RegionPolicy.rare_share,
        gt=0,
        lt=1,
        description="A cell of a feature pair is watched when its share of the reference is below this.",
    )
    region_min_entities: int = Field(
        default=RegionPolicy.min_entities,
        ge=1,
        description="Fewest distinct cards (and as many terminals) in a watched cell, over the window, that alert.",
    )
    region_ratio: float = Field(
        default=RegionPolicy.ratio,
        gt=1,
        description="A watched cell alerts with at least this many times the entities the reference expects.",
    )
    region_p_value: float = Field(
        default=RegionPolicy.p_value,
        gt=0,
        lt=1,
        description="...and when a Poisson count with the reference's expectation reaches it less often than this.",
    )
    region_prior_rows: float = Field(
        default=RegionPolicy.prior_rows,
        gt=0,
        description="Rows added to each cell's reference count before its expectation is taken: a cell the "
        "reference saw (almost) empty is not taken to be impossible.",
    )
    night_regions: bool = Field(
        default=True,
        description="Judge each night's quiet hours (the reference's `night_hours`) against the reference's same "
        "hours, over the corner regions of each feature pair: card testing shows on its first night.",
    )
    night_region_min_entities: int = Field(
        default=_NIGHT.min_entities,
        ge=1,
        description="Fewest distinct cards (and as many terminals) in a corner region, over a night, that alert.",
    )
    night_region_p_value: float = Field(
        default=_NIGHT.p_value,
        gt=0,
        lt=1,
        description="A corner region alerts when a Poisson count with the night reference's expectation reaches its "
        "entities less often than this.",
    )
    night_region_prior_rows: float = Field(
        default=_NIGHT.prior_rows,
        gt=0,
        description="Rows added to each corner region's night reference count before its expectation is taken.",
    )
    quality_window_hours: float = Field(default=24.0, gt=0, description="Hours of predictions a quality window holds.")
    label_maturity_hours: float = Field(
        default=8 * 24.0,
        gt=0,
        description="A quality window is judged once labels this far past its end were seen (they come in 7 days).",
    )
    late_label_hours: float = Field(
        default=7 * 24.0,
        ge=0,
        description="A judged quality window still takes very late labels this long; then its predictions are "
        "dropped from memory, and so are fraud labels that waited this long for a prediction.",
    )
    quality_max_drop: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="A matured window whose average precision is below the version's holdout one by this share alerts.",
    )
    quality_sample_size: int = Field(
        default=25_000,
        ge=100,
        description=(
            "Most predictions a quality window joins with their labels per input partition (those whose transaction "
            "ids hash lowest); its figures are weighted up to the window's count. Bounds the label join's memory."
        ),
    )
    quality_min_frauds: int = Field(
        default=20, ge=1, description="Fewest frauds a matured window needs for its quality to be judged."
    )
    debounce_seconds: float = Field(
        default=RetrainPolicy.debounce_seconds,
        ge=0,
        description=(
            "Alerts within this long make one retrain request. Counts the loop clock: the faster of wall time and "
            "the event time judged."
        ),
    )
    request_cooldown_seconds: float = Field(
        default=RetrainPolicy.cooldown_seconds,
        ge=0,
        description=(
            "No retrain request this long after the last one, on the loop clock as the debounce. Not the trainer's "
            "FRAUDSTREAM_COOLDOWN_SECONDS, which spaces its runs in wall time."
        ),
    )

    def drift_policy(self) -> DriftPolicy:
        return DriftPolicy(
            window_hours=self.window_hours,
            psi_threshold=self.psi_threshold,
            min_window_predictions=self.min_window_predictions,
            quiet_hours=self.quiet_hours,
            adwin_delta=self.adwin_delta,
            page_hinkley_threshold=self.page_hinkley_threshold,
            out_of_range_share=self.out_of_range_share,
            out_of_range_min=self.out_of_range_min,
            regions=RegionPolicy(
                rare_share=self.region_rare_share,
                min_entities=self.region_min_entities,
                ratio=self.region_ratio,
                p_value=self.region_p_value,
                prior_rows=self.region_prior_rows,
            )
            if self.joint_regions
            else None,
            night_regions=RegionPolicy(
                rare_share=self.region_rare_share,
                min_entities=self.night_region_min_entities,
                ratio=self.region_ratio,
                p_value=self.night_region_p_value,
                prior_rows=self.night_region_prior_rows,
            )
            if self.night_regions
            else None,
        )

    def retrain_policy(self) -> RetrainPolicy:
        return RetrainPolicy(debounce_seconds=self.debounce_seconds, cooldown_seconds=self.request_cooldown_seconds)
