"""Raw events for ingest tests: valid ones from the simulator, duplicates, and malformed ones
of every kind the validator knows, each with the error codes it may be rejected with."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import Producer
from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from fraudstream_simulator.sinks import encode_transaction_json, encode_transaction_protobuf, epoch_seconds
from tests.platform import Topics

JSON = b"application/json"
PROTOBUF = b"application/x-protobuf"


@dataclass(frozen=True)
class RawEvent:
    key: bytes
    value: bytes
    content_type: bytes | None
    transaction_id: str | None = None  # set for valid events
    expected_codes: frozenset[str] = frozenset()  # set for malformed events

    @property
    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return [] if self.content_type is None else [("content-type", self.content_type)]


def produce_raw(producer: Producer, topics: Topics, events: list[RawEvent], timeout: float) -> None:
    """Writes the events to `transactions.raw` and waits until every one is acknowledged."""
    for event in events:
        producer.produce(topics(Topic.TRANSACTIONS_RAW), value=event.value, key=event.key, headers=event.headers)
    assert producer.flush(timeout) == 0


def valid_events(count: int) -> list[RawEvent]:
    tx = simulate(SimulationConfig(n_customers=600, n_terminals=1200, nb_days=30)).transactions.iloc[:count]
    if len(tx) < count:
        raise ValueError(f"the simulation gave {len(tx)} transactions, fewer than {count}")
    seconds: list[int] = epoch_seconds(tx["event_time"]).tolist()
    ids: list[str] = tx["transaction_id"].tolist()
    customers: list[str] = tx["customer_id"].tolist()
    terminals: list[str] = tx["terminal_id"].tolist()
    amounts: list[float] = tx["amount"].tolist()
    events = []
    for i, transaction_id in enumerate(ids):
        args = (transaction_id, customers[i], terminals[i], amounts[i], "EUR", seconds[i])
        key = customers[i].encode()
        if i % 2:
            events.append(RawEvent(key, encode_transaction_json(*args), JSON, transaction_id))
        else:
            events.append(RawEvent(key, encode_transaction_protobuf(*args), PROTOBUF, transaction_id))
    return events


def _json(n: int, **fields: object) -> bytes:
    document: dict[str, object] = {
        "transaction_id": f"bad{n}",
        "customer_id": "c1",
        "terminal_id": "t1",
        "amount": 10.0,
        "timestamp": "2018-05-01T10:00:00Z",
    }
    document.update(fields)
    return orjson.dumps({k: v for k, v in document.items() if v is not None})


def _protobuf(n: int, amount: float, seconds: int | None = 1525168800) -> bytes:
    message = Transaction(transaction_id=f"bad{n}", customer_id="c1", terminal_id="t1", amount=amount)
    if seconds is not None:
        message.event_time.CopyFrom(Timestamp(seconds=seconds))
    return message.SerializeToString()


def malformed_events(count: int, rng: random.Random) -> list[RawEvent]:
    kinds: list[Callable[[int], tuple[bytes, bytes | None, set[str]]]] = [
        lambda n: (_json(n)[:-7], JSON, {"invalid_json"}),
        lambda n: (
            bytes(rng.getrandbits(8) for _ in range(40)) + f"bad{n}".encode(),
            PROTOBUF,
            {"invalid_protobuf", "missing_field", "invalid_id", "invalid_amount", "invalid_timestamp"},
        ),
        lambda n: (_json(n, customer_id=None), JSON, {"missing_field"}),
        lambda n: (_json(n, timestamp=None), None, {"missing_field"}),
        lambda n: (_json(n, amount=-1.5 - n), JSON, {"invalid_amount"}),
        lambda n: (_protobuf(n, math.nan), PROTOBUF, {"invalid_amount"}),
        lambda n: (_json(n, amount=f"{n}.0"), JSON, {"invalid_type"}),
        lambda n: (_json(n, timestamp="1970-01-01T00:00:01Z"), JSON, {"invalid_timestamp"}),
        lambda n: (_json(n, timestamp="2999-01-01T00:00:00Z"), JSON, {"invalid_timestamp"}),
        lambda n: (_json(n, memo="x" * 5000), JSON, {"oversize"}),
        lambda n: (_json(n, terminal_id="t 1"), JSON, {"invalid_id"}),
        lambda n: (_json(n), b"text/csv", {"unsupported_content_type"}),
    ]
    events = []
    for n in range(count):
        value, content_type, codes = kinds[n % len(kinds)](n)
        events.append(RawEvent(f"bad{n}".encode(), value, content_type, expected_codes=frozenset(codes)))
    return events


def mixed_stream(total: int, malformed_share: float, duplicate_share: float, seed: int = 11) -> list[RawEvent]:
    """`total` raw events: malformed ones, exact duplicates (a producer's retry) of valid ones,
    and the rest unique valid events, shuffled (a duplicate may precede its original)."""
    rng = random.Random(seed)
    n_malformed = round(total * malformed_share)
    n_duplicates = round(total * duplicate_share)
    valid = valid_events(total - n_malformed - n_duplicates)
    duplicates = rng.sample(valid, n_duplicates)
    stream = valid + duplicates + malformed_events(n_malformed, rng)
    rng.shuffle(stream)
    return stream
