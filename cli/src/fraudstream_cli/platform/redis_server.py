"""Redis from Debian's `redis-server` package, installed when missing, run as a local process."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import redis

from fraudstream_cli.platform.processes import (
    ManagedProcess,
    PlatformError,
    require_free_port,
    wait_until,
)
from fraudstream_cli.platform.settings import PlatformSettings

DEBIAN_BINARY = Path("/usr/bin/redis-server")


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
        binary = ensure_redis_installed()
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


def ensure_redis_installed() -> str:
    found = shutil.which("redis-server") or (str(DEBIAN_BINARY) if DEBIAN_BINARY.exists() else None)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise PlatformError(
            "redis-server is not installed; install Debian's package: sudo apt-get install redis-server"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        [apt, "update", "-q"],
        [apt, "install", "-y", "-q", "--no-install-recommends", "redis-server"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise PlatformError(
                f"`{' '.join(argv[1:3])}` failed while installing redis-server:\n{result.stderr[-1000:]}"
            )
    if not DEBIAN_BINARY.exists():
        raise PlatformError("apt-get installed redis-server but /usr/bin/redis-server is missing")
    return str(DEBIAN_BINARY)
