from __future__ import annotations

import math
import time

import orjson
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.validation import ErrorCode, Rejection, TransactionValidator, parse_rfc3339
from fraudstream_ingest.settings import IngestSettings

NOW = time.time()
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


@pytest.fixture
def validator() -> TransactionValidator:
    return TransactionValidator(IngestSettings())


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "transaction_id": "tx1",
        "customer_id": "c1",
        "terminal_id": "t1",
        "amount": 12.34,
        "timestamp": "2018-04-01T12:00:00Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_json_gets_default_currency_and_ingest_time(validator: TransactionValidator) -> None:
    result = validator.parse(orjson.dumps(event()), JSON, NOW)
    assert isinstance(result, Transaction)
    assert result.transaction_id == "tx1"
    assert result.amount == pytest.approx(12.34)
    assert result.currency == "EUR"
    assert result.event_time.ToSeconds() == 1522584000
    assert result.ingest_time.seconds == int(NOW)


def test_missing_content_type_is_read_as_json(validator: TransactionValidator) -> None:
    assert isinstance(validator.parse(orjson.dumps(event()), None, NOW), Transaction)


def test_valid_protobuf(validator: TransactionValidator) -> None:
    message = Transaction(
        transaction_id="tx2",
        customer_id="c1",
        terminal_id="t1",
        amount=3.0,
        currency="USD",
        event_time=Timestamp(seconds=1522584000),
    )
    result = validator.parse(message.SerializeToString(), PROTOBUF, NOW)
    assert isinstance(result, Transaction)
    assert result.currency == "USD"


@pytest.mark.parametrize("written", ["usd", "Usd", "USD"])
def test_a_currency_in_any_case_is_kept_in_upper_case(validator: TransactionValidator, written: str) -> None:
    result = validator.parse(orjson.dumps(event(currency=written)), JSON, NOW)
    assert isinstance(result, Transaction)
    assert result.currency == "USD"


@pytest.mark.parametrize(
    ("payload", "content_type", "code"),
    [
        (b'{"transaction_id": "tx1", ', JSON, ErrorCode.INVALID_JSON),
        (b"[1, 2]", JSON, ErrorCode.INVALID_TYPE),
        (b"\xff\xfe\x00garbage", PROTOBUF, ErrorCode.INVALID_PROTOBUF),
        (orjson.dumps(event()), "text/csv", ErrorCode.UNSUPPORTED_CONTENT_TYPE),
        (orjson.dumps(event(customer_id=None)), JSON, ErrorCode.MISSING_FIELD),
        (orjson.dumps(event(amount=None)), JSON, ErrorCode.MISSING_FIELD),
        (orjson.dumps(event(timestamp=None)), JSON, ErrorCode.MISSING_FIELD),
        (orjson.dumps(event(customer_id=42)), JSON, ErrorCode.INVALID_TYPE),
        (orjson.dumps(event(amount="12.0")), JSON, ErrorCode.INVALID_TYPE),
        (orjson.dumps(event(amount=True)), JSON, ErrorCode.INVALID_TYPE),
        (orjson.dumps(event(amount=-0.01)), JSON, ErrorCode.INVALID_AMOUNT),
        (orjson.dumps(event(amount=1e12)), JSON, ErrorCode.INVALID_AMOUNT),
        (orjson.dumps(event(terminal_id="t 1")), JSON, ErrorCode.INVALID_ID),
        (orjson.dumps(event(transaction_id="x" * 65)), JSON, ErrorCode.INVALID_ID),
        (orjson.dumps(event(timestamp="2018-04-01 12:00")), JSON, ErrorCode.INVALID_TIMESTAMP),
        (orjson.dumps(event(timestamp="2018-04-01T12:00:00")), JSON, ErrorCode.INVALID_TIMESTAMP),
        (orjson.dumps(event(timestamp="2018-02-30T12:00:00Z")), JSON, ErrorCode.INVALID_TIMESTAMP),
        (orjson.dumps(event(timestamp="1970-01-01T00:00:00Z")), JSON, ErrorCode.INVALID_TIMESTAMP),
        (orjson.dumps(event(timestamp="9999-12-31T23:59:59Z")), JSON, ErrorCode.INVALID_TIMESTAMP),
        (orjson.dumps(event(currency="euro")), JSON, ErrorCode.INVALID_CURRENCY),
        (orjson.dumps(event(currency="e1r")), JSON, ErrorCode.INVALID_CURRENCY),
        (orjson.dumps(event(currency="ÉUR")), JSON, ErrorCode.INVALID_CURRENCY),
        (orjson.dumps(event(padding="x" * 5000)), JSON, ErrorCode.OVERSIZE),
        (None, JSON, ErrorCode.MISSING_FIELD),
    ],
)
def test_rejections(validator: TransactionValidator, payload: bytes | None, content_type: str, code: ErrorCode) -> None:
    result = validator.parse(payload, content_type, NOW)
    assert isinstance(result, Rejection), result
    assert result.code is code
    assert result.reason


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf])
def test_non_finite_protobuf_amounts(validator: TransactionValidator, amount: float) -> None:
    message = Transaction(
        transaction_id="tx3",
        customer_id="c1",
        terminal_id="t1",
        amount=amount,
        event_time=Timestamp(seconds=1522584000),
    )
    result = validator.parse(message.SerializeToString(), PROTOBUF, NOW)
    assert isinstance(result, Rejection)
    assert result.code is ErrorCode.INVALID_AMOUNT
    assert result.transaction_id == "tx3"


