"""The features core without Kafka: decoding, dead letters, the enriched message, the changelog."""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_common.features.definitions import DAY, FEATURE_NAMES
from fraudstream_common.features.history import FeatureStates, LabelEvent, TransactionEvent
from fraudstream_common.kafka import Headers
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_features.core import FeaturesCore, Invalid, LabelInput, TransactionInput
from fraudstream_features.merge import RANK_INVALID, RANK_LABEL, RANK_TRANSACTION, Timing


@dataclass
class Message:
    topic_name: str
    payload: bytes
    key_bytes: bytes | None = None

    def topic(self) -> str | None:
        return self.topic_name

    def partition(self) -> int | None:
        return 0

    def offset(self) -> int | None:
        return 7

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.payload

    def headers(self) -> Headers | None:
        return None


def transaction(tx_id: str, customer: str, terminal: str, seconds: int, amount: float) -> Message:
    tx = Transaction(
        transaction_id=tx_id,
        customer_id=customer,
        terminal_id=terminal,
        amount=amount,
        event_time=Timestamp(seconds=seconds),
    )
    return Message("p.transactions", tx.SerializeToString(), customer.encode())


def test_transactions_enriched_with_the_replay_vector_and_labels_applied() -> None:
    core = FeaturesCore("p.")
    reference = FeatureStates()
    start = 1_530_000_000
    inputs = [
        transaction("tx1", "c1", "t1", start, 10.0),
        Message(
            "p.labels",
            Label(
                transaction_id="tx1",
                terminal_id="t1",
                transaction_time=Timestamp(seconds=start),
                is_fraud=True,
                label_time=Timestamp(seconds=start + DAY),
            ).SerializeToString(),
        ),
        transaction("tx2", "c1", "t1", start + 8 * DAY, 30.0),
    ]
    decoded = [core.decode(m) for m in inputs]
    assert [d.rank for d in decoded] == [RANK_TRANSACTION, RANK_LABEL, RANK_TRANSACTION]
    outputs = [core.apply(d.decoded) for d in decoded]
    assert outputs[1] is None
    last = outputs[2]
    assert last is not None
    assert last.topic == "p.transactions.enriched"
    assert last.key == b"c1"
    enriched = EnrichedTransaction.FromString(last.value)
    assert enriched.transaction.transaction_id == "tx2"
    reference.apply_transaction(TransactionEvent("tx1", "c1", "t1", start, 10.0))
    reference.apply_label(LabelEvent("tx1", "t1", start, True, start + DAY))
    expected = reference.apply_transaction(TransactionEvent("tx2", "c1", "t1", start + 8 * DAY, 30.0))
    assert dict(zip(enriched.feature_names, enriched.feature_values, strict=True)) == expected
    assert list(enriched.feature_names) == list(FEATURE_NAMES)
    assert expected["terminal_risk_30d"] == 1.0
    assert enriched.customer_state_time.seconds == start + DAY * 0  # c1's state before tx2
    assert enriched.terminal_state_time.seconds == start + DAY  # t1 had seen the fraud report


def test_changed_states_round_trip_through_the_changelog() -> None:
    core = FeaturesCore()
    for n, message in enumerate(
        [transaction("a", "c1", "t1", 1_600_000_000, 5.0), transaction("b", "c2", "t1", 1_600_000_100, 7.0)]
    ):
        sortable = core.decode(message)
        assert isinstance(sortable.decoded, TransactionInput)
        core.apply(sortable.decoded, timing=Timing.LATE if n == 1 else Timing.IN_ORDER)
    assert core.changed_count == 3
    changed = core.take_changed()
    assert core.changed_count == 0
    records = {o.key: o.value for o in core.changelog(changed) if o.key is not None}
    assert set(records) == {b"c:c1", b"c:c2", b"t:t1"}
    restored = FeaturesCore()
    restored.restore(records)
    assert restored.states == core.states


def test_bad_input_goes_to_the_dead_letter_topic_with_its_reason() -> None:
    core = FeaturesCore()
    garbage = core.decode(Message("transactions", b"\xff\xff\xff", b"k"))
    assert garbage.rank == RANK_INVALID
    assert isinstance(garbage.decoded, Invalid)
    missing = core.decode(Message("transactions", Transaction(transaction_id="x").SerializeToString()))
    assert isinstance(missing.decoded, Invalid)
    assert missing.decoded.reason == "missing customer_id, terminal_id"
    unlabelled = core.decode(Message("labels", Label(transaction_id="x", terminal_id="t").SerializeToString()))
    assert isinstance(unlabelled.decoded, Invalid)
    output = core.apply(missing.decoded)
    assert output is not None
    assert output.topic == "deadletter"
    letter = DeadLetter.FromString(output.value)
    assert (letter.service, letter.error_code, letter.source_offset) == ("features", "missing_field", 7)
    assert core.states == FeatureStates()


def test_genuine_labels_change_no_state() -> None:
    core = FeaturesCore()
    label = Label(
        transaction_id="x",
        terminal_id="t",
        transaction_time=Timestamp(seconds=1_600_000_000),
        is_fraud=False,
        label_time=Timestamp(seconds=1_600_600_000),
    )
    decoded = core.decode(Message("labels", label.SerializeToString())).decoded
    assert isinstance(decoded, LabelInput)
    core.apply(decoded)
    assert core.changed_count == 0


def test_terminals_changed_only_by_recent_transactions_are_pushed_online_later() -> None:
    core = FeaturesCore()
    start = 1_600_000_000
    for message in (transaction("a", "c1", "t1", start, 5.0), transaction("b", "c2", "t2", start + 3 * DAY, 7.0)):
        core.apply(core.decode(message).decoded)
    changed = core.take_changed()
    assert set(changed.terminals) == {"t1", "t2"}  # the changelog has every change
    online = core.take_online(changed, watermark=start + 3 * DAY)
    assert set(online.customers) == {"c1", "c2"}
    assert online.terminals == {}  # neither can change a request's features yet
    later = core.take_online(core.take_changed(), watermark=start + 6 * DAY + 1)
    assert set(later.terminals) == {"t1"}  # t1's transaction is now within a day of mattering
    fraud = Label(
        transaction_id="b",
        terminal_id="t2",
        transaction_time=Timestamp(seconds=start + 3 * DAY),
        is_fraud=True,
        label_time=Timestamp(seconds=start + 4 * DAY),
    )
    core.apply(core.decode(Message("labels", fraud.SerializeToString())).decoded)
    assert set(core.take_online(core.take_changed(), watermark=start + 4 * DAY).terminals) == {"t2"}
    assert not core.has_deferred
    core.apply(core.decode(transaction("c", "c3", "t3", start + 5 * DAY, 1.0)).decoded)
    assert set(core.take_online(core.take_changed(), watermark=0, everything=True).terminals) == {"t3"}
    core.apply(core.decode(transaction("d", "c4", "t4", start + 5 * DAY, 1.0)).decoded)
    waited_since = time.monotonic()
    assert set(core.take_online(core.take_changed(), watermark=0, deferred_before=waited_since).terminals) == {"t4"}
    assert core.longest_deferral(time.monotonic()) == 0.0
