"""Every Kafka client takes TLS and SASL from the shared settings: what a managed Kafka asks for."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraudstream_common.kafka import consumer_config, producer_config
from fraudstream_common.settings import KafkaSaslMechanism, KafkaSecurityProtocol, ServiceSettings


def test_plaintext_by_default() -> None:
    config = ServiceSettings().kafka_client_config()
    assert config == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


def test_sasl_ssl_reaches_producers_and_consumers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": "broker.example:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "fraudstream",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SSL_CA_LOCATION": "/etc/fraudstream/ca.pem",
    }.items():
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value)
    settings = ServiceSettings()
    expected = {
        "bootstrap.servers": "broker.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fraudstream",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/fraudstream/ca.pem",
    }
    producer = producer_config(settings, client_id="p", transactional_id="t")
    consumer = consumer_config(settings, group_id="g", client_id="c")
    assert expected.items() <= producer.items()
    assert expected.items() <= consumer.items()
    assert "s3cret" not in repr(settings)


def test_a_sasl_protocol_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="FRAUDSTREAM_KAFKA_SASL_PASSWORD"):
        ServiceSettings(
            kafka_security_protocol=KafkaSecurityProtocol.SASL_SSL,
            kafka_sasl_mechanism=KafkaSaslMechanism.PLAIN,
            kafka_sasl_username="u",
        )
