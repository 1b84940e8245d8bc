"""Redis from Debian's `redis-server` package, installed when missing, run as a local process."""

from __future__ import annotations

import redis

from fraudstream_cli.platform.debian import ensure_debian_package
from fraudstream_cli.platform.processes import (
    ManagedProcess,
    require_free_port,
    wait_until,
)
from fraudstream_cli.platform.settings import PlatformSettings

# Growth of the append-only log, in percent of the data set at the last rewrite, that starts a rewrite.
AOF_REWRITE_PERCENTAGE = 400
# Only keys with an expiry are dropped when Redis is full, the least recently used first: the
# caches (dedupe ids, decisions) shrink, the feature state and the API keys stay.
EVICTION_POLICY = "volatile-lru"


class RedisServer:
    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.home = settings.home / "redis"
        self.process = ManagedProcess("redis", settings.home / "run")

    def start(self) -> str:
        if self.process.pid() is not None:
            self.wait_ready()
            return "already running"
        require_free_port(self.settings.redis_port, "Redis")
        binary = ensure_debian_package("redis-server", "redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        self.process.start([binary, *self.options()])
        self.wait_ready()
        return "started"

    def options(self) -> list[str]:
        """redis-server's command line, after the binary."""
        return [
            "--port",
            str(self.settings.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.home),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            # A rewrite forks Redis and writes the whole data set on the services' cores, and
            # every hop slows while it runs: rewrite less often (the log grows to five times
            # the data set), and skip the fsyncs meanwhile (an OS crash then may lose them).
            "--auto-aof-rewrite-percentage",
            str(AOF_REWRITE_PERCENTAGE),
            "--no-appendfsync-on-rewrite",
            "yes",
            "--maxmemory",
            f"{self.settings.redis_max_memory_mb}mb",
            "--maxmemory-policy",
            EVICTION_POLICY,
        ]

    def wait_ready(self) -> None:
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=1)
        wait_until(lambda: bool(client.ping()), process=self.process, what="Redis", timeout=30)

    def stop(self) -> bool:
        return self.process.stop(timeout=15)
