"""The loop restores quality on the real platform, from a cold start, with the gate at its
defaults: `fraudstream simulate` streams a world (its history as fast as it goes, then, once a
first model is published, the rest paced in event time) with a new fraud pattern that hurts the
first model; the five services do the rest with no human step. The trainer makes the first
model once the history allows; the monitor detects the drift; the trainer retrains, its gate
judges, inference swaps. Then, on labels the world knows in the end:

- every transaction has exactly one prediction per model version that scored it;
- the monitor's matured quality comes back within 10% of its level before the drift (judged by
  `fraudstream watch`'s report, as `make demo` judges it);
- version 1 (the control), scored on the same feature rows over those days, stays below that.

`make test` runs a world of 2,000 customers; `make loop` runs the demo's (5,000) with
FRAUDSTREAM_LOOP_CUSTOMERS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from statistics import mean

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from fraudstream_cli.watch import DAY_SECONDS, Recovery, fetch, recovery, report
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import apply_repository
from fraudstream_modelling.model import onnx_scores
from fraudstream_registry.registry import Registry
from fraudstream_simulator.config import DriftSpec, SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.integration.features.streams import features_service
from tests.integration.inference.serving import inference_service
from tests.integration.monitor.service import monitor_service
from tests.integration.trainer.history import trainer_service
from tests.platform import PLATFORM, PrivateRedis, ServiceProcess, Topics, drain, feast_env

pytestmark = pytest.mark.integration

CUSTOMERS = int(os.environ.get("FRAUDSTREAM_LOOP_CUSTOMERS", "2000"))
DRIFT = DriftSpec(name="new-fraud-pattern", start_day=56)
DAYS = 84
HISTORY_DAYS = 53  # what the first model needs: a holdout after the features' warm-up
SECONDS_PER_DAY = float(os.environ.get("FRAUDSTREAM_LOOP_SECONDS_PER_DAY", "12"))
TOLERANCE = 0.1
SPAN = 7


@pytest.mark.timeout(1500 + 3 * (DAYS - HISTORY_DAYS) * SECONDS_PER_DAY)
def test_after_a_drift_the_loop_brings_quality_back_with_no_human_step(
    topics: Topics, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    config = SimulationConfig(n_customers=CUSTOMERS, n_terminals=2 * CUSTOMERS, nb_days=DAYS, drifts=(DRIFT,))
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    stores = tmp_path / "stores"
    apply_repository(private_redis.url, stores / "registry.db", stores / "offline")
    store_env = feast_env(private_redis.url, stores)
    logs = tmp_path / "logs"
    logs.mkdir()
    trainer_store = {name.removeprefix("FRAUDSTREAM_").lower(): value for name, value in store_env.items()}
    # Cooldowns count wall time: a short one, as the demo's, so that a drift can be answered.
    cooldown = str(4 * SECONDS_PER_DAY)
    # Event time runs thousands of times faster than wall time: the monitor's hours wait as
    # many times longer for predictions out of order (a few seconds of wall time).
    speedup = DAY_SECONDS / SECONDS_PER_DAY
    monitor = monitor_service(
        topics.prefix,
        logs,
        model,
        model,
        hour_lateness_seconds=str(3 * speedup),
        hour_max_ahead_seconds=str(6 * speedup),
    )
    services = [
        ServiceProcess(prefix=topics.prefix, log_dir=logs),
        # Offline parts at the service's default pace: the tests' 1 s parts would leave thousands
        # of files for every training set's point-in-time join to read.
        features_service(topics, logs, **store_env, FRAUDSTREAM_OFFLINE_PART_MAX_SECONDS="60"),
        inference_service(topics.prefix, logs, model, store_env),
        monitor,
        trainer_service(
            topics.prefix,
            logs,
            model,
            model,
            **trainer_store,
            first_model="true",
            first_model_check_seconds="2",
            cooldown_seconds=cooldown,
            n_estimators="100",
        ),
    ]
    for service in services:
        # Inference is not ready until a model exists: nothing would be, without the others.
        service.start(wait_ready=service.module != "fraudstream_inference")
    try:
        _simulate(topics, config)
        transactions = _truth(config)
        predictions = _predictions(topics, expected=len(transactions))
        overview = _settled_overview(monitor)
    finally:
        for service in services:
            service.terminate()

    drift_start = DRIFT.starts_at(config.start_date).timestamp()
    found = recovery(overview, drift_start, tolerance=TOLERANCE, span=SPAN)
    verdict = report(overview, drift_start)
    print(verdict)  # in the test's captured output (`pytest -rP`), as the demo prints it

    counts = Counter(zip(predictions["transaction_id"], predictions["model_version"], strict=True))
    assert max(counts.values()) == 1, "a transaction scored twice by one version"
    assert set(transactions["transaction_id"]) <= set(predictions["transaction_id"]), "a transaction never scored"

    assert found.detection_hours is not None, verdict
    assert found.versions_after, f"no retrained version served after the drift\n{verdict}"
    assert found.recovered_day is not None, verdict
    assert found.before is not None
    control, loop = _control_and_loop(predictions, transactions, found, Registry(PLATFORM.mlflow_url, model))
    assert control < (1 - TOLERANCE) * found.before, f"the drift did not hurt version 1: {control:.3f}\n{verdict}"
    assert loop > control, verdict
    print(f"days {found.recovered_day}..{found.recovered_day + SPAN - 1}: loop AP {loop:.3f}, control {control:.3f}")


def _simulate(topics: Topics, config: SimulationConfig) -> None:
    """`fraudstream simulate` as `make demo` runs it, into this test's topics."""
    speedup = DAY_SECONDS / SECONDS_PER_DAY
    paced_days = DAYS - HISTORY_DAYS
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraudstream_cli.main",
            "simulate",
            *("--customers", str(config.n_customers), "--terminals", str(config.n_terminals)),
            *("--days", str(DAYS), "--history-days", str(HISTORY_DAYS), "--speedup", str(speedup)),
            *("--drift", f"{DRIFT.name}:{DRIFT.start_day}", "--wait-for-model", "600"),
        ],
        env={**os.environ, "FRAUDSTREAM_TOPIC_PREFIX": topics.prefix},
        capture_output=True,
        text=True,
        timeout=1200 + 2 * paced_days * SECONDS_PER_DAY,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr


