"""The monitor's Prometheus metrics (`fraudstream_monitor_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PREDICTIONS = Counter("fraudstream_monitor_predictions_total", "Predictions observed.", ["model_version", "role"])
LABELS = Counter("fraudstream_monitor_labels_total", "Labels observed.")
DRIFT = Gauge(
    "fraudstream_monitor_drift",
    "Drift statistic of the last judged window, per version, subject (feature or score) and statistic "
    "(psi, out_of_range share).",
    ["model_version", "subject", "statistic"],
)
QUALITY = Gauge(
    "fraudstream_monitor_quality",
    "Quality of the latest matured window, per version and metric.",
    ["model_version", "metric"],
)
QUALITY_HELD = Gauge(
    "fraudstream_monitor_quality_held",
    "What the label join holds in memory, per version and input partition: windows, predictions (the windows' "
    "samples), fraud labels waiting for a prediction.",
    ["model_version", "partition", "what"],
)
ALERTS = Counter("fraudstream_monitor_alerts_total", "Alerts raised and sent.", ["kind", "subject"])
RETRAIN_REQUESTS = Counter("fraudstream_monitor_retrain_requests_total", "Retrain requests sent.", ["reason"])
PAUSED = Gauge("fraudstream_monitor_loop_paused", "1 while an operator has paused the retrain loop.")
DEADLETTERS = Counter("fraudstream_monitor_deadletters_total", "Records sent to the dead-letter topic.", ["topic"])
LATE_PARTIALS = Counter(
    "fraudstream_monitor_late_partials_total",
    "Counts of an input partition that reached the judge after it had judged their hour or window without them.",
    ["kind"],
)
UNCOUNTED_PREDICTIONS = Gauge(
    "fraudstream_monitor_uncounted_predictions",
    "Predictions an input partition left out of its drift counts since the replica took it: late (their hour "
    "had closed) or ahead (far past the partition's watermark).",
    ["partition", "why"],
)
