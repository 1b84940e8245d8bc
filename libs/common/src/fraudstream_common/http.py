"""The HTTP pieces every service shares: liveness, readiness and metrics routes, and a uvicorn
server that leaves signal handling to the service runner (fraudstream_common.lifecycle)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp

from fraudstream_common.health import Readiness


def add_health_routes(app: FastAPI, readiness: Readiness) -> None:
    """/healthz (the process serves), /readyz (every readiness check passes), /metrics."""

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = await readiness.evaluate()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the service runner owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    name = "http"

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._server = _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))

    async def run(self) -> None:
        await self._server.serve()

    async def stop(self) -> None:
        self._server.should_exit = True
