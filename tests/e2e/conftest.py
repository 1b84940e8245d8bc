"""Tests here need the real local platform (`make platform-up`); see tests/platform.py."""

from tests.platform import ingest, platform_running, private_redis, redis_client, topics

__all__ = ["ingest", "platform_running", "private_redis", "redis_client", "topics"]
