"""Inference configuration: environment variables prefixed FRAUDSTREAM_."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from fraudstream_common.settings import ApiKeyRules, GrpcServing, ServiceSettings, StreamDelivery, TransactionRules
from fraudstream_feature_store.settings import FeatureStoreSettings


class Device(StrEnum):
    """Where ONNX Runtime scores: auto takes CUDA when the build and the host have it."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class EventLoop(StrEnum):
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class InferenceSettings(
    ServiceSettings, FeatureStoreSettings, TransactionRules, ApiKeyRules, GrpcServing, StreamDelivery
):
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP and gRPC servers bind.")
    http_port: int = Field(default=8080, description="HTTP port: /v1/predict, /healthz, /readyz, /metrics.")
    grpc_port: int = Field(default=50051, description="gRPC port of fraudstream.v1.InferenceService.")
    event_loop: EventLoop = Field(
        default=EventLoop.UVLOOP,
        description="The event loop HTTP, gRPC and stream scoring share: uvloop (faster; gRPC's asyncio stack "
        "gains most) or Python's asyncio.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Processes serving the same HTTP and gRPC ports (SO_REUSEPORT), one per core to use; "
        "in Kubernetes keep 1 and scale with replicas.",
    )
    instance_id: str = Field(
        default="inference-0",
        description="Name of this replica: its Kafka client ids and transactional id. Give each replica its own.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis holding API keys and the decisions taken."
    )
    mlflow_tracking_uri: str = Field(
        default="http://127.0.0.1:5000", description="MLflow server the model artifacts are downloaded from."
    )
    registered_model: str = Field(default="fraud-detector", description="Registry model this service serves.")
    device: Device = Field(
        default=Device.AUTO,
        description=(
            "auto, cpu or cuda: where ONNX Runtime runs the tensor graph (auto: CUDA where usable); cuda where "
            "it is not usable stops the service at start."
        ),
    )
    intra_op_threads: int = Field(
        default=1, ge=1, description="ONNX Runtime threads per request: one row is fastest on one thread."
    )
    tensor_graph_min_rows: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Batches of at least this many rows are scored by the version's tensor graph, on the device; "
            "smaller ones by its TreeEnsemble graph on the CPU. 0: never. Unset: never on the CPU (slower "
            "there at every batch size), 16 on CUDA."
        ),
    )
    warmup_rows: int = Field(default=256, ge=1, description="Rows scored by a new model before it serves.")
    feature_deadline_ms: float = Field(
        default=20.0, gt=0, description="Longest wait for the feature store; past it the fallback answers."
    )
    decision_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        description=(
            "How long a decision is remembered for retries of its transaction. Redis holds a key of about 210 bytes "
            "per decision for this long; with `maxmemory-policy volatile-lru` it drops the oldest first when full."
        ),
    )
    decision_cache_deadline_ms: float = Field(
        default=20.0, gt=0, description="Longest wait for the decision cache before answering without it."
    )
    max_http_body_bytes: int = Field(
        default=1_048_576, description="Larger HTTP bodies get 413; larger gRPC messages RESOURCE_EXHAUSTED."
    )
    not_ready_retry_after_seconds: int = Field(
        default=30,
        ge=1,
        description=(
            "Before a first model is loaded, HTTP calls are answered 503 with this Retry-After (gRPC: "
            "UNAVAILABLE, which clients retry); /readyz says what the replica waits for."
        ),
    )
    max_batch_items: int = Field(default=1000, ge=1, description="Most transactions in one batch call.")
    max_pass_rows: int = Field(
        default=256,
        ge=1,
        description="Most transactions the core scores in one pass: calls that arrive together (HTTP and gRPC) "
        "share a feature read, a model run and a decision-cache round trip. A larger batch call is one pass.",
    )
    max_passes_in_flight: int = Field(
        default=1,
        ge=1,
        description="Most scoring passes awaiting Redis or the model at once; calls that arrive meanwhile "
        "wait for one to finish and are scored together in the next (fewer round trips per call under load). "
        "Raise it where Redis is a network hop away, so that passes overlap their round trips.",
    )
    stream_scoring: bool = Field(default=True, description="Score every record of transactions.enriched.")
    batch_max_messages: int = Field(default=2000, description="Most enriched records scored at once.")
    batch_max_wait_seconds: float = Field(
        default=0.01,
        description="Longest wait for a stream batch to fill: what there is then is scored; bounds the added latency.",
    )
    canary_share: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests the challenger answers while one is published."
    )
    shadow: bool = Field(
        default=False, description="Score every request with the challenger too (the champion answers)."
    )
    rollback_min_requests: int = Field(
        default=200, ge=1, description="Challenger requests seen before the rollback limits are judged."
    )
    rollback_max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="A challenger failing more requests than this is rolled back."
    )
    rollback_max_p99_ms: float = Field(
        default=25.0, gt=0, description="A challenger slower than this at p99 (scoring only) is rolled back."
    )
    rollback_max_score_psi: float = Field(
        default=0.25,
        gt=0,
        description="Largest PSI of the challenger's scores against the champion's on the same traffic.",
    )
