"""The smallest stateful faust-streaming app: count events per key in a changelog-backed
table. Run by benchmarks/faust_table_throughput.py; its guarantee comes from the environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import faust

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ.get('BENCH_BROKER', '127.0.0.1:9092')}",
    store="memory://",
    processing_guarantee=os.environ["BENCH_GUARANTEE"],
    topic_partitions=4,
    web_enabled=False,
)
source = app.topic(os.environ["BENCH_TOPIC"], partitions=4, value_serializer="raw", key_serializer="raw")
counts = app.Table(f"{os.environ['BENCH_APP_ID']}-counts", default=int, partitions=4)
done = app.topic(os.environ["BENCH_DONE_TOPIC"], partitions=1, value_serializer="raw")


@app.agent(source)
async def count(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for key, _value in stream.items():
        counts[key] += 1
        yield None


@app.timer(0.25)  # type: ignore[untyped-decorator]  # faust ships no types for its decorators
async def report() -> None:
    await done.send(value=str(sum(counts.values())).encode())
