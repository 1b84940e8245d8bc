"""From transactions.raw to transactions and deadletter against the real broker and Redis:
exactly the valid unique events out, exactly the bad ones dead-lettered with their reasons,
also across a SIGKILL of the service mid-stream."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic
from tests.integration.ingest.raw_events import mixed_stream, produce_raw
from tests.platform import ServiceProcess, Topics, drain, producer

pytestmark = pytest.mark.integration


def processed_so_far(service: ServiceProcess) -> float:
    return service.metric("fraudstream_ingest_messages_total")


def test_twenty_thousand_raw_events_with_a_kill_mid_stream(topics: Topics, ingest: ServiceProcess) -> None:
    stream = mixed_stream(total=20_000, malformed_share=0.05, duplicate_share=0.02)
    valid_ids = {e.transaction_id for e in stream if e.transaction_id is not None}
    malformed = {e.value: e for e in stream if e.transaction_id is None}
    assert (len(valid_ids), len(malformed)) == (18_600, 1_000)

    produce_raw(producer(), topics, stream, timeout=60)

    # Small batches so the kill lands while most of the stream is still unprocessed.
    ingest.extra_env["FRAUDSTREAM_BATCH_MAX_MESSAGES"] = "100"
    ingest.start()
    deadline = time.monotonic() + 60
    while processed_so_far(ingest) < 2_000:
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.05)
    before_kill = processed_so_far(ingest)
    ingest.kill()
    assert before_kill < len(stream), "the kill came after the whole stream was processed"
    ingest.extra_env["FRAUDSTREAM_BATCH_MAX_MESSAGES"] = "2000"
    ingest.start()

    outputs = drain(topics(Topic.TRANSACTIONS), expected=len(valid_ids), timeout=180)
    transactions = [Transaction.FromString(m.value) for m in outputs]
    ids = [t.transaction_id for t in transactions]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} transactions came out twice"
    assert set(ids) == valid_ids
    assert all(m.key == t.customer_id.encode() for m, t in zip(outputs, transactions, strict=True))
    assert all(t.HasField("ingest_time") and t.currency == "EUR" for t in transactions)

    letters = [DeadLetter.FromString(m.value) for m in drain(topics(Topic.DEADLETTER), expected=len(malformed))]
    assert len(letters) == len(malformed), "a bad event was dead-lettered twice or one was lost"
    assert {letter.original_value for letter in letters} == set(malformed)
    for letter in letters:
        event = malformed[letter.original_value]
        assert letter.error_code in event.expected_codes, (letter.error_code, letter.reason)
        assert letter.reason
        assert letter.original_key == event.key
        assert letter.source_topic == topics(Topic.TRANSACTIONS_RAW)
        assert letter.service == "ingest"
    codes = Counter(letter.error_code for letter in letters)
    assert len(codes) >= 9, codes
    assert ingest.starts == 2
