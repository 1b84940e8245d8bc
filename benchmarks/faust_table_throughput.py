"""How fast does faust-streaming go here? The smallest stateful app (count per key in a
changelog-backed table) against a peer doing the same in a batched confluent-kafka loop.

    uv run python benchmarks/faust_table_throughput.py --events 30000 --rounds 3

Needs the local platform (`make platform-up`). For each round and contender, N events are
written to a fresh 4-partition topic, the contender starts, and the clock runs from its first
counted event to its last (start-up excluded). Prints the median rate and the ratio to the peer.
The peer keeps the counts in a dict and commits offsets after each batch, without a changelog,
so it is the ceiling of a Python consumer here rather than an equal: the question is how much
of the features service's budget (5,000 transactions/s) faust's per-event machinery leaves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraudstream_common.kafka import produce_waiting

BROKER = "127.0.0.1:9092"
APP = Path(__file__).resolve().parent / "faust_app"


def create_topic(name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": BROKER})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result()
    while name not in admin.list_topics(timeout=10).topics:
        time.sleep(0.1)


def fill(topic: str, events: int, keys: int = 500) -> None:
    producer = Producer({"bootstrap.servers": BROKER, "linger.ms": 20, "enable.idempotence": True})
    for i in range(events):
        produce_waiting(producer, topic, b"x", f"k{i % keys}".encode())
    if producer.flush(60):
        raise SystemExit("could not write the input")


def faust_rate(guarantee: str, events: int, workdir: Path) -> float:
    run = uuid.uuid4().hex[:8]
    topic, done = f"bench-faust-{run}", f"bench-faust-{run}-done"
    create_topic(topic, 4)
    create_topic(done, 1)
    fill(topic, events)
    env = {
        **os.environ,
        "BENCH_APP_ID": f"bench-{run}",
        "BENCH_TOPIC": topic,
        "BENCH_DONE_TOPIC": done,
        "BENCH_GUARANTEE": guarantee,
        "BENCH_BROKER": BROKER,
        "PYTHONPATH": str(APP),
    }
    log = (workdir / f"faust-{guarantee}-{run}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "--datadir", str(workdir / run), "-A", "counter", "worker", "-l", "warn"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    reports = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": f"bench-{run}-reader",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
        }
    )
    reports.assign([TopicPartition(done, 0, 0)])
    first: float | None = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise SystemExit(f"faust worker exited with {worker.returncode}; see {workdir}")
            message = reports.poll(1.0)
            if message is None or message.error() is not None:
                continue
            counted = int(message.value() or b"0")
            if counted and first is None:
                first, first_count = time.monotonic(), counted
            if counted >= events and first is not None:
                return (counted - first_count) / max(time.monotonic() - first, 1e-3)
        raise SystemExit(f"faust {guarantee} did not finish; see {workdir}")
    finally:
        reports.close()
        worker.terminate()
        worker.wait(60)


def peer_rate(events: int) -> float:
    run = uuid.uuid4().hex[:8]
    topic = f"bench-peer-{run}"
    create_topic(topic, 4)
    fill(topic, events)
    consumer = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": f"bench-peer-{run}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    counts: Counter[bytes] = Counter()
    seen, first = 0, None
    while seen < events:
        batch = [m for m in consumer.consume(5000, timeout=0.2) if m.error() is None]
        if not batch:
            continue
        first = first or time.monotonic()
        for message in batch:
            counts[message.key() or b""] += 1
        seen += len(batch)
        consumer.commit(asynchronous=False)
    consumer.close()
    assert first is not None
    return events / max(time.monotonic() - first, 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(".platform/bench-faust")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"faust-streaming table throughput: {args.events} events x {args.rounds} rounds, {os.cpu_count()} cores")
    results: dict[str, list[float]] = {"faust exactly_once": [], "faust at_least_once": [], "peer confluent batch": []}
    for r in range(args.rounds):
        results["faust exactly_once"].append(faust_rate("exactly_once", args.events, workdir))
        results["faust at_least_once"].append(faust_rate("at_least_once", args.events, workdir))
        results["peer confluent batch"].append(peer_rate(args.events))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
    peer = statistics.median(results["peer confluent batch"])
    print(f"\n{'contender':<24}{'median events/s':>16}{'vs peer':>9}")
    for name, rates in results.items():
        median = statistics.median(rates)
        print(f"{name:<24}{median:>16,.0f}{median / peer:>9.3f}")


if __name__ == "__main__":
    main()
