"""fraudstream's stream runtime against Quix Streams on one topology: a count per key with its
state in a changelog, one output per event, exactly-once.

    uv run python benchmarks/stream_runtimes.py --events 100000 --rounds 3

Needs the local platform (`make platform-up`) and the network once (Quix Streams 3.28.1 is run
by `uv run --isolated`, in an environment of its own: it pins confluent-kafka below ours). For
each round and contender, N events over 10,000 keys are written to a fresh 4-partition topic,
the contender starts (ours in this process, Quix Streams in its own), and the clock runs from
its first counted event to its last commit (start-up excluded). Both outputs are then checked
alike: exactly N records, and for each key the counts 1..n once each (nothing lost, nothing
twice). Prints the medians and the ratio, and writes them to
`benchmarks/results/stream_runtimes.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraudstream_common.deadletter import Output
from fraudstream_common.kafka import produce_waiting
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.stream import Checkpoint, Source, StreamRuntime

BROKER = "127.0.0.1:9092"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "stream_runtimes.json"
KEYS = 10_000
PARTITIONS = 4
COMMIT_INTERVAL = 1.0


def create_topics(names: Sequence[str], compacted: Collection[str] = ()) -> None:
    admin = AdminClient({"bootstrap.servers": BROKER})
    topics = [
        NewTopic(
            n,
            num_partitions=PARTITIONS,
            replication_factor=1,
            config={"cleanup.policy": "compact"} if n in compacted else {},
        )
        for n in names
    ]
    for future in admin.create_topics(topics).values():
        future.result()
    while not all(n in admin.list_topics(timeout=10).topics for n in names):
        time.sleep(0.1)


def write_events(topic: str, events: int) -> Counter[str]:
    producer = Producer({"bootstrap.servers": BROKER, "linger.ms": 5, "enable.idempotence": True})
    keys: Counter[str] = Counter()
    for i in range(events):
        key = f"k{(i * 7919) % KEYS}"
        keys[key] += 1
        produce_waiting(producer, topic, b"x" * 40, key.encode())
    if producer.flush(60):
        raise SystemExit("events not acknowledged")
    return keys


class CountStage:
    """The count on fraudstream's runtime: the state a dict, its changelog one record per key
    changed in a checkpoint, co-partitioned with the input."""

    name = "bench-count"

    def __init__(self, source: str, sink: str, changelog: str, events: int) -> None:
        self._source, self._sink, self.changelog_topic = source, sink, changelog
        self._events = events
        self._counts: dict[bytes, int] = {}
        self._changed: dict[bytes, int] = {}
        self._outputs: list[Output] = []
        self._offsets: dict[Source, int] = {}
        self._opened = time.perf_counter()
        self.first: float | None = None
        self.done = threading.Event()
        self.committed_events = 0
        self._pending = 0

    @property
    def input_topics(self) -> Sequence[str]:
        return (self._source,)

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self._counts = {key: int(value) for key, value in changelog.items()}
        self._changed, self._outputs, self._offsets, self._pending = {}, [], {}, 0

    def add(self, message: Message) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        key = message.key() or b""
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        self._changed[key] = message.partition() or 0
        self._outputs.append(Output(self._sink, key, str(n).encode(), []))
        self._offsets[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        self._pending += 1

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing waits on the end of a partition."""

    def due(self) -> bool:
        return bool(self._pending) and (
            time.perf_counter() - self._opened >= COMMIT_INTERVAL
            or self.committed_events + self._pending >= self._events
        )

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return 5000

    def resumed(self) -> None:
        """Nothing waits on time."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        changelog = [
            Output(self.changelog_topic, key, str(self._counts[key]).encode(), [], partition)
            for key, partition in self._changed.items()
        ]
        return Checkpoint(self._outputs + changelog, dict(self._offsets))

    def store(self) -> None:
        """No store outside Kafka."""

    def committed(self) -> None:
        self.committed_events += self._pending
        self._changed, self._outputs, self._offsets, self._pending = {}, [], {}, 0
        self._opened = time.perf_counter()
        if self.committed_events >= self._events:
            self.done.set()


def run_ours(source: str, sink: str, events: int) -> float:
    changelog = f"{source}-changelog"
    create_topics([changelog], compacted=[changelog])
    stage = CountStage(source, sink, changelog, events)
    runtime = StreamRuntime(
        ServiceSettings(kafka_bootstrap_servers=BROKER),
        stage,
        group_id=f"{source}-ours",
        transactional_id=f"{source}-ours",
        max_messages=5000,
    )
    thread = threading.Thread(target=asyncio.run, args=(runtime.run(),))
    thread.start()
    if not stage.done.wait(600):
        raise SystemExit("our runtime did not count every event in 600 s")
    seconds = time.perf_counter() - (stage.first or 0.0)
    asyncio.run(runtime.stop())
    thread.join(60)
    return seconds


def run_quix(source: str, sink: str, events: int) -> float:
    command = [
        "uv", "run", "--isolated", "--no-project", "--with", "quixstreams==3.28.1", "python",
        str(HERE / "quix_app" / "counter.py"),
        "--broker", BROKER, "--source", source, "--sink", sink, "--events", str(events),
        "--commit-interval", str(COMMIT_INTERVAL),
    ]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def check_output(sink: str, keys: Counter[str], events: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": f"check-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(sink, p, 0) for p in range(PARTITIONS)])
    seen: dict[str, list[int]] = {}
    ends = 0
    while ends < PARTITIONS:
        for message in consumer.consume(10000, timeout=2.0):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends += 1
                continue
            seen.setdefault((message.key() or b"").decode(), []).append(int(message.value() or b"0"))
    consumer.close()
    total = sum(len(counts) for counts in seen.values())
    if total != events:
        raise SystemExit(f"{sink}: {total} outputs for {events} events")
    wrong = [key for key, n in keys.items() if sorted(seen.get(key, [])) != list(range(1, n + 1))]
    if wrong:
        raise SystemExit(f"{sink}: {len(wrong)} keys counted wrong, e.g. {wrong[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"fraudstream": [], "quixstreams": []}
    for round_ in range(1, args.rounds + 1):
        for name, run in (("fraudstream", run_ours), ("quixstreams", run_quix)):
            source = f"bench-count-{uuid.uuid4().hex[:8]}"
            sink = f"{source}-out"
            create_topics([source, sink])
            keys = write_events(source, args.events)
            seconds = run(source, sink, args.events)
            check_output(sink, keys, args.events)
            rates[name].append(args.events / seconds)
            print(f"round {round_}: {name} {args.events / seconds:,.0f} events/s (output checked)", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    result = {
        "what": "count per key with a changelog, one output per event, exactly-once, 4 partitions, one process",
        "command": f"uv run python benchmarks/stream_runtimes.py --events {args.events} --rounds {args.rounds}",
        "events": args.events,
        "rounds": args.rounds,
        "events_per_second_median": {name: round(rate) for name, rate in medians.items()},
        "events_per_second_rounds": {name: [round(r) for r in values] for name, values in rates.items()},
        "ratio_fraudstream_to_quixstreams": round(medians["fraudstream"] / medians["quixstreams"], 2),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
