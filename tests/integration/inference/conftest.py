"""The inference service with a published model, for tests that need no special settings
(a test module overrides `served` when it does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.inference.serving import Served, serve
from tests.platform import PrivateRedis, Topics


@pytest.fixture
def served(topics: Topics, tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Served]:
    served = serve(topics, tmp_path, private_redis)
    yield served
    assert served.service.terminate() == 0
