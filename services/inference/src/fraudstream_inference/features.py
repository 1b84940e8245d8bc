"""Features at request time: the customer's and terminal's state from Feast, combined with
the transaction by the shared definitions (fraudstream_common.features), so that a request
gets the vector the stream and the training set would give it.

The read has a deadline. When it is missed, or the online store fails, the answer uses the
fallback: the vector of the transaction with its customer and terminal as if never seen
before (no history), which scores like a first transaction. The answer says `degraded`, and
`fraudstream_inference_degraded_total` counts it, by reason. A slow Redis never fails a
request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.features.state import CustomerState, TerminalState, feature_vector
from fraudstream_feature_store.store import FeatureStateStore
from fraudstream_inference import metrics

logger = logging.getLogger(__name__)

_CUSTOMER = np.asarray(
    [i for i, name in enumerate(FEATURE_NAMES) if name.startswith(("customer_", "amount_to_customer"))]
)
_TERMINAL = np.asarray([i for i, name in enumerate(FEATURE_NAMES) if name.startswith("terminal_")])


@dataclass(frozen=True)
class TransactionInput:
    transaction_id: str
    customer_id: str
    terminal_id: str
    amount: float
    event_time: float


@dataclass(frozen=True)
class Vectors:
    """Rows in FEATURE_NAMES order (float32), with each value's age in seconds of event time
    (how old the state it came from is; 0 for the transaction's own features)."""

    values: np.ndarray
    ages: np.ndarray
    degraded: bool
    reason: str = ""


class RequestFeatures:
    def __init__(self, store: FeatureStateStore, deadline_seconds: float) -> None:
        self._store = store
        self._deadline = deadline_seconds

    async def vectors(self, transactions: list[TransactionInput]) -> Vectors:
        pairs = [(tx.customer_id, tx.terminal_id) for tx in transactions]
        reason = ""
        try:
            states = await asyncio.wait_for(self._store.read_many(pairs), self._deadline)
        except TimeoutError:
            reason = "deadline"
        except Exception as error:  # the store failing in any way must not fail the request
            reason = "unavailable"
            logger.warning("feature store read failed: %s", error)
        if reason:
            metrics.DEGRADED.labels(reason).inc(len(transactions))
            states = [(CustomerState(), TerminalState())] * len(transactions)
        values = np.empty((len(transactions), len(FEATURE_NAMES)), dtype=np.float32)
        ages = np.zeros((len(transactions), len(FEATURE_NAMES)), dtype=np.float64)
        for row, (tx, (customer, terminal)) in enumerate(zip(transactions, states, strict=True)):
            vector = feature_vector(
                customer, terminal, event_time=tx.event_time, amount=tx.amount, terminal_id=tx.terminal_id
            )
            values[row] = [vector[name] for name in FEATURE_NAMES]
            if not reason:
                ages[row, _CUSTOMER] = _age(tx.event_time, customer.as_of)
                ages[row, _TERMINAL] = _age(tx.event_time, terminal.as_of)
        return Vectors(values, ages, bool(reason), reason)


def _age(event_time: float, as_of: float) -> float:
    return max(event_time - as_of, 0.0) if as_of else 0.0
