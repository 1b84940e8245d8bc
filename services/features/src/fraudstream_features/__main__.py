"""Run the features service: `python -m fraudstream_features` (or `fraudstream-features`).

Two stages, each one exactly-once stream in its own consumer group, so that any number of
replicas share the partitions: customers (customers.py) and terminals (terminals.py). A process
runs the stages its settings name (`stages`): both, or one, with the other in another process."""

from __future__ import annotations

import asyncio
import gc
import sys

import redis
from fastapi import FastAPI

from fraudstream_common.health import Check, Readiness
from fraudstream_common.http import HttpServer, add_health_routes
from fraudstream_common.kafka import partition_counts
from fraudstream_common.lifecycle import Component, ServiceRunner
from fraudstream_common.logging import configure_logging
from fraudstream_common.stream import StreamRuntime
from fraudstream_common.topics import Topic, topic_name
from fraudstream_features.customers import CustomerStage
from fraudstream_features.offline import offline_writer
from fraudstream_features.settings import FeaturesSettings
from fraudstream_features.terminals import TerminalStage

GROUP_ID = "features"


def streams(settings: FeaturesSettings) -> list[StreamRuntime]:
    store = settings.state_store()
    partitions = partition_counts(
        settings,
        [topic_name(t, settings.topic_prefix) for t in (Topic.TRANSACTIONS, Topic.LABELS, Topic.FEATURES_BY_TERMINAL)],
    )
    stages: list[CustomerStage | TerminalStage] = []
    if "customers" in settings.stages:
        stages.append(CustomerStage(settings, store, partitions))
    if "terminals" in settings.stages:
        stages.append(TerminalStage(settings, store, partitions))
    return [
        StreamRuntime(
            settings,
            stage,
            group_id=f"{GROUP_ID}-{stage.name}",
            transactional_id=f"features-{stage.name}-{settings.instance_id}",
            max_messages=settings.batch_max_messages,
            poll_timeout_seconds=(
                settings.poll_timeout_seconds
                if isinstance(stage, CustomerStage)
                else settings.terminal_poll_timeout_seconds
            ),
            store_retry_max_seconds=settings.redis_retry_max_seconds,
            # The customer stage's event-time order waits on its partitions' ends (merge.py).
            end_within_seconds=settings.partition_end_seconds if isinstance(stage, CustomerStage) else None,
            overlap_commits=True,
        )
        for stage in stages
    ]


async def serve(settings: FeaturesSettings) -> int:
    stages = streams(settings)
    online_store = redis.Redis.from_url(
        settings.feature_store_redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    readiness = Readiness()
    for stage in stages:
        readiness.add(stage.name, _consuming(stage))

    async def online_store_reachable() -> bool:
        return bool(await asyncio.to_thread(online_store.ping))

    readiness.add("online_store", online_store_reachable)
    app = FastAPI(title="fraudstream features", version="0.1.0")
    add_health_routes(app, readiness)

    # Stop order: the HTTP server, the customer stage (commits what it forwarded), the terminal
    # stage (commits what it enriched), then the offline writer (writes what was committed last).
    components: list[Component] = [HttpServer(app, settings.http_host, settings.http_port), *stages]
    if settings.write_offline:
        components.append(offline_writer(settings, topic_name(Topic.TRANSACTIONS_ENRICHED, settings.topic_prefix)))
    try:
        return await ServiceRunner(components).run()
    finally:
        online_store.close()


def _consuming(stage: StreamRuntime) -> Check:
    async def check() -> bool:
        return stage.ready

    return check


def main() -> None:
    # The state is many long-lived small objects; the default thresholds would walk all of them
    # over and over at 10,000 events a second. Young collections stay frequent enough.
    gc.set_threshold(50_000, 50, 1000)
    settings = FeaturesSettings()
    configure_logging("features", settings.log_level, settings.log_json)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
