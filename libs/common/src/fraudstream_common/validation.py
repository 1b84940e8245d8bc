"""What makes a raw transaction valid. One set of rules for every way in: a Kafka message on
`transactions.raw` (JSON or protobuf, told apart by its content-type header), an HTTP body,
a gRPC call.

Used by ingest and inference. Rules: the three ids are present and match ID_PATTERN; amount is a finite number in
[0, max_amount] (not a boolean, not a string); the timestamp is RFC 3339 with an offset and
lies between min_event_time and now + max_clock_skew; currency, when given, is three letters
(ISO 4217), kept in upper case whatever case it came in (some payment APIs send `usd`). A Kafka
message without a content-type header is read as JSON. Unknown JSON fields are ignored, as
protobuf ignores unknown fields: schemas grow additively.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from google.protobuf.message import DecodeError

from fraudstream_common.kafka import CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.settings import TransactionRules
from fraudstream_common.timestamps import seconds_of, timestamp_of

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
CURRENCY_PATTERN = re.compile(r"[A-Za-z]{3}")
RFC3339_PATTERN = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
ID_FIELDS = ("transaction_id", "customer_id", "terminal_id")
PROTOBUF_CONTENT_TYPES = frozenset({CONTENT_TYPE_PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"})


class ErrorCode(StrEnum):
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    OVERSIZE = "oversize"
    INVALID_JSON = "invalid_json"
    INVALID_PROTOBUF = "invalid_protobuf"
    MISSING_FIELD = "missing_field"
    INVALID_TYPE = "invalid_type"
    INVALID_ID = "invalid_id"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_CURRENCY = "invalid_currency"
    # A transaction id seen before with other content (fraudstream_common.idempotency).
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


@dataclass(frozen=True)
class Rejection:
    code: ErrorCode
    reason: str
    transaction_id: str = ""


class TransactionValidator:
    def __init__(self, settings: TransactionRules) -> None:
        self._max_bytes = settings.max_message_bytes
        self._max_amount = settings.max_amount
        self._min_time = settings.min_event_time.timestamp()
        self._max_skew = settings.max_clock_skew_seconds
        self._default_currency = settings.default_currency

    def parse(self, payload: bytes | None, content_type: str | None, now: float) -> Transaction | Rejection:
        """A raw Kafka message's value, validated, with currency and ingest time filled in."""
        if payload is None:
            return Rejection(ErrorCode.MISSING_FIELD, "message has no value")
        if len(payload) > self._max_bytes:
            return Rejection(
                ErrorCode.OVERSIZE,
                f"message is {len(payload)} bytes; the limit is {self._max_bytes}",
            )
        media_type = (content_type or CONTENT_TYPE_JSON).split(";", 1)[0].strip().lower()
        if media_type == CONTENT_TYPE_JSON:
            try:
                document = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                return Rejection(ErrorCode.INVALID_JSON, f"not valid JSON: {exc}")
            return self.validate_json(document, now)
        if media_type in PROTOBUF_CONTENT_TYPES:
            try:
                message = Transaction.FromString(payload)
            except DecodeError as exc:
                return Rejection(ErrorCode.INVALID_PROTOBUF, f"not a fraudstream.v1.Transaction: {exc}")
            return self.validate_message(message, now)
        return Rejection(
            ErrorCode.UNSUPPORTED_CONTENT_TYPE,
            f"content-type {media_type!r}; expected {CONTENT_TYPE_JSON} or {CONTENT_TYPE_PROTOBUF}",
        )

    def validate_json(self, document: Any, now: float) -> Transaction | Rejection:
        if not isinstance(document, dict):
            return Rejection(ErrorCode.INVALID_TYPE, f"expected a JSON object, got {type(document).__name__}")
        ids: list[str] = []
        for name in ID_FIELDS:
            value = document.get(name)
            if value is None:
                return Rejection(ErrorCode.MISSING_FIELD, f"{name} is required", _id_of(document))
            if not isinstance(value, str):
                return Rejection(ErrorCode.INVALID_TYPE, f"{name} must be a string", _id_of(document))
            ids.append(value)
        transaction_id = ids[0]
        amount = document.get("amount")
        if amount is None:
            return Rejection(ErrorCode.MISSING_FIELD, "amount is required", transaction_id)
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            return Rejection(ErrorCode.INVALID_TYPE, "amount must be a number", transaction_id)
        timestamp = document.get("timestamp")
        if timestamp is None:
            return Rejection(ErrorCode.MISSING_FIELD, "timestamp is required", transaction_id)
        if not isinstance(timestamp, str):
            return Rejection(ErrorCode.INVALID_TYPE, "timestamp must be an RFC 3339 string", transaction_id)
        event_time = parse_rfc3339(timestamp)
        if event_time is None:
            return Rejection(
                ErrorCode.INVALID_TIMESTAMP,
                f"timestamp {timestamp[:40]!r} is not RFC 3339 with an offset (e.g. 2018-04-01T12:00:00Z)",
                transaction_id,
            )
        currency = document.get("currency")
        if currency is not None and not isinstance(currency, str):
            return Rejection(ErrorCode.INVALID_TYPE, "currency must be a string", transaction_id)
        message = Transaction(
            transaction_id=ids[0],
            customer_id=ids[1],
            terminal_id=ids[2],
            amount=float(amount),
            currency=currency or "",
        )
        message.event_time.FromDatetime(event_time)
        return self.validate_message(message, now)

    def validate_message(self, message: Transaction, now: float) -> Transaction | Rejection:
        transaction_id = message.transaction_id
        for name in ID_FIELDS:
            value: str = getattr(message, name)
            if not value:
                return Rejection(ErrorCode.MISSING_FIELD, f"{name} is required", transaction_id)
            if not ID_PATTERN.fullmatch(value):
                return Rejection(
                    ErrorCode.INVALID_ID,
                    f"{name} {value[:70]!r} must be 1-64 characters of letters, digits, '_', '.', ':', '-'",
                    transaction_id if name != "transaction_id" else "",
                )
        amount = message.amount
        if not math.isfinite(amount):
            return Rejection(ErrorCode.INVALID_AMOUNT, f"amount {amount} is not a finite number", transaction_id)
        if amount < 0:
            return Rejection(ErrorCode.INVALID_AMOUNT, f"amount {amount} is negative", transaction_id)
        if amount > self._max_amount:
            return Rejection(
                ErrorCode.INVALID_AMOUNT,
                f"amount {amount} exceeds {self._max_amount}",
                transaction_id,
            )
        if not message.HasField("event_time"):
            return Rejection(ErrorCode.MISSING_FIELD, "event_time is required", transaction_id)
        seconds = seconds_of(message.event_time)
        if seconds < self._min_time or seconds > now + self._max_skew:
            return Rejection(
                ErrorCode.INVALID_TIMESTAMP,
                f"event time {_iso(seconds)} is outside [{_iso(self._min_time)}, now + {self._max_skew:g}s]",
                transaction_id,
            )
        if message.currency:
            if not CURRENCY_PATTERN.fullmatch(message.currency):
                return Rejection(
                    ErrorCode.INVALID_CURRENCY,
                    f"currency {message.currency[:10]!r} is not an ISO 4217 code",
                    transaction_id,
                )
            message.currency = message.currency.upper()
        else:
            message.currency = self._default_currency
        message.ingest_time.CopyFrom(timestamp_of(now))
        return message


def parse_rfc3339(text: str) -> datetime | None:
    match = RFC3339_PATTERN.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    # A leap second (23:59:60 UTC, which RFC 3339 allows) is held at the end of the second
    # before it, as protobuf's Timestamp and datetime have no 60th second: order is kept.
    leap = second == "60"
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            59 if leap else int(second),
            999_999 if leap else int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            return None
        value -= sign * timedelta(hours=hours, minutes=minutes)
    if leap and (value.hour, value.minute) != (23, 59):
        return None
    return value


def _id_of(document: dict[str, Any]) -> str:
    value = document.get("transaction_id")
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else ""


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f}s since the epoch"
