"""Coverage-guided fuzz targets (atheris) for the code that reads bytes from outside: each
takes one input and fails (raises) only where the contract is broken. The contract of a
validator or a decoder is to answer every input with a value or a refusal its caller handles,
never with another exception; the callers turn refusals into 4xx answers or dead letters.

Run by tests/fuzz/run.py, for a fixed time; seeds for each are in `SEEDS`."""

from __future__ import annotations

import json
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["fraudstream_common", "fraudstream_features", "fraudstream_monitor"]):
    from fraudstream_common.features.history import LabelEvent
    from fraudstream_common.kafka import CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF
    from fraudstream_common.schemas.v1.label_pb2 import Label
    from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
    from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
    from fraudstream_common.settings import DEVELOPMENT_RETRAIN_REQUEST_SECRET, TransactionRules
    from fraudstream_common.signing import sign_request, verify_request
    from fraudstream_common.validation import Rejection, TransactionValidator
    from fraudstream_features.records import Invalid, decode_label, decode_transaction
    from fraudstream_monitor.counting import Partial

from google.protobuf.message import DecodeError

from tests.unit.kafka_fakes import FakeMessage

NOW = 1_700_000_000.0
VALIDATOR = TransactionValidator(TransactionRules())
CONTENT_TYPES = [CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, "application/json; charset=utf-8", "text/plain", None]


def transaction_request(data: bytes) -> None:
    """Ingest's and inference's validator: a transaction or a rejection, for any body."""
    provider = atheris.FuzzedDataProvider(data)
    content_type = provider.PickValueInList(CONTENT_TYPES)
    result = VALIDATOR.parse(provider.ConsumeBytes(provider.remaining_bytes()), content_type, NOW)
    assert isinstance(result, Transaction | Rejection), result


def features_record(data: bytes) -> None:
    """The features stages' decoders of `transactions` and `labels` records."""
    message = FakeMessage(data, 0)
    assert isinstance(decode_transaction(message), tuple | Invalid)
    assert isinstance(decode_label(message), LabelEvent | Invalid)


def monitor_partial(data: bytes) -> None:
    """The monitor's partials: a Partial, or one of the errors its judge dead-letters. Half the
    inputs are raw bytes; half are partial-shaped JSON with values of any JSON type."""
    provider = atheris.FuzzedDataProvider(data)
    if provider.ConsumeBool():
        value = provider.ConsumeBytes(provider.remaining_bytes())
    else:
        document = {
            "kind": provider.PickValueInList(["hour", "window", "mark", "seen", "other"]),
            **{name: _json_value(provider) for name in ("partition", "version", "start", "body")},
        }
        value = json.dumps(document).encode()
    try:
        Partial.decode(value)
    except (ValueError, KeyError, TypeError):
        return


def _json_value(provider: atheris.FuzzedDataProvider) -> object:
    choice = provider.ConsumeIntInRange(0, 5)
    if choice == 0:
        return provider.ConsumeInt(8)
    if choice == 1:
        return provider.ConsumeFloat()  # infinities and NaN among them, as Python's JSON allows
    if choice == 2:
        return provider.ConsumeUnicodeNoSurrogates(8)
    if choice == 3:
        return {provider.ConsumeUnicodeNoSurrogates(4): provider.ConsumeInt(2)}
    if choice == 4:
        return [provider.ConsumeInt(2)]
    return None


def retrain_request(data: bytes) -> None:
    """The trainer's retrain requests: decoded and checked against the secret, or refused."""
    try:
        request = RetrainRequest.FromString(data)
    except DecodeError:
        return
    verify_request(request, DEVELOPMENT_RETRAIN_REQUEST_SECRET)


def _seed_transaction() -> Transaction:
    message = Transaction(transaction_id="t1", customer_id="c1", terminal_id="x1", amount=12.5)
    message.event_time.FromSeconds(int(NOW))
    return message


SEEDS: dict[str, list[bytes]] = {
    "transaction_request": [
        b'{"transaction_id":"t1","customer_id":"c1","terminal_id":"x1","amount":12.5,'
        b'"timestamp":"2023-11-14T22:13:20Z","currency":"EUR"}',
        _seed_transaction().SerializeToString(),
    ],
    "features_record": [
        _seed_transaction().SerializeToString(),
        Label(transaction_id="t1", terminal_id="x1", is_fraud=True).SerializeToString(),
    ],
    "monitor_partial": [
        Partial("hour", 0, {"n": 1}, "1", NOW).encode(),
        Partial("window", 3, {}, "2", NOW).encode(),
    ],
    "retrain_request": [
        sign_request(
            RetrainRequest(request_id="r1", reason="drift"), DEVELOPMENT_RETRAIN_REQUEST_SECRET
        ).SerializeToString(),
    ],
}

TARGETS: dict[str, Callable[[bytes], None]] = {
    "transaction_request": transaction_request,
    "features_record": features_record,
    "monitor_partial": monitor_partial,
    "retrain_request": retrain_request,
}
