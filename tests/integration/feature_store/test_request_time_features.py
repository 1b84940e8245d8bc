"""The request-time path against real Feast and Redis: states pushed in micro-batches, as the
stream pushes them, then read back by `request_features` (what inference calls) give exactly
the vector the replay computed for each transaction."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from fraudstream_common.features.history import FeatureStates, LabelEvent, TransactionEvent, in_event_order
from fraudstream_common.features.state import CustomerState, TerminalState
from fraudstream_feature_store.store import FeatureStateStore, apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.platform import PLATFORM
from tests.unit.common.features.test_one_definition import events

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> FeatureStateStore:
    feast = apply_repository(PLATFORM.feature_store_redis_url, tmp_path / "registry.db", tmp_path / "offline")
    return FeatureStateStore(feast)


def test_request_time_vectors_from_feast_equal_the_replay(store: FeatureStateStore) -> None:
    run = uuid.uuid4().hex[:8]  # entity ids of this run only, in the shared online store
    transactions, labels = events(simulate(SimulationConfig(n_customers=300, n_terminals=600, nb_days=45)))
    transactions = [
        TransactionEvent(
            tx.transaction_id, f"{run}{tx.customer_id}", f"{run}{tx.terminal_id}", tx.event_time, tx.amount
        )
        for tx in transactions
    ]
    labels = [
        LabelEvent(lb.transaction_id, f"{run}{lb.terminal_id}", lb.transaction_time, lb.is_fraud, lb.label_time)
        for lb in labels
    ]
    sample = set(random.Random(5).sample([tx.transaction_id for tx in transactions[2000:]], 300))
    states = FeatureStates()
    dirty_customers: set[str] = set()
    dirty_terminals: set[str] = set()

    def flush() -> None:
        store.push(
            {c: states.customers[c].snapshot() for c in dirty_customers},
            {t: states.terminals[t].snapshot() for t in dirty_terminals},
        )
        dirty_customers.clear()
        dirty_terminals.clear()

    checked = 0
    for n, event in enumerate(in_event_order(transactions, labels)):
        if isinstance(event, LabelEvent):
            states.apply_label(event)
            dirty_terminals.add(event.terminal_id)
        else:
            if event.transaction_id in sample:
                flush()  # the stream's micro-batch has landed before this request
                served = store.request_features(
                    customer_id=event.customer_id,
                    terminal_id=event.terminal_id,
                    event_time=event.event_time,
                    amount=event.amount,
                )
                expected = states.apply_transaction(event)
                assert served == expected, event.transaction_id
                checked += 1
            else:
                states.apply_transaction(event)
            dirty_customers.add(event.customer_id)
            dirty_terminals.add(event.terminal_id)
        if n % 2000 == 0:
            flush()
    assert checked == 300

    # Replaying an older version of every state changes nothing: Feast keeps the newest.
    some_customer = next(iter(states.customers))
    current, _ = store.read(some_customer, "none")
    stale = CustomerState.from_json(current.to_json())
    stale.updates -= 1
    store.push({some_customer: stale.snapshot()}, {})
    assert store.read(some_customer, "none")[0] == current
    assert store.read("unknown-customer", "unknown-terminal") == (CustomerState(), TerminalState())