def test_protobuf_without_event_time(validator: TransactionValidator) -> None:
    message = Transaction(transaction_id="tx4", customer_id="c1", terminal_id="t1", amount=1.0)
    result = validator.parse(message.SerializeToString(), PROTOBUF, NOW)
    assert isinstance(result, Rejection)
    assert result.code is ErrorCode.MISSING_FIELD


def test_future_beyond_clock_skew_is_rejected_but_within_is_accepted(
    validator: TransactionValidator,
) -> None:
    near = Transaction(
        transaction_id="a",
        customer_id="c",
        terminal_id="t",
        amount=1,
        event_time=Timestamp(seconds=int(NOW) + 60),
    )
    far = Transaction(
        transaction_id="b",
        customer_id="c",
        terminal_id="t",
        amount=1,
        event_time=Timestamp(seconds=int(NOW) + 3600),
    )
    assert isinstance(validator.validate_message(near, NOW), Transaction)
    assert isinstance(validator.validate_message(far, NOW), Rejection)


def test_unknown_json_fields_are_ignored(validator: TransactionValidator) -> None:
    assert isinstance(validator.validate_json(event(merchant_category="5411"), NOW), Transaction)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2018-04-01T12:00:00Z", "2018-04-01T12:00:00+00:00"),
        ("2018-04-01t12:00:00.5z", "2018-04-01T12:00:00.500000+00:00"),
        ("2018-04-01T14:00:00+02:00", "2018-04-01T12:00:00+00:00"),
        ("2018-04-01T12:00:00.123456789-01:30", "2018-04-01T13:30:00.123456+00:00"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999+00:00"),
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999+00:00"),
        ("2017-01-01T05:29:60+05:30", "2016-12-31T23:59:59.999999+00:00"),
    ],
)
def test_rfc3339(text: str, iso: str) -> None:
    parsed = parse_rfc3339(text)
    assert parsed is not None
    assert parsed.isoformat() == iso


@pytest.mark.parametrize(
    "text",
    ["2018-04-01", "2018-04-01T12:00:00+25:00", "yesterday", "2018-13-01T00:00:00Z", "2018-04-01T12:00:60Z"],
)
def test_rfc3339_rejects(text: str) -> None:
    assert parse_rfc3339(text) is None
