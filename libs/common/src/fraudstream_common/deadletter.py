"""Messages every stream loop shares: what it consumed, what it will produce, and the
dead-letter record of an input it could not use (with its reason)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Producer
from google.protobuf.message import Message

from fraudstream_common.kafka import (
    CONTENT_TYPE_HEADER,
    CONTENT_TYPE_PROTOBUF,
    DeliveryCallback,
    HeaderList,
    Headers,
    header_items,
    produce_waiting,
)
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.timestamps import timestamp_of

PROTOBUF_HEADERS: HeaderList = [(CONTENT_TYPE_HEADER, CONTENT_TYPE_PROTOBUF.encode())]


def missing_fields(record: Message, required: Sequence[str]) -> list[str]:
    """The required fields a decoded record lacks: protobuf decodes empty bytes, and often a
    record of another type, into a record with every field unset."""
    return [
        name
        for name in required
        if not (
            record.HasField(name)
            if record.DESCRIPTOR.fields_by_name[name].message_type is not None
            else getattr(record, name)
        )
    ]


class RawMessage(Protocol):
    """What a loop needs of a consumed Kafka message (confluent_kafka.Message has these)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | None: ...


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: HeaderList
    partition: int | None = None  # None: the producer's partitioner chooses by key


def produce_outputs(producer: Producer, outputs: Iterable[Output], on_delivery: DeliveryCallback | None = None) -> None:
    """Produces each output with its key and headers, waiting on a full local queue."""
    for output in outputs:
        produce_waiting(producer, output.topic, output.value, output.key, output.headers, on_delivery, output.partition)


def dead_letter(
    deadletter_topic: str,
    service: str,
    message: RawMessage,
    *,
    code: str,
    reason: str,
    transaction_id: str = "",
    now: float | None = None,
) -> Output:
    """The dead-letter record of `message`: the original bytes and headers, where it was, why."""
    failed_at = time.time() if now is None else now
    letter = DeadLetter(
        service=service,
        source_topic=message.topic() or "",
        source_partition=_or(message.partition(), -1),
        source_offset=_or(message.offset(), -1),
        original_key=message.key() or b"",
        original_value=message.value() or b"",
        original_headers={k: _text(v) for k, v in header_items(message.headers())},
        error_code=code,
        reason=reason,
        failed_at=timestamp_of(failed_at),
        transaction_id=transaction_id,
    )
    return Output(deadletter_topic, message.key(), letter.SerializeToString(), PROTOBUF_HEADERS)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")
