"""Settings every service shares. Each service subclasses `ServiceSettings` with its own fields.

All settings come from environment variables prefixed `FRAUDSTREAM_` (for example
`FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS`); every one has a safe default for a local run.
Fields marked `secret=True` must be changed from their default outside development.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ProcessingGuarantee(StrEnum):
    """Delivery guarantee of a consume-transform-produce loop.

    at-least-once: outputs are flushed and acknowledged before the input offsets are committed;
        a crash between the two replays the batch, so outputs may repeat (consumers dedupe).
    exactly-once: outputs and input offsets are committed in one Kafka transaction; a crash
        aborts the transaction and read_committed consumers never see its outputs.
    """

    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"


def secret(default: str, description: str) -> Any:
    """A field (str or SecretStr) whose default is only acceptable in development."""
    return Field(default=default, description=description, json_schema_extra={"secret": True}, validate_default=True)


class KafkaSecurityProtocol(StrEnum):
    """librdkafka's security.protocol: how the clients reach the brokers."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_", extra="ignore")

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="development or production; production refuses default secrets.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default=KafkaSecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (managed Kafka offerings ask for SASL_SSL).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with a SASL protocol."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user; required with a SASL protocol.")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; required with a SASL protocol. Never logged."
    )
    kafka_ssl_ca_location: str | None = Field(
        default=None,
        description="PEM file of the CA that signed the brokers' certificates; unset: the system's CAs.",
    )
    kafka_ssl_certificate_location: str | None = Field(
        default=None, description="PEM file of this client's certificate, where the brokers ask for one (mTLS)."
    )
    kafka_ssl_key_location: str | None = Field(
        default=None, description="PEM file of the key of kafka_ssl_certificate_location."
    )
    kafka_session_timeout_seconds: float = Field(
        default=6.0,
        ge=1,
        description=(
            "A consumer silent this long leaves its group and its partitions move on (Kafka's session "
            "timeout; the broker's group.min.session.timeout.ms, 6 s by default, is the least it takes). "
            "After a crash, a restarted replica's partitions wait this long for the old member to go; for "
            "the features service keep it below max_wait_seconds, so that a failover holds nothing early."
        ),
    )
    topic_prefix: str = Field(
        default="", description="Prefix for every topic name, for shared clusters (e.g. 'team-a.')."
    )
    log_level: str = Field(default="INFO", description="Python log level name.")
    log_json: bool = Field(default=True, description="Log one JSON object per line.")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_"):
            given = {
                "kafka_sasl_mechanism": self.kafka_sasl_mechanism is not None,
                "kafka_sasl_username": bool(self.kafka_sasl_username),
                "kafka_sasl_password": bool(self.kafka_sasl_password and self.kafka_sasl_password.get_secret_value()),
            }
            missing = [f"FRAUDSTREAM_{name.upper()}" for name, present in given.items() if not present]
            if missing:
                raise ValueError(f"{self.kafka_security_protocol} needs {', '.join(missing)}")
        return self

    def kafka_client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka's settings for reaching the brokers, shared by every client."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol.value,
        }
        if self.kafka_sasl_mechanism is not None:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism.value
        if self.kafka_sasl_username is not None:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        for key, value in (
            ("ssl.ca.location", self.kafka_ssl_ca_location),
            ("ssl.certificate.location", self.kafka_ssl_certificate_location),
            ("ssl.key.location", self.kafka_ssl_key_location),
        ):
            if value is not None:
                config[key] = value
        return config

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Self:
        if self.environment is Environment.DEVELOPMENT:
            return self
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(extra, dict) and extra.get("secret") and (value == field.default or not str(value).strip()):
                env_name = f"FRAUDSTREAM_{name.upper()}"
                state = "is empty" if not str(value).strip() else "still has its development default"
                raise ValueError(f"{env_name} {state}; set it in {self.environment}")
        return self


DEVELOPMENT_API_KEY_SECRET = "fraudstream-development-api-key-secret"  # noqa: S105 (refused outside development)


class ApiKeySecret(BaseModel):
    """The secret that signs API key records (fraudstream_common.apikeys), for every service
    that checks keys and for the command that creates them."""

    api_key_secret: SecretStr = secret(
        DEVELOPMENT_API_KEY_SECRET,
        "Signs every API key record in Redis: a record written without it (or with its scopes or expiry changed) "
        "is refused. The same in every service that checks keys and in `fraudstream apikey`.",
    )


DEVELOPMENT_RETRAIN_REQUEST_SECRET = "fraudstream-development-retrain-request-secret"  # noqa: S105 (as above)


class RetrainRequestSecret(BaseModel):
    """The secret that signs retrain requests (fraudstream_common.signing): those who may ask
    for a model (the monitor) and the trainer that answers share it."""

    retrain_request_secret: SecretStr = secret(
        DEVELOPMENT_RETRAIN_REQUEST_SECRET,
        "Signs every request on `retrain.requests`: the trainer refuses (dead letter, counted, logged) one "
        "not signed with it. The same in the monitor and the trainer; no other service needs it.",
    )


class ApiKeyRules(ApiKeySecret):
    """Who may call a service that takes API keys (fraudstream_common.apikeys): inference with
    scope predict, ingest with scope ingest."""

    auth_enabled: bool = Field(
        default=True,
        description="Require an API key with the service's scope (predict, ingest) on HTTP and gRPC; "
        "production refuses false.",
    )
    rate_limit_per_second: float = Field(
        default=2000.0, gt=0, description="Requests per second one API key may send, to all replicas together."
    )
    rate_limit_burst: float = Field(default=4000.0, gt=0, description="Requests one API key may send at once.")
    rate_limit_report_ms: float = Field(
        default=100.0,
        gt=0,
        description="How often each process reports what each key spent to the key's bucket in Redis that all "
        "replicas share; between two reports each process may let a key through up to its own bucket.",
    )

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Self:
        if not self.auth_enabled and getattr(self, "environment", None) is Environment.PRODUCTION:
            raise ValueError("FRAUDSTREAM_AUTH_ENABLED=false: production serves only callers with an API key")
        return self


class StreamDelivery(BaseModel):
    """The delivery guarantee of a stateless stage whose outputs leave the system (ingest's
    transactions, inference's predictions)."""

    processing_guarantee: ProcessingGuarantee = Field(
        default=ProcessingGuarantee.EXACTLY_ONCE,
        description="exactly-once (Kafka transactions: every output once) or at-least-once (flush, "
        "then commit offsets: an output may repeat after a fault, for a shorter commit).",
    )


class GrpcServing(BaseModel):
    """How a service with a gRPC port serves it (fraudstream_common.grpc_serving)."""

    grpc_threads: int = Field(
        default=1,
        ge=1,
        description="Threads in each process that run gRPC's HTTP/2 (Tokio, outside the GIL) beside the "
        "event loop that answers the calls; one keeps up with the loop on 2 cores.",
    )


class TransactionRules(BaseModel):
    """What a valid transaction is, for every service that accepts one from outside
    (fraudstream_common.validation)."""

    max_message_bytes: int = Field(default=4096, description="Larger raw messages are rejected as oversize.")
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
