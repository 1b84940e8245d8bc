"""Prometheus metrics of the features service (fraudstream_features_<what>_<unit>). Commits,
aborts, lag, readiness and store outages are the stream runtime's, by stage
(fraudstream_common.stream: fraudstream_stream_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "fraudstream_features_events_total", "Input events applied, by kind (transaction, label, invalid).", ["kind"]
)
LATE_EVENTS = Counter(
    "fraudstream_features_late_events_total",
    "Transactions that arrived after a later one of the same customer or terminal had been applied.",
)
BEHIND_ORDER_EVENTS = Counter(
    "fraudstream_features_behind_order_events_total",
    "Events the customer stage read after its event-time order had passed them (their partition had "
    "been idle, or the others had waited their longest), by input topic. The terminal stage flags late "
    "those its terminal's history had gone past; transactions enriched meanwhile may have missed them.",
    ["topic"],
)
VECTORS_MISSING_LABEL = Counter(
    "fraudstream_features_vectors_missing_label_total",
    "Vectors the terminal stage computed without a fraud label that counts in them, as it learnt when "
    "the label came (read behind the customer stage's order, or after a transaction released early); "
    "`fraudstream features verify` says which.",
)
EARLY_EVENTS = Counter(
    "fraudstream_features_early_events_total",
    "Events applied before the stage's event time reached them (ahead of their partition, or held as long "
    "as they may be), by stage.",
    ["stage"],
)
EVENT_TIME_WAIT_SECONDS = Histogram(
    "fraudstream_features_event_time_wait_seconds",
    "From reading an event to applying it: the time it waited for event-time order, by stage.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROWS_PUSHED = Counter("fraudstream_features_rows_pushed_total", "States written to Feast's online store.", ["view"])
PUSH_SECONDS = Histogram(
    "fraudstream_features_push_duration_seconds",
    "Time of one push to Feast.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FRESHNESS_SECONDS = Histogram(
    "fraudstream_features_freshness_seconds",
    "From a transaction's message timestamp to its customer's state being readable in the online store.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30),
)
BUFFERED = Gauge("fraudstream_features_buffered_events", "Events waiting for event time, by stage.", ["stage"])
BUFFERED_MAX = Gauge(
    "fraudstream_features_buffered_events_max", "The most events that have waited at once, by stage.", ["stage"]
)
WATERMARK = Gauge(
    "fraudstream_features_event_time_seconds", "Latest event time the terminal stage has released in order."
)
OFFLINE_ROWS = Counter("fraudstream_features_offline_rows_total", "Enriched rows written to the offline store.")
