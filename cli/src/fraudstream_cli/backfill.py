"""`fraudstream features backfill`: the feature vector of every transaction in a recorded
history, computed by replaying it through the same state the stream keeps
(fraudstream_common.features), so that training data and serving agree by construction."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.features.history import FeatureStates, LabelEvent, TransactionEvent, in_event_order, replay
from fraudstream_feature_store.repository import transaction_features_dir, transaction_features_frame
from fraudstream_simulator.sinks import EPOCH


def stream_seconds(times: pd.Series) -> list[float]:
    """Seconds since the epoch of a tz-aware datetime column, as the stream reads a protobuf
    Timestamp (seconds + nanos / 1e9): a sub-second time falls in the same windows online and
    offline, to the last bit."""
    nanoseconds = ((times - EPOCH) // pd.Timedelta(nanoseconds=1)).to_numpy(np.int64)
    whole, nanos = np.divmod(nanoseconds, 1_000_000_000)
    return [int(w) + int(n) / 1e9 for w, n in zip(whole.tolist(), nanos.tolist(), strict=True)]


def transaction_events(transactions: pd.DataFrame) -> list[TransactionEvent]:
    times = stream_seconds(transactions["event_time"])
    return [
        TransactionEvent(transaction_id, customer_id, terminal_id, time, amount)
        for transaction_id, customer_id, terminal_id, time, amount in zip(
            transactions["transaction_id"].tolist(),
            transactions["customer_id"].tolist(),
            transactions["terminal_id"].tolist(),
            times,
            transactions["amount"].astype(float).tolist(),
            strict=True,
        )
    ]


def label_events(labels: pd.DataFrame) -> list[LabelEvent]:
    return [
        LabelEvent(transaction_id, terminal_id, transaction_time, is_fraud, label_time)
        for transaction_id, terminal_id, transaction_time, is_fraud, label_time in zip(
            labels["transaction_id"].tolist(),
            labels["terminal_id"].tolist(),
            stream_seconds(labels["transaction_time"]),
            labels["is_fraud"].astype(bool).tolist(),
            stream_seconds(labels["label_time"]),
            strict=True,
        )
    ]


def backfill(transactions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per transaction: its ids, its event time, and every feature in FEATURE_NAMES order.

    `transactions` must be in event-time order (the simulator's are); `labels` in label-time order.
    """
    ordered = transactions.sort_values("event_time", kind="stable")
    events = transaction_events(ordered)
    vectors = np.empty((len(events), len(FEATURE_NAMES)))
    for i, (_, vector) in enumerate(replay(events, label_events(labels.sort_values("label_time", kind="stable")))):
        vectors[i] = [vector[name] for name in FEATURE_NAMES]
    features = pd.DataFrame(vectors, columns=list(FEATURE_NAMES))
    ids = ordered[["transaction_id", "customer_id", "terminal_id", "event_time"]].reset_index(drop=True)
    return pd.concat([ids, features], axis=1)


def final_states(transactions: pd.DataFrame, labels: pd.DataFrame) -> FeatureStates:
    """Every customer's and terminal's state after the whole history, as the features service
    leaves them online."""
    states = FeatureStates()
    for event in in_event_order(transaction_events(transactions), label_events(labels)):
        if isinstance(event, TransactionEvent):
            states.apply_transaction(event)
        else:
            states.apply_label(event)
    return states


def _read_history(history: Path) -> pd.DataFrame:
    for name in ("transactions.parquet", "labels.parquet"):
        if not (history / name).exists():
            raise FileNotFoundError(f"{history / name} is missing: write a history with `fraudstream simulate --out`")
    return backfill(pd.read_parquet(history / "transactions.parquet"), pd.read_parquet(history / "labels.parquet"))


def backfill_directory(history: Path, out: Path) -> int:
    """Reads a simulator parquet folder (transactions.parquet, labels.parquet), writes `out`."""
    features = _read_history(history)
    out.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out, index=False)
    return len(features)


def backfill_offline_store(history: Path, offline_dir: Path) -> tuple[int, Path]:
    """Writes the history's feature vectors into Feast's offline store (a part of the
    `transaction_features` source), where training sets are joined point-in-time. The part is
    named by a digest of the history, so backfilling the same history again replaces it."""
    features = _read_history(history)
    digest = hashlib.sha256()
    for name in ("transactions.parquet", "labels.parquet"):
        digest.update((history / name).read_bytes())
    directory = transaction_features_dir(offline_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"backfill-{digest.hexdigest()[:16]}.parquet"
    frame = transaction_features_frame(
        features, np.asarray(stream_seconds(features["event_time"])), features[list(FEATURE_NAMES)].to_numpy()
    )
    temporary = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(temporary, index=False)
    temporary.replace(path)
    return len(frame), path
