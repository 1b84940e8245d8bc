"""Prometheus metrics of the inference service (fraudstream_inference_<what>_<unit>)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

REQUEST_SECONDS = Histogram(
    "fraudstream_inference_request_duration_seconds",
    "Server-side time of a scoring call, by transport (http, grpc, stream).",
    ["transport"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "fraudstream_inference_requests_total",
    "Scoring calls by transport and outcome (ok, invalid, unauthorized, forbidden, rate_limited, too_large, "
    "unavailable, conflict, disconnected, error).",
    ["transport", "outcome"],
)
SCORES = Histogram(
    "fraudstream_inference_score",
    "Scores given, by the model's role (champion, canary, shadow).",
    ["role"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0),
)
PASS_ROWS = Histogram(
    "fraudstream_inference_pass_rows",
    "Transactions scored together in one pass of the core (HTTP and gRPC calls that arrived together).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
)
DECISIONS = Counter("fraudstream_inference_decisions_total", "Decisions by kind.", ["decision"])
REPLAYED = Counter(
    "fraudstream_inference_replayed_decisions_total", "Retries answered with the decision already taken."
)
CONFLICTS = Counter(
    "fraudstream_inference_conflicting_ids_total",
    "Transaction ids already decided for other content: refused on a call, scored afresh on the stream.",
    ["path"],
)
DEGRADED = Counter(
    "fraudstream_inference_degraded_total",
    "Transactions scored with the fallback features, by reason (deadline, unavailable).",
    ["reason"],
)
MODEL_INFO = Gauge(
    "fraudstream_inference_model_info",
    "The versions being served (1), by alias.",
    ["alias", "version"],
    multiprocess_mode="livemax",  # with workers: served (1) by any live worker
)
SWAPS = Counter(
    "fraudstream_inference_model_swaps_total", "Published models swapped in or refused.", ["alias", "outcome"]
)
ROLLBACKS = Counter(
    "fraudstream_inference_rollbacks_total", "Challengers taken out of traffic automatically, by reason.", ["reason"]
)
PREDICTIONS_LOGGED = Counter(
    "fraudstream_inference_predictions_logged_total",
    "Predictions of HTTP and gRPC requests acknowledged on the predictions topic (the stream's are "
    "committed with its checkpoints: fraudstream_stream_*).",
)
PREDICTION_LOG_ERRORS = Counter(
    "fraudstream_inference_prediction_log_errors_total",
    "Predictions of HTTP and gRPC requests the predictions topic did not acknowledge.",
)
SCORING_RUNS = Counter(
    "fraudstream_inference_scoring_runs_total",
    "Model runs (one per scored batch) by graph (tree_ensemble, tensor) and ONNX Runtime provider.",
    ["graph", "provider"],
)
