"""Prometheus metrics of the ingest service (fraudstream_ingest_<what>_<unit>)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "fraudstream_ingest_messages_total",
    "Raw messages processed, by outcome (valid, duplicate, rejected).",
    ["outcome"],
)
REJECTIONS = Counter(
    "fraudstream_ingest_rejections_total",
    "Messages sent to the dead-letter topic, by error code.",
    ["code"],
)
BATCH_SECONDS = Histogram(
    "fraudstream_ingest_batch_duration_seconds",
    "Time to process and commit one batch from transactions.raw.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "fraudstream_ingest_batch_size_messages",
    "Messages per batch.",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000),
)
REQUESTS = Counter(
    "fraudstream_ingest_requests_total",
    "HTTP and gRPC ingest calls, by transport and result.",
    ["transport", "result"],
)
