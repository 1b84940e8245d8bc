"""Replaying an event history through the feature state: the backfill's engine, and the
reference the stream must match.

Events are applied in event order: a label at its label time, a transaction at its time,
labels first on ties (a label known at t is usable by a transaction at t).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fraudstream_common.features.state import CustomerState, TerminalState, feature_vector


@dataclass(frozen=True)
class TransactionEvent:
    transaction_id: str
    customer_id: str
    terminal_id: str
    event_time: float
    amount: float


@dataclass(frozen=True)
class LabelEvent:
    transaction_id: str
    terminal_id: str
    transaction_time: float
    is_fraud: bool
    label_time: float


@dataclass
class FeatureStates:
    """Every customer's and terminal's state, rolled forward event by event."""

    customers: dict[str, CustomerState] = field(default_factory=dict)
    terminals: dict[str, TerminalState] = field(default_factory=dict)

    def apply_transaction(self, tx: TransactionEvent) -> dict[str, float]:
        """The transaction's feature vector, computed before it joins the state; then it joins."""
        customer = self.customers.setdefault(tx.customer_id, CustomerState())
        terminal = self.terminals.setdefault(tx.terminal_id, TerminalState())
        vector = feature_vector(
            customer, terminal, event_time=tx.event_time, amount=tx.amount, terminal_id=tx.terminal_id
        )
        customer.add(tx.event_time, tx.amount, tx.terminal_id)
        terminal.add(tx.event_time, tx.transaction_id)
        return vector

    def apply_label(self, label: LabelEvent) -> bool:
        """Returns whether the terminal's state changed."""
        terminal = self.terminals.setdefault(label.terminal_id, TerminalState())
        return terminal.label(label.transaction_id, label.is_fraud, label.label_time, label.transaction_time)


def in_event_order(
    transactions: Iterable[TransactionEvent], labels: Iterable[LabelEvent]
) -> Iterator[TransactionEvent | LabelEvent]:
    """Merge two time-ordered streams; labels before transactions at the same time."""
    keyed_labels: Iterator[tuple[tuple[float, int, int], TransactionEvent | LabelEvent]] = (
        ((label.label_time, 0, i), label) for i, label in enumerate(labels)
    )
    keyed_transactions: Iterator[tuple[tuple[float, int, int], TransactionEvent | LabelEvent]] = (
        ((tx.event_time, 1, i), tx) for i, tx in enumerate(transactions)
    )
    for _, event in heapq.merge(keyed_labels, keyed_transactions, key=lambda item: item[0]):
        yield event


def replay(
    transactions: Iterable[TransactionEvent], labels: Iterable[LabelEvent]
) -> Iterator[tuple[TransactionEvent, dict[str, float]]]:
    """Each transaction with its feature vector, from a history replayed in event order."""
    states = FeatureStates()
    for event in in_event_order(transactions, labels):
        if isinstance(event, TransactionEvent):
            yield event, states.apply_transaction(event)
        else:
            states.apply_label(event)
