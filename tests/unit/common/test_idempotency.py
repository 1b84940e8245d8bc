"""A retry has the digest of the first sighting however its content was written; any change of
what the payment is changes it."""

from __future__ import annotations

import time

import pytest

from fraudstream_common.idempotency import content_digest
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.validation import TransactionValidator
from fraudstream_ingest.settings import IngestSettings
from tests.unit.common.test_validation import event


def digest(**overrides: object) -> str:
    validated = TransactionValidator(IngestSettings()).validate_json(event(**overrides), time.time())
    assert isinstance(validated, Transaction)
    return content_digest(validated)


def test_the_same_payment_written_otherwise_has_the_same_digest() -> None:
    first = digest()
    assert digest(timestamp="2018-04-01T14:00:00+02:00") == first
    assert digest(currency="EUR") == first  # the default, filled in
    assert digest(currency="eur") == first
    assert digest(amount=12.340) == first
    assert digest(unknown_field="ignored") == first
    assert digest(amount=0) == digest(amount=-0.0)


@pytest.mark.parametrize(
    "change",
    [
        {"customer_id": "c2"},
        {"terminal_id": "t2"},
        {"amount": 12.35},
        {"currency": "USD"},
        {"timestamp": "2018-04-01T12:00:00.000001Z"},
    ],
)
def test_another_payment_has_another_digest(change: dict[str, object]) -> None:
    assert digest(**change) != digest()


def test_when_ingest_accepted_it_is_not_content() -> None:
    validator = TransactionValidator(IngestSettings())
    early, late = (validator.validate_json(event(), now) for now in (time.time(), time.time() + 60))
    assert isinstance(early, Transaction)
    assert isinstance(late, Transaction)
    assert early.ingest_time != late.ingest_time
    assert content_digest(early) == content_digest(late)
