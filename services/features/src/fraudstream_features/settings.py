"""Features service configuration: environment variables prefixed FRAUDSTREAM_."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fraudstream_common.settings import ServiceSettings
from fraudstream_feature_store.settings import FeatureStoreSettings


class FeaturesSettings(ServiceSettings, FeatureStoreSettings):
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8083, description="HTTP port: /healthz, /readyz, /metrics.")
    instance_id: str = Field(
        default="features-0",
        description="Name of this replica, unique among the replicas; its stages' Kafka transactional ids.",
    )
    stages: list[Literal["customers", "terminals"]] = Field(
        default=["customers", "terminals"],
        min_length=1,
        description=(
            'The stages this process runs, as a JSON list: both by default; ["customers"] and ["terminals"] '
            "in two processes run them in parallel instead of in turn in one interpreter (lower latency "
            "where there are cores to spare). Each stage is its own consumer group, so a deployment can "
            "scale each on its own."
        ),
    )
    batch_max_messages: int = Field(default=5000, description="Most input messages taken from Kafka at once.")
    poll_timeout_seconds: float = Field(
        default=0.02,
        description=(
            "The customer stage's longest wait for input in one poll; a poll returns only when it has waited "
            "this long (or read batch_max_messages). The stage tells an idle partition from what one poll has "
            "seen: one producer's write to several partitions reaches it in fetches a moment apart, and a shorter "
            "poll more often sees a partition at its end while that write is still on its way, which puts the "
            "write's events behind the order in a replay."
        ),
    )
    terminal_poll_timeout_seconds: float = Field(
        default=0.005,
        description=(
            "The terminal stage's longest wait for input in one poll. What it read is applied before the next "
            "poll: a short wait applies input as it arrives, so that when a checkpoint is due "
            "(push_interval_seconds) only its own work is left. The stage waits on watermarks, not on its "
            "partitions' ends, so a short poll changes no order."
        ),
    )
    push_interval_seconds: float = Field(
        default=0.02,
        description=(
            "A checkpoint (the Feast push and the commit) closes once this long has passed since the last, "
            "when there is something to commit: input that came meanwhile has waited that long already."
        ),
    )
    push_max_rows: int = Field(
        default=4000, description="A micro-batch is pushed as soon as this many customer/terminal states changed."
    )
    terminal_push_max_seconds: float = Field(
        default=30.0,
        description=(
            "A terminal state changed only by transactions waits at most this long to be pushed online "
            "(it cannot change a request's features before its transactions are 6 days old)."
        ),
    )
    partition_idle_seconds: float = Field(
        default=0.1,
        description=(
            "An input partition with nothing left to read is idle after this long: it holds no event time back "
            "(but see FRAUDSTREAM_PARTITION_IDLE_HOLD_SECONDS); what then arrives for it with earlier times is "
            "behind the order and may have missed transactions it should have seen."
        ),
    )
    label_partition_idle_seconds: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "FRAUDSTREAM_PARTITION_IDLE_SECONDS for the partitions of `labels` (0: idle once read to their end "
            "with nothing on its way, as Kafka Streams treats a partition whose lag is known to be zero). Labels "
            "reach their topic from whoever reports them, one at a time, and each would otherwise hold every later "
            "transaction back this long; transactions pass through ingest, whose checkpoints deliver overlapping "
            "event times to their partitions a moment apart."
        ),
    )
    partition_end_seconds: float | None = Field(
        default=None,
        gt=0.0,
        description=(
            "How soon after an input partition's last record the customer stage hears that it is read to its "
            "end (librdkafka's fetch.wait.max.ms; unset: its 500 ms). A record written in a Kafka transaction, as "
            "ingest writes them, is followed by its commit marker, so on a quiet stream each transaction waits "
            "that long, or for the next one of its partition. Light live traffic gains from 0.02; a replay "
            "written faster than the service reads it then passes partitions for idle more often "
            "(docs/services.md)."
        ),
    )
    partition_idle_hold_seconds: float = Field(
        default=1.0,
        description=(
            "When every input partition was idle and one delivers history again (events more than 5 minutes "
            "behind the clock: a replay resumed, whose writes to the others may be a moment behind), the idle "
            "partitions go on holding event time back this long, each to its latest event plus the wall time "
            "since that was read; the terminal stage holds the customer replicas' idle partitions the same way."
        ),
    )
    partition_max_wait_seconds: float = Field(
        default=60.0,
        description=(
            "Longest time the customer stage holds a partition's events while other partitions of "
            "transactions and labels are behind them (a replay, a lagging producer, labels written "
            "straight to their topic while transactions pass through ingest); then it releases them, "
            "flagged early."
        ),
    )
    max_wait_seconds: float = Field(
        default=10.0,
        description=(
            "Longest time the terminal stage holds a transaction for the labels and transactions its "
            "terminal features need; then it is enriched with what has arrived, flagged early."
        ),
    )
    max_buffered_events: int = Field(
        default=200_000,
        description=(
            "Most events held at once by each stage. The terminal stage then releases its longest-held "
            "transaction, flagged early; the customer stage reads only the partitions its event-time order "
            "waits on, and may go over by a read of batch_max_messages (and two events per partition)."
        ),
    )
    redis_retry_max_seconds: float = Field(
        default=5.0, description="Longest backoff between push attempts while the online store is unreachable."
    )
    offline_part_max_rows: int = Field(
        default=200_000, description="The offline writer starts a new parquet part after this many rows."
    )
    offline_part_max_seconds: float = Field(
        default=10.0,
        description=(
            "The offline writer writes its part at least this often while there are rows. Writing a part "
            "takes the stages in the same process a moment: the more rows, the longer (the compaction merges "
            "the small parts)."
        ),
    )
    offline_compact_rows: int = Field(
        default=1_000_000,
        ge=0,
        description=(
            "The offline writer merges each partition's committed parts, every 10 minutes, into parts of up to "
            "this many rows (0: never), so that training sets do not read thousands of small files."
        ),
    )
    write_offline: bool = Field(
        default=True, description="Write every enriched transaction to Feast's offline store (parquet parts)."
    )
