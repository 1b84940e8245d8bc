"""BodyLimit refuses a body over the limit without reading it: by its Content-Length before the
app runs, and a chunked one as soon as what was read passes the limit. /metrics reports the
process's metrics wherever prometheus_client keeps them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import Counter

from fraudstream_common.health import Readiness
from fraudstream_common.http import BodyLimit, add_health_routes

LIMIT = 1_000
CHUNK = 100


def limited_app(refusals: list[int]) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    app.add_middleware(BodyLimit, limit=LIMIT, refused=lambda: refusals.append(1))
    return app


def call(app: FastAPI, chunks: int, declared: int | None = None) -> tuple[int, Any, int]:
    """Status, JSON answer, and how many body chunks the app took of `chunks` offered."""
    taken = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken == chunks:
            await asyncio.sleep(3600)  # the client has nothing more to send
        taken += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": taken < chunks}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/octet-stream")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), taken


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    refusals: list[int] = []
    assert call(limited_app(refusals), chunks=10) == (200, {"read": 1_000}, 10)
    assert not refusals


def test_a_chunked_body_over_the_limit_is_refused_once_the_limit_is_passed() -> None:
    refusals: list[int] = []
    status, answer, taken = call(limited_app(refusals), chunks=10_000)
    assert status == 413
    assert answer == {"detail": f"request body larger than {LIMIT} bytes"}
    assert taken == LIMIT // CHUNK + 1  # of a megabyte offered, 1,100 bytes were read
    assert refusals == [1]


def test_a_declared_length_over_the_limit_is_refused_before_the_app_reads() -> None:
    refusals: list[int] = []
    status, _, taken = call(limited_app(refusals), chunks=10_000, declared=1_000_000)
    assert (status, taken) == (413, 0)
    assert refusals == [1]


def test_metrics_stay_reported_when_a_library_sets_the_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # What importing Feast does in a running service (MLflow's artifact download imports it).
    app = FastAPI()
    add_health_routes(app, Readiness())
    counted = Counter("fraudstream_test_metrics_counted", "A metric of this process.")
    counted.inc()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROCESS_DIR", str(tmp_path))
    text = TestClient(app).get("/metrics").text
    assert "fraudstream_test_metrics_counted_total 1.0" in text
