"""Run the ingest service: `python -m fraudstream_ingest` (or `fraudstream-ingest`)."""

from __future__ import annotations

import asyncio
import sys

import redis
import redis.asyncio as aioredis

from fraudstream_common.apikeys import api_keys
from fraudstream_common.health import Readiness
from fraudstream_common.http import HttpServer
from fraudstream_common.kafka import AsyncProducer, producer_config
from fraudstream_common.lifecycle import ServiceRunner
from fraudstream_common.logging import configure_logging
from fraudstream_ingest.core import IngestCore
from fraudstream_ingest.dedupe import Deduplicator
from fraudstream_ingest.grpc_server import grpc_server
from fraudstream_ingest.http import create_app
from fraudstream_ingest.settings import IngestSettings
from fraudstream_ingest.stream import ingest_stream


class SharedClients:
    """Closed last, after every component that uses them has stopped."""

    name = "clients"

    def __init__(self, raw_producer: AsyncProducer, redis_client: redis.Redis, keys_client: aioredis.Redis) -> None:
        self._raw_producer = raw_producer
        self._redis = redis_client
        self._keys_client = keys_client
        self._closed = asyncio.Event()

    async def run(self) -> None:
        await self._closed.wait()

    async def stop(self) -> None:
        await asyncio.to_thread(self._raw_producer.close)
        self._redis.close()
        await self._keys_client.aclose()
        self._closed.set()


async def serve(settings: IngestSettings) -> int:
    redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    raw_producer = AsyncProducer(producer_config(settings, client_id=f"{settings.instance_id}-http"))
    deduplicator = Deduplicator(
        redis_client,
        settings.dedupe_ttl_seconds,
        key_prefix=f"{settings.topic_prefix}fraudstream:ingest:seen:",
    )
    core = IngestCore(settings, deduplicator, raw_producer)
    keys_client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    keys = api_keys(keys_client, settings, namespace=settings.topic_prefix)
    stream = ingest_stream(settings, core)

    readiness = Readiness()
    readiness.add("redis", lambda: asyncio.to_thread(deduplicator.ping))
    readiness.add("kafka", lambda: asyncio.to_thread(raw_producer.reachable))

    async def stream_consuming() -> bool:
        return stream.ready

    readiness.add("stream", stream_consuming)

    http = HttpServer(create_app(core, keys, readiness), settings.http_host, settings.http_port)
    grpc = grpc_server(core, keys, readiness)
    # Stop order: transports first (no new calls), the key check's reports, then the stream
    # (finishes and commits its batch), then the clients they share.
    key_reports = [keys] if keys is not None else []
    runner = ServiceRunner([http, grpc, *key_reports, stream, SharedClients(raw_producer, redis_client, keys_client)])
    return await runner.run()


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level, settings.log_json)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
