"""Ingest configuration: environment variables prefixed FRAUDSTREAM_ (e.g. FRAUDSTREAM_HTTP_PORT)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from fraudstream_common.settings import ProcessingGuarantee, ServiceSettings


class IngestSettings(ServiceSettings):
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8081, description="HTTP port: /v1/transactions, /healthz, /readyz, /metrics.")
    grpc_port: int = Field(default=50052, description="gRPC port of fraudstream.v1.IngestService.")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis holding the dedupe keys.")
    instance_id: str = Field(
        default="ingest-0",
        description="Stable name of this replica; its Kafka transactional id. Give each replica its own.",
    )
    processing_guarantee: ProcessingGuarantee = Field(
        default=ProcessingGuarantee.EXACTLY_ONCE,
        description="exactly-once (Kafka transactions) or at-least-once (flush, then commit offsets).",
    )
    dedupe_ttl_seconds: int = Field(
        default=14 * 24 * 3600, description="How long a transaction id is remembered for dedupe."
    )
    batch_max_messages: int = Field(default=5000, description="Most raw messages processed in one batch.")
    batch_max_wait_seconds: float = Field(
        default=0.05, description="Longest wait for a batch to fill; bounds the added latency."
    )
    max_message_bytes: int = Field(default=4096, description="Larger raw messages are rejected as oversize.")
    max_http_body_bytes: int = Field(
        default=1_048_576, description="Larger HTTP/gRPC requests get 413/RESOURCE_EXHAUSTED."
    )
    max_batch_items: int = Field(default=1000, description="Most transactions in one HTTP or gRPC call.")
    max_amount: float = Field(default=1_000_000.0, description="Amounts above this are rejected.")
    min_event_time: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC),
        description="Earliest accepted event time (simulated history starts in 2018).",
    )
    max_clock_skew_seconds: float = Field(
        default=300.0,
        description="How far in the future (by this host's clock) an event time may be.",
    )
    default_currency: str = Field(default="EUR", description="Currency given to events that name none.")
    redis_retry_max_seconds: float = Field(
        default=5.0, description="Longest backoff between tries while Redis is unreachable."
    )
