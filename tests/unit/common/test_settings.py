from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraudstream_common.settings import (
    DEVELOPMENT_API_KEY_SECRET,
    ApiKeyRules,
    Environment,
    RetrainRequestSecret,
    ServiceSettings,
    secret,
)


class WithSecret(ServiceSettings):
    api_token: str = secret("dev-token", "A token for tests.")


def test_default_secret_is_fine_in_development() -> None:
    assert WithSecret().api_token == "dev-token"


def test_default_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="FRAUDSTREAM_API_TOKEN"):
        WithSecret(environment=Environment.PRODUCTION)


def test_changed_secret_is_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_API_TOKEN", "s3cret")
    assert WithSecret(environment=Environment.PRODUCTION).api_token == "s3cret"


def test_an_empty_or_blank_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for empty in ("", "   "):
        monkeypatch.setenv("FRAUDSTREAM_API_TOKEN", empty)
        with pytest.raises(ValidationError, match="FRAUDSTREAM_API_TOKEN is empty"):
            WithSecret(environment=Environment.PRODUCTION)


class WithRetrainSecret(ServiceSettings, RetrainRequestSecret):
    pass


def test_production_refuses_the_development_retrain_request_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="FRAUDSTREAM_RETRAIN_REQUEST_SECRET still has its development default"):
        WithRetrainSecret(environment=Environment.PRODUCTION)
    monkeypatch.setenv("FRAUDSTREAM_RETRAIN_REQUEST_SECRET", "s3cret")
    assert WithRetrainSecret(environment=Environment.PRODUCTION).retrain_request_secret.get_secret_value() == "s3cret"


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS", "broker:19092")
    assert ServiceSettings().kafka_bootstrap_servers == "broker:19092"


class WithKeys(ServiceSettings, ApiKeyRules):
    pass


def test_production_refuses_to_serve_without_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not WithKeys(auth_enabled=False).auth_enabled  # development: a choice
    monkeypatch.setenv("FRAUDSTREAM_API_KEY_SECRET", "s3cret")
    with pytest.raises(ValidationError, match="FRAUDSTREAM_AUTH_ENABLED"):
        WithKeys(auth_enabled=False, environment=Environment.PRODUCTION)
    assert WithKeys(environment=Environment.PRODUCTION).auth_enabled


def test_production_refuses_the_development_api_key_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WithKeys().api_key_secret.get_secret_value() == DEVELOPMENT_API_KEY_SECRET
    with pytest.raises(ValidationError, match="FRAUDSTREAM_API_KEY_SECRET"):
        WithKeys(environment=Environment.PRODUCTION)
    monkeypatch.setenv("FRAUDSTREAM_API_KEY_SECRET", "s3cret")
    assert WithKeys(environment=Environment.PRODUCTION).api_key_secret.get_secret_value() == "s3cret"


def test_an_empty_sasl_password_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_SASL_USERNAME", "fraudstream")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_SASL_PASSWORD", "")
    with pytest.raises(ValidationError, match="FRAUDSTREAM_KAFKA_SASL_PASSWORD"):
        ServiceSettings()
