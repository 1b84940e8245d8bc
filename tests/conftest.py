"""Fixtures every kind of test shares."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked anyio) run on asyncio, as the services do."""
    return "asyncio"
