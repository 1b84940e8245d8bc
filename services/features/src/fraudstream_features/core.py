"""The features core: decode input, roll the feature state forward in event order, and say what
to produce. No I/O: the stream loop (stream.py) feeds it messages from Kafka, pushes the
changed states to Feast and commits what it returns in one Kafka transaction.

The state is fraudstream_common.features' own (the definitions the backfill and request-time
scoring use too), keyed "c:<customer_id>" and "t:<terminal_id>" on the changelog topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import PROTOBUF_HEADERS, Output, RawMessage, dead_letter
from fraudstream_common.features.definitions import DAY, FEATURE_NAMES, LABEL_DELAY_DAYS
from fraudstream_common.features.history import FeatureStates, LabelEvent, TransactionEvent
from fraudstream_common.features.state import CustomerState, Snapshot, TerminalState
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.timestamps import seconds_of, timestamp_of
from fraudstream_common.topics import Topic, topic_name
from fraudstream_features.merge import RANK_INVALID, RANK_LABEL, RANK_TRANSACTION, Timing

SERVICE = "features"
# A terminal's deferred transactions are pushed online a day before they could matter to a request.
TERMINAL_PUSH_SLACK = (LABEL_DELAY_DAYS - 1) * DAY
CUSTOMER_KEY = "c:"
TERMINAL_KEY = "t:"


@dataclass(frozen=True)
class Invalid:
    message: RawMessage
    code: str
    reason: str


@dataclass(frozen=True)
class TransactionInput:
    event: TransactionEvent
    transaction: Transaction
    produced_at: float  # the input message's timestamp, for freshness


@dataclass(frozen=True)
class LabelInput:
    event: LabelEvent


Decoded = TransactionInput | LabelInput | Invalid


@dataclass(frozen=True)
class Sortable:
    """A decoded message with where it sorts in event time (see merge.py)."""

    event_time: float
    rank: int
    decoded: Decoded


@dataclass
class ChangedStates:
    """Snapshots of states, taken when a micro-batch closes: what its changelog records and its
    push write are the same serialisation of the same moment."""

    customers: dict[str, Snapshot] = field(default_factory=dict)
    terminals: dict[str, Snapshot] = field(default_factory=dict)


class FeaturesCore:
    def __init__(self, topic_prefix: str = "") -> None:
        self.transactions_topic = topic_name(Topic.TRANSACTIONS, topic_prefix)
        self.labels_topic = topic_name(Topic.LABELS, topic_prefix)
        self.enriched_topic = topic_name(Topic.TRANSACTIONS_ENRICHED, topic_prefix)
        self.changelog_topic = topic_name(Topic.FEATURES_STATE, topic_prefix)
        self.deadletter_topic = topic_name(Topic.DEADLETTER, topic_prefix)
        self.states = FeatureStates()
        self._changed_customers: set[str] = set()
        self._changed_terminals: set[str] = set()
        # Terminals whose online state must be pushed with the next micro-batch (a fraud report
        # changes risk at once), and terminals whose only unpushed changes are transactions,
        # with the earliest such transaction's time: see `take_online`.
        self._terminals_due: set[str] = set()
        # terminal -> (earliest unpushed transaction time, wall time it was deferred); in
        # insertion order, so the first entry has waited longest.
        self._terminals_deferred: dict[str, tuple[float, float]] = {}

    # Input

    def decode(self, message: RawMessage) -> Sortable:
        value = message.value() or b""
        try:
            if message.topic() == self.labels_topic:
                return self._decode_label(message, Label.FromString(value))
            return self._decode_transaction(message, Transaction.FromString(value))
        except DecodeError as exc:
            return Sortable(0.0, RANK_INVALID, Invalid(message, "invalid_protobuf", f"not a protobuf message: {exc}"))

    def _decode_transaction(self, message: RawMessage, tx: Transaction) -> Sortable:
        missing = [name for name in ("transaction_id", "customer_id", "terminal_id") if not getattr(tx, name)]
        if missing or not tx.HasField("event_time"):
            reason = f"missing {', '.join(missing or ['event_time'])}"
            return Sortable(0.0, RANK_INVALID, Invalid(message, "missing_field", reason))
        event_time = seconds_of(tx.event_time)
        timestamp_type, timestamp_ms = _message_timestamp(message)
        event = TransactionEvent(tx.transaction_id, tx.customer_id, tx.terminal_id, event_time, tx.amount)
        produced_at = timestamp_ms / 1000 if timestamp_type and timestamp_ms > 0 else time.time()
        return Sortable(event_time, RANK_TRANSACTION, TransactionInput(event, tx, produced_at))

    def _decode_label(self, message: RawMessage, label: Label) -> Sortable:
        missing = [name for name in ("transaction_id", "terminal_id") if not getattr(label, name)]
        if missing or not label.HasField("label_time") or not label.HasField("transaction_time"):
            reason = f"missing {', '.join(missing or ['label_time or transaction_time'])}"
            return Sortable(0.0, RANK_INVALID, Invalid(message, "missing_field", reason))
        label_time = seconds_of(label.label_time)
        event = LabelEvent(
            label.transaction_id, label.terminal_id, seconds_of(label.transaction_time), label.is_fraud, label_time
        )
        return Sortable(label_time, RANK_LABEL, LabelInput(event))

    # Processing, in event order

    def apply(self, decoded: Decoded, *, timing: Timing = Timing.IN_ORDER) -> Output | None:
        """Applies one event; returns what to produce for it (enriched transaction, dead letter)."""
        if isinstance(decoded, Invalid):
            return dead_letter(
                self.deadletter_topic, SERVICE, decoded.message, code=decoded.code, reason=decoded.reason
            )
        if isinstance(decoded, LabelInput):
            if self.states.apply_label(decoded.event):
                self._changed_terminals.add(decoded.event.terminal_id)
                self._terminals_due.add(decoded.event.terminal_id)
            return None
        event = decoded.event
        customer = self.states.customers.get(event.customer_id)
        terminal = self.states.terminals.get(event.terminal_id)
        customer_time = customer.as_of if customer else 0.0
        terminal_time = terminal.as_of if terminal else 0.0
        vector = self.states.apply_transaction(event)
        self._changed_customers.add(event.customer_id)
        self._changed_terminals.add(event.terminal_id)
        deferred = self._terminals_deferred.get(event.terminal_id)
        if deferred is None:
            self._terminals_deferred[event.terminal_id] = (event.event_time, time.monotonic())
        elif event.event_time < deferred[0]:
            self._terminals_deferred[event.terminal_id] = (event.event_time, deferred[1])
        enriched = EnrichedTransaction(
            transaction=decoded.transaction,
            feature_names=FEATURE_NAMES,
            feature_values=[vector[name] for name in FEATURE_NAMES],
            enriched_time=timestamp_of(time.time()),
            late=timing is Timing.LATE,
            early=timing is Timing.EARLY,
            customer_state_time=timestamp_of(customer_time),
            terminal_state_time=timestamp_of(terminal_time),
            input_time=timestamp_of(decoded.produced_at),
        )
        return Output(self.enriched_topic, event.customer_id.encode(), enriched.SerializeToString(), PROTOBUF_HEADERS)

    def take_changed(self) -> ChangedStates:
        """The states changed since the last call: what the next micro-batch logs on the changelog."""
        changed = ChangedStates(
            {c: self.states.customers[c].snapshot() for c in self._changed_customers},
            {t: self.states.terminals[t].snapshot() for t in self._changed_terminals},
        )
        self._changed_customers.clear()
        self._changed_terminals.clear()
        return changed

    def take_online(
        self,
        changed: ChangedStates,
        *,
        watermark: float,
        deferred_before: float = float("-inf"),
        everything: bool = False,
    ) -> ChangedStates:
        """What the next micro-batch pushes to the online store: every changed customer, and the
        terminals whose online state would otherwise be wrong for a request.

        A terminal's features at time t use only transactions at or before t - LABEL_DELAY_DAYS
        (and fraud reports known at t). So a terminal whose only unpushed changes are transactions
        later than watermark - TERMINAL_PUSH_SLACK serves every request at or after the watermark
        exactly as its newer state would; it is pushed when its earliest unpushed transaction
        comes within the slack, with any fraud report, when it was deferred before
        `deferred_before` (monotonic clock: the stream bounds how long a state waits, for low
        traffic), or with `everything` (when the stream stops). This halves the rows pushed."""
        due_before = watermark - TERMINAL_PUSH_SLACK
        for terminal_id, (since, deferred_at) in self._terminals_deferred.items():
            if everything or since <= due_before or deferred_at <= deferred_before:
                self._terminals_due.add(terminal_id)
        for terminal_id in self._terminals_due:
            self._terminals_deferred.pop(terminal_id, None)
        terminals = {
            t: changed.terminals[t] if t in changed.terminals else self.states.terminals[t].snapshot()
            for t in self._terminals_due
        }
        self._terminals_due.clear()
        return ChangedStates(changed.customers, terminals)

    def longest_deferral(self, now: float) -> float:
        """How long the longest-waiting deferred terminal state has waited (0 when none)."""
        for _since, deferred_at in self._terminals_deferred.values():
            return now - deferred_at
        return 0.0

    @property
    def has_deferred(self) -> bool:
        return bool(self._terminals_deferred or self._terminals_due)

    @property
    def changed_count(self) -> int:
        return len(self._changed_customers) + len(self._changed_terminals)

    # The changelog

    def changelog(self, changed: ChangedStates) -> list[Output]:
        return [
            *(
                Output(self.changelog_topic, f"{CUSTOMER_KEY}{c}".encode(), state.json.encode(), [])
                for c, state in changed.customers.items()
            ),
            *(
                Output(self.changelog_topic, f"{TERMINAL_KEY}{t}".encode(), state.json.encode(), [])
                for t, state in changed.terminals.items()
            ),
        ]

    def restore(self, records: dict[bytes, bytes]) -> None:
        """Replaces the state with the changelog's latest record per key."""
        self.states = FeatureStates()
        self._changed_customers.clear()
        self._changed_terminals.clear()
        self._terminals_deferred.clear()
        for key, value in records.items():
            name = key.decode()
            if name.startswith(CUSTOMER_KEY):
                self.states.customers[name[len(CUSTOMER_KEY) :]] = CustomerState.from_json(value.decode())
            elif name.startswith(TERMINAL_KEY):
                self.states.terminals[name[len(TERMINAL_KEY) :]] = TerminalState.from_json(value.decode())
        # The online store may lack changes that were logged but deferred before a crash.
        self._terminals_due = set(self.states.terminals)


def _message_timestamp(message: RawMessage) -> tuple[int, int]:
    timestamp = getattr(message, "timestamp", None)
    if timestamp is None:
        return (0, 0)
    kind, value = timestamp()
    return (int(kind), int(value))
