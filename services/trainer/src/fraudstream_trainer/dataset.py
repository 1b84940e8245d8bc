"""Training sets: transactions of a window, their feature vectors joined point-in-time from
Feast's offline store (feature view transaction_features, written by the backfill and the
features service), and the labels known by a given time."""

from __future__ import annotations

import hashlib

import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_feature_store import FeatureStore
from fraudstream_feature_store.repository import TIMESTAMP, TRANSACTION_VIEW, parts_of_other_definitions
from fraudstream_modelling.labels import latest_labels

FEATURE_REFERENCES = [f"{TRANSACTION_VIEW}:{name}" for name in FEATURE_NAMES]


def training_set(
    store: FeatureStore,
    labels: pd.DataFrame,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    labels_known_at: pd.Timestamp,
) -> pd.DataFrame:
    """One row per labelled transaction with time in [start, end) whose label was known by
    `labels_known_at`: transaction_id, customer_id, event_time, label_time, is_fraud and the
    features as Feast's point-in-time join gives them at the transaction's time.

    `labels`: transaction_id, customer_id, transaction_time, is_fraud, label_time (the
    `labels` topic's fields); the latest report known by `labels_known_at` wins."""
    known = latest_labels(labels[labels["label_time"] <= labels_known_at])
    window = known[(known["transaction_time"] >= start) & (known["transaction_time"] < end)]
    entities = pd.DataFrame(
        {
            "transaction_id": pd.array(window["transaction_id"].to_numpy(), dtype="string"),
            TIMESTAMP: window["transaction_time"].to_numpy(),
        }
    )
    try:
        joined = store.get_historical_features(entity_df=entities, features=FEATURE_REFERENCES).to_df()
    except Exception as error:
        # The join's own error names a column or a glob; say which parts, and what to do.
        if (other := parts_of_other_definitions(store)) is not None:
            raise other from error
        raise
    joined = joined.drop_duplicates("transaction_id").set_index("transaction_id")
    frame = window.set_index("transaction_id")[["customer_id", "transaction_time", "label_time", "is_fraud"]]
    frame = frame.rename(columns={"transaction_time": "event_time"}).join(joined[list(FEATURE_NAMES)], how="left")
    frame["is_fraud"] = frame["is_fraud"].astype(bool)
    return frame.reset_index().sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A hash of the training data (ids, labels, features), for the run's lineage."""
    columns = ["transaction_id", "is_fraud", *FEATURE_NAMES]
    hashed = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
