"""Features service: throughput through one process running both stages, and freshness at
paced rates.

    uv run python benchmarks/features_throughput.py --transactions 100000 --rounds 3 --rates 2000 5000 --seconds 30

Throughput: N simulated transactions, with their labels interleaved in event time (as the label
feed writes them), are written to fresh `transactions` and `labels` topics first; then one
process (`python -m fraudstream_features`, both stages, exactly-once, pushes to the online
store, offline parts) drains them. Transactions per second from the moment it is ready
(partitions assigned, state restored) to its last enriched output's timestamp, so process
start-up is not counted. Peer, in the same round: the same feature state rolled over the same
events in this process, without Kafka or a store: the ceiling of the computation; the ratio is
what the I/O costs. Freshness: at each of `--rates`, the simulator writes that many
transactions per second (plus their labels) for `--seconds` while the process runs. For each
transaction, from its input message's timestamp (set when it was produced; the service copies
it into `input_time`) to its enriched output being readable (read_committed). A stage commits
an enriched output only after the online push holding its state succeeded, so this is an upper
bound of "produced -> readable from Redis". Prints p50 and p99 of each round and their medians
over the rounds, and writes them to benchmarks/results/features_throughput.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka_measure import delete_topics, output_rate
from results_file import write_results

from fraudstream_cli.backfill import label_events, transaction_events
from fraudstream_cli.platform.kafka import KafkaBroker
from fraudstream_cli.platform.processes import port_open
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.features.history import replay
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.timestamps import seconds_of
from fraudstream_common.topics import Topic, topic_name
from fraudstream_feature_store.store import apply_repository
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import Pacing, replay_to_kafka

PLATFORM = PlatformSettings()


def world(transactions: int, days: int) -> Simulation:
    """The handbook's population (5,000 customers, 10,000 terminals), its first `transactions`."""
    full = simulate(SimulationConfig(nb_days=days))
    if len(full.transactions) < transactions:
        raise SystemExit(f"simulation too small: {len(full.transactions)} < {transactions}")
    tx = full.transactions.iloc[:transactions]
    labels = full.labels[full.labels["transaction_id"].isin(set(tx["transaction_id"]))]
    return dataclasses.replace(full, transactions=tx, labels=labels)


