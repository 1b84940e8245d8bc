"""Ingest configuration: environment variables prefixed FRAUDSTREAM_ (e.g. FRAUDSTREAM_HTTP_PORT)."""

from __future__ import annotations

from pydantic import Field

from fraudstream_common.settings import (
    ApiKeyRules,
    GrpcServing,
    ServiceSettings,
    StreamDelivery,
    TransactionRules,
)


class IngestSettings(ServiceSettings, TransactionRules, ApiKeyRules, GrpcServing, StreamDelivery):
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8081, description="HTTP port: /v1/transactions, /healthz, /readyz, /metrics.")
    grpc_port: int = Field(default=50052, description="gRPC port of fraudstream.v1.IngestService.")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis holding the dedupe keys and the API keys."
    )
    instance_id: str = Field(
        default="ingest-0",
        description="Stable name of this replica; its Kafka transactional id. Give each replica its own.",
    )
    dedupe_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        description=(
            "How long a transaction id is remembered for dedupe: a day, as payment APIs keep idempotency keys. Redis "
            "holds a key of about 190 bytes per id for this long (17 GB a day at 1,000 transactions a second); with "
            "`maxmemory-policy volatile-lru` it drops the oldest first when full, and the window is then shorter."
        ),
    )
    batch_max_messages: int = Field(default=5000, description="Most raw messages processed in one batch.")
    batch_max_wait_seconds: float = Field(
        default=0.02, description="Longest wait for a batch to fill; bounds the added latency."
    )
    max_http_body_bytes: int = Field(
        default=1_048_576, description="Larger HTTP/gRPC requests get 413/RESOURCE_EXHAUSTED."
    )
    max_batch_items: int = Field(default=1000, description="Most transactions in one HTTP or gRPC call.")
    redis_retry_max_seconds: float = Field(
        default=5.0, description="Longest backoff between tries while Redis is unreachable."
    )
