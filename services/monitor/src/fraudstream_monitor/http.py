"""The monitor's HTTP face: the ops console (`/`), the JSON it draws from (`/api/overview`),
the admin actions (`/api/admin/*`, behind an API key with the admin scope), and the shared
/healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from redis import asyncio as aioredis

from fraudstream_common.apikeys import ApiKeys, AuthError, Scope
from fraudstream_common.audit import Action, AuditLog, AuditTrail, NotAuditedError
from fraudstream_common.contracts import Refused
from fraudstream_common.deadletter import PROTOBUF_HEADERS
from fraudstream_common.health import Readiness
from fraudstream_common.http import BodyLimit, add_health_routes
from fraudstream_common.kafka import AsyncProducer
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.operations import AliasMove, OperationError, Operations
from fraudstream_monitor.versions import VersionCatalogue

REGISTRY_CACHE_SECONDS = 5.0

# The admin calls' bodies are a few fields; anything larger is refused before it is read.
ADMIN_BODY_MAX_BYTES = 16_384


class PauseBody(BaseModel):
    # Strict: 0 or "no" is not taken for false on a call that pauses production's loop.
    model_config = ConfigDict(strict=True)

    paused: bool = Field(description="True pauses the retrain loop; false resumes it.")


class PromoteBody(BaseModel):
    model_config = ConfigDict(strict=True)

    version: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]+$", description="Version to make champion.")


class Paused(BaseModel):
    paused: bool


class Retrain(BaseModel):
    request_id: str
    force: bool


class Moved(BaseModel):
    alias: str
    version: str
    previous: str | None = Field(description="The version that held the alias before, if any.")


ADMIN_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": Refused, "description": "The body is not JSON."},
    401: {"model": Refused, "description": "No API key, an unknown or expired one."},
    403: {"model": Refused, "description": "The key lacks the admin scope."},
    409: {
        "model": Refused,
        "description": "The registry's state does not allow it (no such version, nothing to roll back).",
    },
    413: {"model": Refused, "description": "The body is larger than 16 KiB."},
    429: {"model": Refused, "description": "The key's rate limit is exceeded."},
}


class PauseFlag:
    """Whether the loop is paused, kept in Redis so that a restarted monitor stays paused."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self._client = client
        self._key = key

    async def read(self) -> bool:
        return bool(await self._client.get(self._key))

    async def write(self, paused: bool) -> None:
        if paused:
            await self._client.set(self._key, "1")
        else:
            await self._client.delete(self._key)


def create_app(
    core: MonitorCore,
    catalogue: VersionCatalogue,
    operations: Operations,
    requests: AsyncProducer,
    requests_topic: str,
    pause_flag: PauseFlag,
    keys: ApiKeys | None,
    readiness: Readiness,
    audit: AuditLog,
    trail: AuditTrail,
) -> FastAPI:
    app = FastAPI(title="fraudstream monitor", version="0.1.0")
    add_health_routes(app, readiness)
    app.add_middleware(BodyLimit, limit=ADMIN_BODY_MAX_BYTES)
    console = resources.files("fraudstream_monitor").joinpath("console.html").read_text()
    registry_view: dict[str, Any] = {"at": 0.0}

    async def admin(request: Request) -> str:
        """The caller's name for the record; AuthError unless it holds the admin scope. A
        dependency of every admin route, so the key is checked before the body is looked at."""
        if keys is None:
            return "anonymous (auth disabled)"
        return keys.actor(await keys.authorize(request.headers.get("authorization"), Scope.ADMIN))

    @app.exception_handler(AuthError)
    async def refused(_request: Request, error: AuthError) -> Response:
        return JSONResponse({"detail": error.reason}, status_code=error.status)

    @app.exception_handler(OperationError)
    async def impossible(_request: Request, error: OperationError) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(NotAuditedError)
    async def not_audited(_request: Request, error: NotAuditedError) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    async def ops_console() -> str:
        return console

    @app.get("/api/overview")
    async def overview() -> dict[str, Any]:
        if time.monotonic() - registry_view["at"] > REGISTRY_CACHE_SECONDS:
            (aliases, first_model_wait), runs = await asyncio.gather(
                asyncio.to_thread(operations.registry_state), asyncio.to_thread(operations.runs)
            )
            registry_view.update(at=time.monotonic(), aliases=aliases, first_model_wait=first_model_wait, runs=runs)
        document = core.overview()
        document["aliases"] = registry_view["aliases"]
        document["first_model_wait"] = registry_view["first_model_wait"]
        document["runs"] = registry_view["runs"]
        document["audit"] = trail.latest()
        document["published"] = [
            {
                "version": v.version,
                "alias": v.alias,
                "published_at": v.published_at,
                "metrics": v.metrics,
                "review_threshold": v.review_threshold,
                "reference": catalogue.has_reference(v.version),
            }
            for v in catalogue.all()
        ]
        return document

    @app.post("/api/admin/pause", responses=ADMIN_REFUSALS)
    async def pause(body: PauseBody, by: str = Depends(admin)) -> Paused:
        await pause_flag.write(body.paused)
        core.pause(body.paused)
        await audit.record(Action.LOOP_PAUSED if body.paused else Action.LOOP_RESUMED, by)
        return Paused(paused=body.paused)

    @app.post("/api/admin/retrain", responses=ADMIN_REFUSALS)
    async def retrain(by: str = Depends(admin)) -> Retrain:
        retrain_request = core.force_request(by)
        await requests.produce(
            requests_topic,
            retrain_request.SerializeToString(),
            retrain_request.model_name.encode(),
            PROTOBUF_HEADERS,
        )
        await audit.record(Action.RETRAIN_FORCED, by, request_id=retrain_request.request_id)
        return Retrain(request_id=retrain_request.request_id, force=True)

    @app.post("/api/admin/promote", responses=ADMIN_REFUSALS)
    async def promote(body: PromoteBody, by: str = Depends(admin)) -> Moved:
        move = await asyncio.to_thread(operations.promote, body.version, by)
        registry_view["at"] = 0.0
        await audit.record(Action.VERSION_PROMOTED, by, **_moved(move))
        return Moved(alias=move.alias, version=move.version, previous=move.previous)

    @app.post("/api/admin/rollback", responses=ADMIN_REFUSALS)
    async def rollback(by: str = Depends(admin)) -> Moved:
        move = await asyncio.to_thread(operations.roll_back, by)
        registry_view["at"] = 0.0
        await audit.record(Action.VERSION_ROLLED_BACK, by, **_moved(move))
        return Moved(alias=move.alias, version=move.version, previous=move.previous)

    return app


def _moved(move: AliasMove) -> dict[str, str]:
    return {"alias": move.alias, "version": move.version, "previous": move.previous or ""}
