"""Run the features service: `python -m fraudstream_features` (or `fraudstream-features`)."""

from __future__ import annotations

import asyncio
import gc
import sys

import redis
from fastapi import FastAPI

from fraudstream_common.health import Readiness
from fraudstream_common.http import HttpServer, add_health_routes
from fraudstream_common.lifecycle import Component, ServiceRunner
from fraudstream_common.logging import configure_logging
from fraudstream_features.core import FeaturesCore
from fraudstream_features.offline import offline_writer
from fraudstream_features.settings import FeaturesSettings
from fraudstream_features.stream import FeaturesStream


async def serve(settings: FeaturesSettings) -> int:
    core = FeaturesCore(settings.topic_prefix)
    stream = FeaturesStream(settings, core, settings.state_store())
    online_store = redis.Redis.from_url(
        settings.feature_store_redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )

    readiness = Readiness()

    async def stream_consuming() -> bool:
        return stream.ready

    async def online_store_reachable() -> bool:
        return bool(await asyncio.to_thread(online_store.ping))

    readiness.add("stream", stream_consuming)
    readiness.add("online_store", online_store_reachable)
    app = FastAPI(title="fraudstream features", version="0.1.0")
    add_health_routes(app, readiness)

    # Stop order: the HTTP server, then the stream (pushes and commits its open micro-batch),
    # then the offline writer (writes what the stream committed last).
    components: list[Component] = [HttpServer(app, settings.http_host, settings.http_port), stream]
    if settings.write_offline:
        components.append(offline_writer(settings, core.enriched_topic))
    try:
        return await ServiceRunner(components).run()
    finally:
        online_store.close()


def main() -> None:
    # The state is many long-lived small objects; the default thresholds would walk all of them
    # over and over at 10,000 events a second. Young collections stay frequent enough.
    gc.set_threshold(50_000, 50, 1000)
    settings = FeaturesSettings()
    configure_logging("features", settings.log_level, settings.log_json)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
