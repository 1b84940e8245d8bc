"""The done-when of the features issue: the same simulated history through the streaming
service and through the backfill gives every transaction the same vector on every path:
`transactions.enriched`, Feast's offline point-in-time join, and the request-time combination
of Feast's online state with a transaction (what inference calls)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES, HOUR
from fraudstream_common.features.state import feature_vector
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction
from fraudstream_common.topics import Topic
from fraudstream_feature_store.repository import TIMESTAMP, TRANSACTION_VIEW
from tests.integration.features.streams import (
    History,
    feature_store,
    features_service,
    produce_history,
    simulated_history,
)
from tests.platform import Topics, drain
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = pytest.mark.integration


def enriched_frame(topics: Topics, expected: int) -> pd.DataFrame:
    records = drain(topics(Topic.TRANSACTIONS_ENRICHED), expected=expected, timeout=240)
    rows = {}
    for record in records:
        enriched = EnrichedTransaction.FromString(record.value)
        assert list(enriched.feature_names) == list(FEATURE_NAMES)
        assert record.key == enriched.transaction.customer_id.encode()
        rows[enriched.transaction.transaction_id] = list(enriched.feature_values)
    assert len(records) == len(rows) == expected, "a transaction was enriched more than once"
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(FEATURE_NAMES))


def test_stream_backfill_offline_join_and_request_time_agree(topics: Topics, tmp_path: Path) -> None:
    history: History = simulated_history()
    store = feature_store(tmp_path)
    expected = backfill(history.transactions, history.labels).set_index("transaction_id")
    assert len(expected) >= 10_000
    assert history.labels["is_fraud"].sum() > 100
    produce_history(topics, history)

    service = features_service(topics, tmp_path)
    service.start()
    try:
        streamed = enriched_frame(topics, len(expected))
        assert_same(streamed.loc[expected.index], expected, list(FEATURE_NAMES))

        # Offline: Feast's point-in-time join over the parts the service wrote.
        deadline = time.monotonic() + 60
        while service.metric("fraudstream_features_offline_rows_total") < len(expected):
            assert time.monotonic() < deadline, "the offline writer did not write every row"
            time.sleep(0.5)
    finally:
        assert service.terminate() == 0
    entities = pd.DataFrame(
        {
            "transaction_id": expected.index.to_numpy(),
            TIMESTAMP: pd.to_datetime(expected["event_time"], utc=True).to_numpy(),
        }
    )
    joined = (
        store.feast.get_historical_features(
            entity_df=entities, features=[f"{TRANSACTION_VIEW}:{name}" for name in FEATURE_NAMES]
        )
        .to_df()
        .set_index("transaction_id")
    )
    assert len(joined) == len(expected)
    assert not joined[list(FEATURE_NAMES)].isna().any().any()
    assert_same(joined.loc[expected.index], expected, list(FEATURE_NAMES))

    # Online: the state the service left in Feast is the replay's, customer by customer and
    # terminal by terminal; and a next transaction of each customer gets the same vector
    # from Feast at request time as from the replay.
    states = history.final_states()
    for customer_id, customer in states.customers.items():
        assert store.read(customer_id, "none")[0] == customer, customer_id
    for terminal_id, terminal in states.terminals.items():
        assert store.read("none", terminal_id)[1] == terminal, terminal_id
    end = float(history.transactions["event_time"].max().timestamp())
    rng = np.random.default_rng(3)
    terminals = list(states.terminals)
    for customer_id, customer in states.customers.items():
        terminal_id = terminals[rng.integers(len(terminals))]
        event_time = end + rng.uniform(0, 48 * HOUR)
        served = store.request_features(
            customer_id=customer_id, terminal_id=terminal_id, event_time=event_time, amount=50.0
        )
        replayed = feature_vector(
            customer, states.terminals[terminal_id], event_time=event_time, amount=50.0, terminal_id=terminal_id
        )
        assert served == replayed, (customer_id, terminal_id)
