"""Feast's client reaches Redis as ours does: the same user, password, database and TLS files
from one URL (redis-py's form), through Feast's own parser of its connection string."""

from __future__ import annotations

import pytest
import redis
from feast.infra.online_stores.redis import RedisOnlineStore

from fraudstream_feature_store.store import feast_redis_connection


def feast_sees(url: str) -> tuple[list[dict[str, str]], dict[str, object]]:
    nodes, params = RedisOnlineStore._parse_connection_string(feast_redis_connection(url))
    return nodes, params


def test_a_plain_url() -> None:
    nodes, params = feast_sees("redis://127.0.0.1:6379/1")
    assert nodes == [{"host": "127.0.0.1", "port": "6379"}]
    assert params["db"] == 1
    assert "password" not in params
    assert "ssl" not in params


def test_tls_with_an_acl_user_and_a_ca_reaches_feast_as_it_reaches_redis_py() -> None:
    url = "rediss://fraudstream:p%40ss@redis.example:6380/2?ssl_ca_certs=/etc/fraudstream/redis-ca.pem"
    nodes, params = feast_sees(url)
    ours = redis.Redis.from_url(url).connection_pool.connection_kwargs
    assert nodes == [{"host": "redis.example", "port": "6380"}]
    assert params["username"] == ours["username"] == "fraudstream"
    assert params["password"] == ours["password"] == "p@ss"
    assert params["db"] == ours["db"] == 2
    assert params["ssl"] is True
    assert params["ssl_ca_certs"] == ours["ssl_ca_certs"] == "/etc/fraudstream/redis-ca.pem"


def test_a_password_feast_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="comma"):
        feast_redis_connection("redis://:a%2Cb@redis:6379/1")
