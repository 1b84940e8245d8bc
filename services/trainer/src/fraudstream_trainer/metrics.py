"""The trainer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter(
    "fraudstream_trainer_runs_total",
    "Training runs by outcome: promoted, rejected, data_check_failed, parity_failed.",
    ["outcome"],
)
REQUESTS = Counter(
    "fraudstream_trainer_retrain_requests_total",
    "Retrain requests by what became of them: trained, duplicate, cooldown, other_model, invalid, "
    "refused (unsigned), failed (given up).",
    ["outcome"],
)
RUN_SECONDS = Histogram(
    "fraudstream_trainer_run_duration_seconds",
    "Wall time of a training run, from the request to the decision.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 2400, 3600),
)
LAST_RUN = Gauge("fraudstream_trainer_last_run_timestamp_seconds", "When the last training run finished (Unix time).")
LABELS_STORED = Counter("fraudstream_trainer_labels_stored_total", "Labels written to the trainer's label store.")
