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
        self.process.start(
            [
                binary,
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
            ]
        )
        self.wait_ready()
        return "started"

    def wait_ready(self) -> None:
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=1)
        wait_until(lambda: bool(client.ping()), process=self.process, what="Redis", timeout=30)

    def stop(self) -> bool:
        return self.process.stop(timeout=15)