def _truth(config: SimulationConfig) -> pd.DataFrame:
    """The world's transactions with what is known of them in the end."""
    world = simulate(config)
    final = world.labels.sort_values("label_time", kind="stable").drop_duplicates("transaction_id", keep="last")
    frame = world.transactions[["transaction_id", "event_time"]].merge(
        final[["transaction_id", "is_fraud"]], on="transaction_id", how="left"
    )
    frame["is_fraud"] = frame["is_fraud"].fillna(False).astype(bool)
    frame["transaction_id"] = frame["transaction_id"].astype(str)
    return frame


def _predictions(topics: Topics, expected: int) -> pd.DataFrame:
    """Every prediction on the topic: transaction, version, score, and the features it used."""
    records = [
        Prediction.FromString(r.value)
        for r in drain(topics(Topic.PREDICTIONS), expected=expected, timeout=600, quiet=10)
    ]
    frame = pd.DataFrame(
        {
            "transaction_id": [p.transaction_id for p in records],
            "model_version": [p.model_version for p in records],
            "score": [p.score for p in records],
        }
    )
    values = [{f.name: f.value for f in p.features} for p in records]
    rows = np.array([[row.get(name, np.nan) for name in FEATURE_NAMES] for row in values], dtype=np.float64)
    return pd.concat([frame, pd.DataFrame(rows, columns=list(FEATURE_NAMES))], axis=1)


def _settled_overview(monitor: ServiceProcess) -> dict[str, object]:
    """The console's overview once the monitor has judged the last labels (its quality windows
    stop changing)."""
    previous, deadline = None, time.monotonic() + 180
    while time.monotonic() < deadline:
        overview = fetch(monitor.url)
        quality = None if overview is None else [v.get("quality") for v in overview.get("versions", [])]
        if overview is not None and quality == previous:
            return overview
        previous = quality
        time.sleep(10)
    raise AssertionError("the monitor's quality windows never settled")


def _control_and_loop(
    predictions: pd.DataFrame, transactions: pd.DataFrame, found: Recovery, registry: Registry
) -> tuple[float, float]:
    """Mean daily average precision over the span the loop recovered in: version 1 (the control)
    and the versions that served, each on the feature rows the served prediction used."""
    assert found.recovered_day is not None
    start = pd.Timestamp(found.drift_start + found.recovered_day * DAY_SECONDS, unit="s", tz="UTC")
    served = predictions.sort_values("model_version", key=lambda v: v.astype(int)).drop_duplicates(
        "transaction_id", keep="last"
    )
    frame = transactions.merge(served, on="transaction_id")
    frame = frame[(frame["event_time"] >= start) & (frame["event_time"] < start + pd.Timedelta(days=SPAN))]
    frame["control"] = onnx_scores(registry.onnx_model("1"), frame[list(FEATURE_NAMES)].to_numpy())
    days = [day for _, day in frame.groupby(frame["event_time"].dt.floor("D")) if day["is_fraud"].any()]
    control = mean(float(average_precision_score(day["is_fraud"], day["control"])) for day in days)
    loop = mean(float(average_precision_score(day["is_fraud"], day["score"])) for day in days)
    return control, loop
