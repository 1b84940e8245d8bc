"""The ingest core: what happens to raw transactions, whichever way they came in.

Transports are thin: the Kafka stream loop (stream.py) hands batches of raw messages to
`transform`; HTTP (http.py) and gRPC (grpc_server.py) hand parsed requests to `validate`
and `submit`. Accepted calls are written to `transactions.raw`, so that dedupe and ordering
happen in one place, the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fraudstream_common.deadletter import PROTOBUF_HEADERS, Output, RawMessage, dead_letter
from fraudstream_common.idempotency import content_digest
from fraudstream_common.kafka import (
    CONTENT_TYPE_HEADER,
    AsyncProducer,
    header_value,
)
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic, topic_name
from fraudstream_common.validation import ErrorCode, Rejection, TransactionValidator
from fraudstream_ingest import metrics
from fraudstream_ingest.dedupe import Deduplicator, Sighting
from fraudstream_ingest.settings import IngestSettings

SERVICE = "ingest"


@dataclass
class BatchResult:
    outputs: list[Output] = field(default_factory=list)
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0


class IngestCore:
    def __init__(
        self,
        settings: IngestSettings,
        deduplicator: Deduplicator,
        raw_producer: AsyncProducer | None = None,
    ) -> None:
        self.settings = settings
        self.validator = TransactionValidator(settings)
        self._deduplicator = deduplicator
        self._raw_producer = raw_producer
        self.raw_topic = topic_name(Topic.TRANSACTIONS_RAW, settings.topic_prefix)
        self.transactions_topic = topic_name(Topic.TRANSACTIONS, settings.topic_prefix)
        self.deadletter_topic = topic_name(Topic.DEADLETTER, settings.topic_prefix)

    def transform(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Validate, dedupe and route one batch of raw messages.

        Valid first sightings go to `transactions` keyed by customer id; invalid messages go
        to `deadletter` with the reason and the original bytes, as do duplicates whose content
        differs from the first sighting's; other duplicates are dropped and counted. Raises
        redis.RedisError when dedupe cannot be decided: the caller must replay the batch later,
        not skip it.
        """
        now = time.time()
        result = BatchResult()
        valid: list[tuple[RawMessage, Transaction]] = []
        for message in messages:
            parsed = self.validator.parse(message.value(), header_value(message.headers(), CONTENT_TYPE_HEADER), now)
            if isinstance(parsed, Rejection):
                self._reject(result, message, parsed, now)
            else:
                valid.append((message, parsed))
        claims = self._deduplicator.claim(
            [
                Sighting(tx.transaction_id, f"{m.topic()}:{m.partition()}:{m.offset()}", content_digest(tx))
                for m, tx in valid
            ]
        )
        for (message, transaction), claim in zip(valid, claims, strict=True):
            if claim.conflict:
                conflict = Rejection(
                    ErrorCode.CONFLICTING_DUPLICATE,
                    f"transaction id {transaction.transaction_id} was first seen at {claim.first_position} with "
                    "another customer, terminal, amount, currency or event time",
                    transaction.transaction_id,
                )
                self._reject(result, message, conflict, now)
                continue
            if not claim.first:
                result.duplicates += 1
                continue
            result.outputs.append(
                Output(
                    self.transactions_topic,
                    transaction.customer_id.encode(),
                    transaction.SerializeToString(),
                    PROTOBUF_HEADERS,
                )
            )
            result.valid += 1
        return result

    def _reject(self, result: BatchResult, message: RawMessage, rejection: Rejection, now: float) -> None:
        result.outputs.append(
            dead_letter(
                self.deadletter_topic,
                SERVICE,
                message,
                code=rejection.code.value,
                reason=rejection.reason,
                transaction_id=rejection.transaction_id,
                now=now,
            )
        )
        result.rejected += 1
        metrics.REJECTIONS.labels(rejection.code.value).inc()

    def validate(
        self, documents: Sequence[Any] | Sequence[Transaction]
    ) -> tuple[list[Transaction], list[tuple[int, Rejection]]]:
        """Validate a call's transactions (JSON objects or protobuf messages)."""
        now = time.time()
        accepted: list[Transaction] = []
        rejected: list[tuple[int, Rejection]] = []
        for index, document in enumerate(documents):
            if isinstance(document, Transaction):
                outcome = self.validator.validate_message(document, now)
            else:
                outcome = self.validator.validate_json(document, now)
            if isinstance(outcome, Rejection):
                rejected.append((index, outcome))
            else:
                accepted.append(outcome)
        return accepted, rejected

    async def submit(self, transactions: Sequence[Transaction]) -> None:
        """Write accepted transactions to `transactions.raw`; returns once Kafka acknowledged all."""
        if self._raw_producer is None:
            raise RuntimeError("this core was built without a producer for transactions.raw")
        producer = self._raw_producer
        await asyncio.gather(
            *(
                producer.produce(
                    self.raw_topic,
                    tx.SerializeToString(),
                    tx.customer_id.encode(),
                    PROTOBUF_HEADERS,
                )
                for tx in transactions
            )
        )
