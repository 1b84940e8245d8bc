"""The transaction id is the platform's idempotency key: a message whose id was seen before is a
retry when its content is the same, and a conflict when it is not (a client that reused an id,
or a producer that sent two payments under one). Ingest dead-letters a conflict; inference
refuses it on HTTP and gRPC, and on the stream scores it afresh. Content here is what a payment
is: customer, terminal, amount, currency and event time, as validated (currency filled in with
the default, the time normalised to UTC); not when ingest accepted it."""

from __future__ import annotations

import hashlib

from fraudstream_common.schemas.v1.transaction_pb2 import Transaction


def content_digest(transaction: Transaction) -> str:
    """16 hex digits that change when any of the transaction's content does."""
    event_time = transaction.event_time
    content = "\x1f".join(
        (
            transaction.customer_id,
            transaction.terminal_id,
            repr(transaction.amount + 0.0),  # -0.0 is 0.0
            transaction.currency,
            f"{event_time.seconds}.{event_time.nanos:09d}",
        )
    )
    return hashlib.blake2b(content.encode(), digest_size=8).hexdigest()
