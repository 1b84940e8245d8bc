"""Run the monitor service: `python -m fraudstream_monitor` (or `fraudstream-monitor`).

It watches `predictions` and `labels`, raises alerts on `monitor.alerts`, asks for new models
on `retrain.requests`, and serves the ops console, /healthz, /readyz and /metrics.

Two stages, each a stream in its own consumer group, so that any number of replicas share the
work: counting (counting.py) splits the input partitions among them; the judge (judge.py)
merges what they counted and runs in one replica at a time, the one whose console shows it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import cast

import redis.asyncio as aioredis

from fraudstream_common.apikeys import ApiKeys
from fraudstream_common.audit import AuditLog, AuditTrail
from fraudstream_common.health import Readiness
from fraudstream_common.http import HttpServer
from fraudstream_common.kafka import AsyncProducer, partition_counts, producer_config
from fraudstream_common.lifecycle import Component, ServiceRunner
from fraudstream_common.logging import configure_logging
from fraudstream_common.topics import Topic, topic_name
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.counting import CountingStage, Upstream, counting_stream
from fraudstream_monitor.http import PauseFlag, create_app
from fraudstream_monitor.judge import JudgeStage, judge_stream
from fraudstream_monitor.operations import Operations
from fraudstream_monitor.sent_requests import SentRequestsFollower
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_monitor.versions import PublishedFollower, VersionCatalogue
from fraudstream_registry.publisher import EventPublisher
from fraudstream_registry.registry import Registry


async def serve(settings: MonitorSettings) -> int:
    prefix = settings.topic_prefix
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    catalogue = VersionCatalogue(settings.mlflow_tracking_uri)
    predictions_topic = topic_name(Topic.PREDICTIONS, prefix)
    partials_topic = topic_name(Topic.MONITOR_PARTIALS, prefix)
    enriched_topic = topic_name(Topic.TRANSACTIONS_ENRICHED, prefix)
    by_terminal_topic = topic_name(Topic.FEATURES_BY_TERMINAL, prefix)
    partitions = partition_counts(
        settings,
        [predictions_topic, topic_name(Topic.LABELS, prefix), partials_topic, enriched_topic, by_terminal_topic],
    )
    core = MonitorCore(settings, catalogue, partitions[predictions_topic])
    pause_flag = PauseFlag(client, f"{prefix}fraudstream:monitor:{settings.registered_model}:paused")
    core.pause(await pause_flag.read())
    publisher = EventPublisher(
        settings, topic_name(Topic.MODELS_PUBLISHED, prefix), client_id=f"{settings.instance_id}-published"
    )
    operations = Operations(
        Registry(settings.mlflow_tracking_uri, settings.registered_model, settings.mlflow_experiment), publisher
    )
    requests = AsyncProducer(producer_config(settings, client_id=f"{settings.instance_id}-operator"))
    audit = AuditLog(requests, topic_name(Topic.AUDIT, prefix), origin=f"monitor ({settings.instance_id})")
    trail = AuditTrail(settings, client_id=f"{settings.instance_id}-audit")
    follower = PublishedFollower(settings, catalogue, topic_name(Topic.MODELS_PUBLISHED, prefix))
    sent = SentRequestsFollower(settings, core, topic_name(Topic.RETRAIN_REQUESTS, prefix))
    deadletter_topic = topic_name(Topic.DEADLETTER, prefix)
    counting = counting_stream(
        settings,
        CountingStage(
            settings,
            catalogue,
            predictions_topic=predictions_topic,
            labels_topic=topic_name(Topic.LABELS, prefix),
            partials_topic=partials_topic,
            deadletter_topic=deadletter_topic,
            catalogue_ready=follower.wait_ready,
            upstream=Upstream(partitions[enriched_topic], partitions[by_terminal_topic]),
        ),
    )
    judge = judge_stream(
        settings,
        JudgeStage(
            settings,
            core,
            partials_topic=partials_topic,
            alerts_topic=topic_name(Topic.MONITOR_ALERTS, prefix),
            requests_topic=topic_name(Topic.RETRAIN_REQUESTS, prefix),
            deadletter_topic=deadletter_topic,
            requests_read=sent.wait_ready,
        ),
    )
    keys = (
        ApiKeys(
            client,
            secret=settings.api_key_secret.get_secret_value(),
            rate_per_second=50.0,
            burst=100.0,
            namespace=prefix,
        )
        if settings.auth_enabled
        else None
    )

    readiness = Readiness()

    async def consuming() -> bool:
        return counting.ready and follower.ready and sent.ready

    async def redis_reachable() -> bool:
        return bool(await asyncio.wait_for(cast(Awaitable[bool], client.ping()), 2.0))

    readiness.add("kafka", consuming)
    readiness.add("redis", redis_reachable)
    app = create_app(
        core,
        catalogue,
        operations,
        requests,
        topic_name(Topic.RETRAIN_REQUESTS, prefix),
        pause_flag,
        keys,
        readiness,
        audit,
        trail,
    )

    # Stop order: the console (no new admin actions), the key check's reports, the stages
    # (each sends its outputs and commits), the followers of published models, sent requests and
    # the audit trail; then the producers flush.
    components: list[Component] = [HttpServer(app, settings.http_host, settings.http_port)]
    if keys is not None:
        components.append(keys)
    components += [counting, judge, follower, sent, trail]
    try:
        return await ServiceRunner(components).run()
    finally:
        requests.close()
        publisher.close()
        await client.aclose()


def main() -> None:
    settings = MonitorSettings()
    configure_logging("monitor", settings.log_level, settings.log_json)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
