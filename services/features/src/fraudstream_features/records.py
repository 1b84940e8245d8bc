"""What the features stages read and write: decoding of transactions and labels (anything
undecodable becomes a dead letter with its reason), and the kinds of record on the
repartition topic `features.by-terminal` (header `fraudstream-kind`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import Output, RawMessage, dead_letter, missing_fields
from fraudstream_common.features.history import LabelEvent, TransactionEvent
from fraudstream_common.kafka import HeaderList, header_value
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.timestamps import seconds_of

SERVICE = "features"
KIND_HEADER = "fraudstream-kind"
KIND_TRANSACTION = "transaction"
KIND_LABEL = "label"
KIND_WATERMARK = "watermark"


@dataclass(frozen=True)
class Invalid:
    message: RawMessage
    code: str
    reason: str


DecodedTransaction = tuple[TransactionEvent, Transaction, float]  # with the input's produce time


def kind_headers(kind: str) -> HeaderList:
    return [(KIND_HEADER, kind.encode())]


def record_kind(message: RawMessage) -> str | None:
    return header_value(message.headers(), KIND_HEADER)


def invalid_output(deadletter_topic: str, invalid: Invalid) -> Output:
    return dead_letter(deadletter_topic, SERVICE, invalid.message, code=invalid.code, reason=invalid.reason)


def decode_transaction(message: RawMessage) -> DecodedTransaction | Invalid:
    try:
        tx = Transaction.FromString(message.value() or b"")
    except DecodeError as exc:
        return Invalid(message, "invalid_protobuf", f"not a protobuf message: {exc}")
    if missing := missing_fields(tx, ("transaction_id", "customer_id", "terminal_id", "event_time")):
        return Invalid(message, "missing_field", f"missing {', '.join(missing)}")
    event = TransactionEvent(tx.transaction_id, tx.customer_id, tx.terminal_id, seconds_of(tx.event_time), tx.amount)
    return event, tx, _produced_at(message)


def decode_label(message: RawMessage) -> LabelEvent | Invalid:
    try:
        label = Label.FromString(message.value() or b"")
    except DecodeError as exc:
        return Invalid(message, "invalid_protobuf", f"not a protobuf message: {exc}")
    if missing := missing_fields(label, ("transaction_id", "terminal_id", "transaction_time", "label_time")):
        return Invalid(message, "missing_field", f"missing {', '.join(missing)}")
    return LabelEvent(
        label.transaction_id,
        label.terminal_id,
        seconds_of(label.transaction_time),
        label.is_fraud,
        seconds_of(label.label_time),
    )


def _produced_at(message: RawMessage) -> float:
    """The input message's timestamp (for freshness), or now when it has none."""
    timestamp = getattr(message, "timestamp", None)
    if timestamp is not None:
        kind, value = timestamp()
        if kind and value > 0:
            return float(value) / 1000
    return time.time()
