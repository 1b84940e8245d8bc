"""Prometheus metrics of the features service (fraudstream_features_<what>_<unit>)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "fraudstream_features_events_total", "Input events applied, by kind (transaction, label, invalid).", ["kind"]
)
LATE_EVENTS = Counter(
    "fraudstream_features_late_events_total", "Events applied after the stream's event time had passed them."
)
EARLY_EVENTS = Counter(
    "fraudstream_features_early_events_total",
    "Events applied before the stream's event time reached them (ahead of their partition, or their "
    "partition waited too long for the others).",
)
ROWS_PUSHED = Counter("fraudstream_features_rows_pushed_total", "States written to Feast's online store.", ["view"])
PUSH_SECONDS = Histogram(
    "fraudstream_features_push_duration_seconds",
    "Time of one micro-batch push to Feast.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FRESHNESS_SECONDS = Histogram(
    "fraudstream_features_freshness_seconds",
    "From a transaction's message timestamp to its state being readable in the online store.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30),
)
BATCH_SECONDS = Histogram(
    "fraudstream_features_commit_duration_seconds",
    "Time to commit one micro-batch (enriched outputs, changelog and offsets) to Kafka.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LAG = Gauge("fraudstream_features_consumer_lag_messages", "Messages not yet committed, per input topic.", ["topic"])
BUFFERED = Gauge("fraudstream_features_buffered_events", "Events read and waiting for event time to reach them.")
BUFFERED_MAX = Gauge(
    "fraudstream_features_buffered_events_max", "The most events that have waited at once since the start."
)
WATERMARK = Gauge("fraudstream_features_event_time_seconds", "Event time the stream has reached (epoch seconds).")
TRANSACTION_ABORTS = Counter(
    "fraudstream_features_transaction_aborts_total", "Micro-batches aborted and recovered from the changelog."
)
ONLINE_STORE_UNAVAILABLE = Counter(
    "fraudstream_features_online_store_unavailable_total", "Push attempts that failed because Redis did not answer."
)
READY = Gauge("fraudstream_features_ready", "1 while consuming, 0 while restoring or held back by the online store.")
OFFLINE_ROWS = Counter("fraudstream_features_offline_rows_total", "Enriched rows written to the offline store.")
