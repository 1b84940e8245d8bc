"""The HTTP pieces every service shares: liveness, readiness and metrics routes, a request body
limit, and a uvicorn server that leaves signal handling to the service runner
(fraudstream_common.lifecycle)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess, values
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        body = {"ready": ready, "checks": checks, "waiting_for": readiness.waiting_for()}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """ASGI middleware (`app.add_middleware(BodyLimit, limit=...)`): a request body over `limit`
    bytes is answered 413 without being read: at once when its Content-Length says so, else
    (chunked) as soon as what the app has read passes the limit. `refused` is called for each."""

    def __init__(self, app: ASGIApp, limit: int, refused: Callable[[], None] | None = None) -> None:
        self._app = app
        self._limit = limit
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._limit:
            await self._too_large(send)
            return
        read = 0

        async def limited() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > self._limit:
                raise _BodyTooLargeError
            return message

        try:
            await self._app(scope, limited, send)
        except _BodyTooLargeError:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        if self._refused is not None:
            self._refused()
        response = JSONResponse({"detail": f"request body larger than {self._limit} bytes"}, status_code=413)
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _registry() -> CollectorRegistry:
    """This process's metrics; where their values are kept in files (worker processes, started
    with PROMETHEUS_MULTIPROC_DIR), every live worker's, summed. The variable alone says
    nothing: importing Feast sets it in a running process (MLflow's artifact download imports
    Feast), whose values stay in memory."""
    if values.ValueClass is values.MutexValue:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the service runner owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    name = "http"

    def __init__(self, app: ASGIApp, host: str, port: int, *, reuse_port: bool = False) -> None:
        """With `reuse_port`, processes of one service share the port (the kernel spreads
        connections over them)."""
        self._server = _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
        self._address = (host, port)
        self._reuse_port = reuse_port

    async def run(self) -> None:
        if not self._reuse_port:
            await self._server.serve()
            return
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        shared = socket.socket(family, socket.SOCK_STREAM)
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        shared.bind(self._address)
        await self._server.serve(sockets=[shared])

    async def stop(self) -> None:
        self._server.should_exit = True
