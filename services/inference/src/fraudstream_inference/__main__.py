"""Run the inference service: `python -m fraudstream_inference` (or `fraudstream-inference`).

HTTP and gRPC scoring, stream scoring of `transactions.enriched`, hot-swap from
`models.published`, all over one InferenceCore.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from typing import cast

import redis.asyncio as aioredis
import uvloop

from fraudstream_common.apikeys import api_keys
from fraudstream_common.health import Readiness
from fraudstream_common.http import HttpServer
from fraudstream_common.lifecycle import Component, ServiceRunner
from fraudstream_common.logging import configure_logging
from fraudstream_common.topics import Topic, topic_name
from fraudstream_inference.core import InferenceCore
from fraudstream_inference.decisions import DecisionCache
from fraudstream_inference.features import RequestFeatures
from fraudstream_inference.grpc_server import grpc_server
from fraudstream_inference.http import create_app
from fraudstream_inference.model import resolve_device, tensor_min_rows_for
from fraudstream_inference.predictions import PredictionLog, RolloutEvents
from fraudstream_inference.rollout import Rollout
from fraudstream_inference.settings import EventLoop, InferenceSettings
from fraudstream_inference.stream import scoring_stream
from fraudstream_inference.swap import ModelFollower
from fraudstream_inference.workers import Supervisor, follow_the_supervisor, is_worker

logger = logging.getLogger(__name__)


async def serve(settings: InferenceSettings) -> int:
    try:
        device = resolve_device(settings.device)
    except RuntimeError as unusable:
        logger.error("%s: not starting (FRAUDSTREAM_DEVICE=auto or cpu scores on the CPU)", unusable)
        return 2
    tensor_min_rows = tensor_min_rows_for(device, settings.tensor_graph_min_rows)
    logger.info(
        "scoring on %s: the TreeEnsemble graph on the CPU%s",
        device.value,
        f", batches of {tensor_min_rows} rows or more on the tensor graph" if tensor_min_rows else "",
    )
    prefix = settings.topic_prefix
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    log = PredictionLog(
        settings, topic_name(Topic.PREDICTIONS, prefix), client_id=f"{settings.instance_id}-predictions"
    )
    rollout_events = RolloutEvents(
        settings,
        topic_name(Topic.MODELS_ROLLOUT, prefix),
        model_name=settings.registered_model,
        replica=settings.instance_id,
    )
    rollout = Rollout(settings, rollout_events)
    core = InferenceCore(
        rollout,
        RequestFeatures(settings.state_store(), settings.feature_deadline_ms / 1000),
        DecisionCache(
            client,
            ttl_seconds=settings.decision_ttl_seconds,
            deadline_seconds=settings.decision_cache_deadline_ms / 1000,
            namespace=prefix,
        ),
        log,
        max_pass_rows=settings.max_pass_rows,
        max_passes_in_flight=settings.max_passes_in_flight,
    )
    keys = api_keys(client, settings, namespace=prefix)
    follower = ModelFollower(settings, rollout, topic_name(Topic.MODELS_PUBLISHED, prefix), device)

    readiness = Readiness()

    async def model_loaded() -> bool:
        return core.ready

    async def redis_reachable() -> bool:
        return bool(await asyncio.wait_for(cast(Awaitable[bool], client.ping()), 2.0))

    async def kafka_reachable() -> bool:
        return follower.ready

    readiness.add("model", model_loaded)
    readiness.waiting("model", rollout.waiting_for)
    readiness.add("redis", redis_reachable)
    readiness.add("kafka", kafka_reachable)
    app = create_app(core, keys, settings, readiness)

    # Stop order: the transports (no new requests), the key check's reports, the stream
    # (finishes and commits its batch), the model follower, then the prediction log (flushes
    # what the requests logged).
    components: list[Component] = [
        HttpServer(app, settings.http_host, settings.http_port, reuse_port=is_worker()),
        grpc_server(core, keys, settings, readiness, reuse_port=is_worker()),
    ]
    if keys is not None:
        components.append(keys)
    if settings.stream_scoring:
        components.append(scoring_stream(settings, core, asyncio.get_running_loop()))
    components += [follower, log]
    try:
        return await ServiceRunner(components).run()
    finally:
        rollout_events.close()
        await client.aclose()


def main() -> None:
    settings = InferenceSettings()
    configure_logging("inference", settings.log_level, settings.log_json)
    if settings.workers > 1 and not is_worker():
        sys.exit(Supervisor(settings).run())
    if is_worker():
        follow_the_supervisor()
    if settings.event_loop is EventLoop.UVLOOP:
        sys.exit(uvloop.run(serve(settings)))
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
