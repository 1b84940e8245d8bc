"""Ingest throughput from transactions.raw to transactions, against the running local platform.

    make bench                # or: uv run python benchmarks/ingest_throughput.py --events 200000 --rounds 3

Each round writes N simulated raw events (protobuf, unique, valid) to fresh topics, then lets
each contender drain them:
- ingest, exactly-once (the default: validation, Redis dedupe, Kafka transactions),
- ingest, at-least-once (validation, Redis dedupe, flush then commit),
- peer: a bare Python consume-produce loop with the same client settings, no validation and
  no dedupe, committing after each flushed batch: the ceiling for a Python service here.
Throughput is output messages / (last output timestamp - first output timestamp), so process
start-up is not counted. Prints the median of the rounds and the ratio to the peer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_measure import delete_topics, output_rate

from fraudstream_cli.platform.kafka import KafkaBroker
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.kafka import HeaderList, consumer_config, produce_waiting, producer_config
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import Topic, topic_name
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from fraudstream_simulator.sinks import encode_transaction_protobuf, epoch_seconds

PLATFORM = PlatformSettings()
PROTOBUF_HEADERS: HeaderList = [("content-type", b"application/x-protobuf")]


def raw_events(count: int) -> list[tuple[bytes, bytes]]:
    days = max(10, count // 3000 + 5)
    tx = simulate(SimulationConfig(n_customers=2000, n_terminals=4000, nb_days=days)).transactions.iloc[:count]
    if len(tx) < count:
        raise SystemExit(f"simulation too small: {len(tx)} < {count}")
    seconds = epoch_seconds(tx["event_time"]).tolist()
    return [
        (c.encode(), encode_transaction_protobuf(t, c, term, a, "EUR", s))
        for t, c, term, a, s in zip(
            tx["transaction_id"], tx["customer_id"], tx["terminal_id"], tx["amount"], seconds, strict=True
        )
    ]


def fill(topic: str, events: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": PLATFORM.kafka_bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for key, value in events:
        produce_waiting(producer, topic, value, key, PROTOBUF_HEADERS)
    if producer.flush(120):
        raise SystemExit("could not write the benchmark input")


def run_ingest(prefix: str, guarantee: str, batch: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": PLATFORM.kafka_bootstrap,
        "FRAUDSTREAM_REDIS_URL": PLATFORM.redis_url,
        "FRAUDSTREAM_TOPIC_PREFIX": prefix,
        "FRAUDSTREAM_HTTP_PORT": "18081",
        "FRAUDSTREAM_GRPC_PORT": "18082",
        "FRAUDSTREAM_INSTANCE_ID": f"bench-{guarantee}",
        "FRAUDSTREAM_PROCESSING_GUARANTEE": guarantee,
        "FRAUDSTREAM_BATCH_MAX_MESSAGES": str(batch),
        "FRAUDSTREAM_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fraudstream_ingest"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def run_peer(prefix: str, source: str, target: str, expected: int, batch: int) -> None:
    """The pass-through peer, in this process: consume, produce unchanged, flush, commit."""
    settings = ServiceSettings(topic_prefix=prefix)
    consumer = Consumer(consumer_config(settings, group_id="bench-peer", client_id="bench-peer"))
    producer = Producer(producer_config(settings, client_id="bench-peer"))
    consumer.subscribe([source])
    seen = 0
    while seen < expected:
        messages = [m for m in consumer.consume(batch, timeout=0.05) if m.error() is None]
        if not messages:
            continue
        for m in messages:
            producer.produce(target, m.value(), m.key(), headers=m.headers())
        producer.flush(60)
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            offsets[(m.topic(), m.partition())] = m.offset() + 1  # type: ignore[index,operator]
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        seen += len(messages)
    consumer.close()


def one_round(events: list[tuple[bytes, bytes]], batch: int, workdir: Path) -> dict[str, float]:
    rates: dict[str, float] = {}
    contenders: list[tuple[str, Callable[[str], None]]] = []

    def ingest_with(guarantee: str) -> Callable[[str], None]:
        def run(prefix: str) -> None:
            process = run_ingest(prefix, guarantee, batch, workdir / f"ingest-{guarantee}-{prefix}.log")
            try:
                rates[f"ingest {guarantee}"] = output_rate(topic_name(Topic.TRANSACTIONS, prefix), len(events), 600)
            finally:
                process.terminate()
                process.wait(60)

        return run

    def peer(prefix: str) -> None:
        target = f"{prefix}bench.passthrough"
        admin = AdminClient({"bootstrap.servers": PLATFORM.kafka_bootstrap})
        admin.create_topics([NewTopic(target, num_partitions=4, replication_factor=1)])[target].result()
        while target not in admin.list_topics(timeout=10).topics:
            time.sleep(0.1)
        run_peer(prefix, topic_name(Topic.TRANSACTIONS_RAW, prefix), target, len(events), batch)
        rates["peer pass-through"] = output_rate(target, len(events), 600)

    contenders = [
        ("ingest exactly-once", ingest_with("exactly-once")),
        ("ingest at-least-once", ingest_with("at-least-once")),
        ("peer", peer),
    ]
    for _name, run in contenders:
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        KafkaBroker(PlatformSettings(topic_prefix=prefix)).ensure_topics()
        fill(topic_name(Topic.TRANSACTIONS_RAW, prefix), events)
        run(prefix)
        delete_topics(prefix)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    workdir = Path(PLATFORM.home) / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    events = raw_events(args.events)
    print(
        f"ingest throughput: {args.events} raw events x {args.rounds} rounds, batch {args.batch}, "
        f"{os.cpu_count()} cores (broker, Redis and the contender share them)"
    )
    rounds = []
    for r in range(args.rounds):
        rates = one_round(events, args.batch, workdir)
        rounds.append(rates)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()), flush=True)
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    peer = medians["peer pass-through"]
    print(f"\n{'contender':<26}{'median events/s':>16}{'vs peer':>9}")
    for name, rate in medians.items():
        print(f"{name:<26}{rate:>16,.0f}{rate / peer:>9.2f}")


if __name__ == "__main__":
    main()
