"""`fraudstream down --delete-data` (a second `make demo`): what the platform and the services
wrote goes, the downloads stay, and nothing goes while a part of it still runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudstream_cli.platform.manager import Platform
from fraudstream_cli.platform.processes import PlatformError
from fraudstream_cli.platform.settings import PlatformSettings

WRITTEN = ("kafka/data/meta.properties", "redis/dump.rdb", "mlflow/mlflow.db", "feast/offline/part.parquet")
DOWNLOADED = "cache/kafka-abc/lib/kafka.jar"


def platform_home(tmp_path: Path) -> Path:
    for path in (*WRITTEN, DOWNLOADED, "run/simulator.log", "run/kafka.pid"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("999999999\n" if path.endswith(".pid") else "x")
    return tmp_path


def test_what_was_written_is_deleted_and_the_downloads_stay(tmp_path: Path) -> None:
    home = platform_home(tmp_path)
    said: list[str] = []
    Platform(PlatformSettings(home=home)).delete_data(said.append)
    assert sorted(p.name for p in home.iterdir()) == ["cache"]
    assert (home / DOWNLOADED).exists()
    assert said == ["kafka: deleted", "redis: deleted", "mlflow: deleted", "feast: deleted", "run: deleted"]


def test_nothing_is_deleted_while_a_part_runs(tmp_path: Path) -> None:
    home = platform_home(tmp_path)
    (home / "run" / "redis.pid").write_text(f"{os.getpid()}\n")
    with pytest.raises(PlatformError, match="still running, not deleted: redis"):
        Platform(PlatformSettings(home=home)).delete_data(lambda _: None)
    assert all((home / path).exists() for path in WRITTEN)