def start_worker(prefix: str, directory: Path) -> subprocess.Popen[bytes]:
    apply_repository(PLATFORM.feature_store_redis_url, directory / "registry.db", directory / "offline")
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": PLATFORM.kafka_bootstrap,
        "FRAUDSTREAM_TOPIC_PREFIX": prefix,
        "FRAUDSTREAM_FEATURE_STORE_REDIS_URL": PLATFORM.feature_store_redis_url,
        "FRAUDSTREAM_FEATURE_REGISTRY": str(directory / "registry.db"),
        "FRAUDSTREAM_FEATURE_OFFLINE_DIR": str(directory / "offline"),
        "FRAUDSTREAM_HTTP_PORT": "18082",
        "FRAUDSTREAM_INSTANCE_ID": f"bench-{prefix}",
        "FRAUDSTREAM_LOG_LEVEL": "WARNING",
    }
    log = (directory / "features.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "fraudstream_features"], env=env, stdout=log, stderr=log)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def settings_for(prefix: str) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=prefix)


def fresh_topics() -> str:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    KafkaBroker(PlatformSettings(topic_prefix=prefix)).ensure_topics()
    return prefix


def throughput(simulation: Simulation, directory: Path) -> float:
    prefix = fresh_topics()
    replay_to_kafka(simulation, settings_for(prefix), pacing=Pacing.fast(), transactions_topic=Topic.TRANSACTIONS)
    worker = start_worker(prefix, directory)
    try:
        wait_ready(18082)
        ready_at = time.time()
        return output_rate(
            topic_name(Topic.TRANSACTIONS_ENRICHED, prefix), len(simulation.transactions), 900, since=ready_at
        )
    finally:
        stop(worker)
        delete_topics(prefix)


def peer(simulation: Simulation) -> float:
    transactions, labels = transaction_events(simulation.transactions), label_events(simulation.labels)
    started = time.perf_counter()
    count = sum(1 for _ in replay(transactions, labels))
    return count / (time.perf_counter() - started)


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the features worker did not become ready")


def freshness(simulation: Simulation, rate: float, directory: Path) -> list[float]:
    """Seconds from each transaction's input message timestamp (carried on as `input_time`) to
    its enriched output arriving here."""
    prefix = fresh_topics()
    worker = start_worker(prefix, directory)
    enriched = topic_name(Topic.TRANSACTIONS_ENRICHED, prefix)
    delays: list[float] = []

    def read() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": PLATFORM.kafka_bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        consumer.assign([TopicPartition(enriched, p, 0) for p in range(4)])
        deadline = time.monotonic() + 600
        while len(delays) < len(simulation.transactions) and time.monotonic() < deadline:
            for message in consumer.consume(5000, timeout=0.02):
                now = time.time()
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise SystemExit(str(error))
                    continue
                input_time = EnrichedTransaction.FromString(message.value() or b"").input_time
                delays.append(now - seconds_of(input_time))
        consumer.close()

    reader = threading.Thread(target=read, name="freshness-reader")
    try:
        wait_ready(18082)
        reader.start()
        replay_to_kafka(
            simulation, settings_for(prefix), pacing=Pacing(rate=rate), transactions_topic=Topic.TRANSACTIONS
        )
        reader.join()
    finally:
        stop(worker)
        delete_topics(prefix)
    missing = len(simulation.transactions) - len(delays)
    if missing:
        raise SystemExit(f"{missing} transactions never came out enriched")
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", type=float, nargs="+", default=[2000.0, 5000.0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    for port, name in ((PLATFORM.kafka_port, "Kafka"), (PLATFORM.redis_port, "Redis")):
        if not port_open(port):
            raise SystemExit(f"{name} is not running: start the platform with `make platform-up`")
    simulation = world(args.transactions, args.days)
    print(
        f"features: {len(simulation.transactions):,} transactions and {len(simulation.labels):,} labels "
        f"x {args.rounds} rounds, {os.cpu_count()} cores (broker, Redis and the worker share them)",
        flush=True,
    )
    rounds: list[tuple[float, float]] = []
    freshness_at: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            directory = Path(scratch) / f"round-{r}"
            directory.mkdir()
            service_rate, peer_rate = throughput(simulation, directory), peer(simulation)
            rounds.append((service_rate, peer_rate))
            print(f"round {r + 1}: worker {service_rate:,.0f} tx/s, in-process peer {peer_rate:,.0f} tx/s", flush=True)
        service = statistics.median(r[0] for r in rounds)
        ceiling = statistics.median(r[1] for r in rounds)
        print(f"\nthroughput, median of {args.rounds}: worker {service:,.0f} transactions/s")
        print(f"peer (same state rolled in-process, no I/O): {ceiling:,.0f}/s; ratio {service / ceiling:.2f}")
        for rate in args.rates:
            paced = world(int(rate * args.seconds), args.days)
            percentiles = []
            for r in range(args.rounds):
                directory = Path(scratch) / f"freshness-{rate:.0f}-{r}"
                directory.mkdir()
                delays = np.asarray(freshness(paced, rate, directory))
                p50, p99 = np.percentile(delays, [50, 99])
                percentiles.append({"p50_ms": float(p50) * 1000, "p99_ms": float(p99) * 1000})
                print(f"freshness at {rate:,.0f}/s, round {r + 1}: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
            medians = {key: statistics.median(p[key] for p in percentiles) for key in ("p50_ms", "p99_ms")}
            freshness_at[f"{rate:.0f}"] = {"transactions": len(paced.transactions), "rounds": percentiles, **medians}
            print(
                f"freshness at {rate:,.0f} tx/s for {args.seconds:.0f} s ({len(paced.transactions):,} transactions, "
                f"their labels interleaved), median of {args.rounds}: "
                f"p50 {medians['p50_ms']:.0f} ms, p99 {medians['p99_ms']:.0f} ms",
                flush=True,
            )
    write_results(
        "features_throughput",
        {
            "transactions": len(simulation.transactions),
            "labels": len(simulation.labels),
            "cores": os.cpu_count(),
            "rounds": [
                {"service_per_second": service_rate, "in_process_peer_per_second": peer_rate}
                for service_rate, peer_rate in rounds
            ],
            "medians": {
                "service_per_second": service,
                "in_process_peer_per_second": ceiling,
                "ratio_to_peer": service / ceiling,
            },
            "freshness_seconds": args.seconds,
            "freshness_per_rate": freshness_at,
        },
    )


if __name__ == "__main__":
    main()
