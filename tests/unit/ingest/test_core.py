from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
import redis

from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_ingest.core import IngestCore
from fraudstream_ingest.dedupe import FIRST, RETRY, Claim, Sighting
from fraudstream_ingest.settings import IngestSettings
from tests.unit.kafka_fakes import FakeMessage


class InMemoryDeduplicator:
    """Same contract as the Redis deduplicator: first position wins, a replay of it passes, a
    duplicate with other content is a conflict."""

    def __init__(self) -> None:
        self.first_seen: dict[str, Sighting] = {}
        self.down = False

    def claim(self, sightings: Sequence[Sighting]) -> list[Claim]:
        if self.down:
            raise redis.ConnectionError("down")
        claims = []
        for sighting in sightings:
            first = self.first_seen.setdefault(sighting.transaction_id, sighting)
            if first.position == sighting.position:
                claims.append(FIRST)
            elif first.digest == sighting.digest:
                claims.append(RETRY)
            else:
                claims.append(Claim(first=False, first_position=first.position))
        return claims


def raw(transaction_id: str, amount: float = 10.0) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": transaction_id,
            "customer_id": "c7",
            "terminal_id": "t1",
            "amount": amount,
            "timestamp": "2018-04-01T00:00:00Z",
        }
    )


@pytest.fixture
def dedupe() -> InMemoryDeduplicator:
    return InMemoryDeduplicator()


@pytest.fixture
def core(dedupe: InMemoryDeduplicator) -> IngestCore:
    return IngestCore(IngestSettings(topic_prefix="p."), dedupe)  # type: ignore[arg-type]


def test_routes_valid_duplicates_and_rejects(core: IngestCore) -> None:
    messages = [
        FakeMessage(raw("a"), 0),
        FakeMessage(raw("b", -5), 1),
        FakeMessage(raw("a"), 2),
        FakeMessage(raw("c"), 3),
    ]
    result = core.transform(messages)
    assert (result.valid, result.duplicates, result.rejected) == (2, 1, 1)
    by_topic = {o.topic for o in result.outputs}
    assert by_topic == {"p.transactions", "p.deadletter"}
    valid = [Transaction.FromString(o.value) for o in result.outputs if o.topic == "p.transactions"]
    assert [t.transaction_id for t in valid] == ["a", "c"]
    assert all(o.key == b"c7" for o in result.outputs if o.topic == "p.transactions")


def test_dead_letter_carries_reason_and_original_bytes(core: IngestCore) -> None:
    payload = raw("b", -5)
    message = FakeMessage(payload, 41, key_=b"orig", headers_=[("content-type", b"application/json"), ("x", b"y")])
    [output] = core.transform([message]).outputs
    letter = DeadLetter.FromString(output.value)
    assert output.key == b"orig"
    assert letter.original_value == payload
    assert letter.original_key == b"orig"
    assert letter.source_offset == 41
    assert letter.error_code == "invalid_amount"
    assert "negative" in letter.reason
    assert letter.transaction_id == "b"
    assert dict(letter.original_headers) == {"content-type": "application/json", "x": "y"}


def test_replayed_batch_is_not_taken_for_duplicates(core: IngestCore) -> None:
    batch = [FakeMessage(raw("a"), 0), FakeMessage(raw("b"), 1)]
    first = core.transform(batch)
    replay = core.transform(batch)
    assert first.valid == replay.valid == 2
    assert replay.duplicates == 0


def test_a_duplicate_with_other_content_is_dead_lettered(core: IngestCore) -> None:
    result = core.transform([FakeMessage(raw("a"), 0), FakeMessage(raw("a", 99.0), 1), FakeMessage(raw("a"), 2)])
    assert (result.valid, result.duplicates, result.rejected) == (1, 1, 1)
    [letter] = [DeadLetter.FromString(o.value) for o in result.outputs if o.topic == "p.deadletter"]
    assert letter.error_code == "conflicting_duplicate"
    assert letter.source_offset == 1
    assert letter.original_value == raw("a", 99.0)
    assert ":0 " in letter.reason  # where it was first seen


def test_redis_failure_propagates_so_the_batch_is_replayed(core: IngestCore, dedupe: InMemoryDeduplicator) -> None:
    dedupe.down = True
    with pytest.raises(redis.RedisError):
        core.transform([FakeMessage(raw("a"), 0)])


def test_validate_for_calls(core: IngestCore) -> None:
    accepted, rejected = core.validate([orjson.loads(raw("a")), {"transaction_id": "z"}])
    assert [t.transaction_id for t in accepted] == ["a"]
    assert [(i, r.code.value) for i, r in rejected] == [(1, "missing_field")]
