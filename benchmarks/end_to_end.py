"""End to end: transactions per second from `transactions.raw` to `predictions` with the
services on that path running, the latency from a transaction's event to its prediction at a
fixed rate below it, and the CPU time each stage spends per transaction; with one and with two
replicas of each scalable stage (ingest, features, inference).

    uv run python benchmarks/end_to_end.py --rounds 3 --transactions 60000 --rate 2000 --seconds 30

Each configuration of each round starts on a fresh topic prefix, its streams of `--partitions`
partitions (by default the most replicas measured, as a deployment sizes them for the replicas
it runs; each partition a checkpoint writes costs the broker a request and a transaction
verification), with a model the trainer trained and published (published_model.py); then
ingest, features, inference (stream scoring) and the monitor run as processes, started as
`fraudstream up --replicas` starts them (replica N with its own instance id), except that each
features replica runs its two stages as two processes (`FRAUDSTREAM_STAGES`;
`--features-processes one` runs them in one, as `fraudstream up` does). The trainer service is
not started: nothing it does is on a transaction's path.

- Throughput: once every process is ready, the simulator writes the first `--transactions`
  transactions of the handbook's world (5,000 customers, 10,000 terminals), and the labels
  reported before the last of them, to `transactions.raw` as fast as it can. The rate is that
  of predictions over the middle 80% of them, by when they could be read, so that neither the
  first batches nor the drain count.
- Latency: once every stage has committed all it read (the monitor works off the flood last),
  `--seconds` more of the same world at `--rate` transactions per second. For each
  transaction, from its `transactions.raw` message's timestamp (the simulator's produce) to its
  prediction being readable: read by a read_committed consumer, after inference committed it
  (`TopicReader`); and each hop on the way, by the timestamps of its messages on
  `transactions` (ingest), `features.by-terminal` (the features' customer stage) and
  `transactions.enriched` (their terminal stage), each of which its producer commits before the
  next stage can read it. Only `predictions` is read while transactions flow; the other topics
  are read afterwards. The
  same again (`steady_*`) for the transactions written from STEADY_AFTER_SECONDS into the
  phase on, after the hold that a resumed replay starts with.
- Live latency (`live_*`): once every stage has committed again, `--seconds` more of the world
  at `--rate`, their event times moved to the wall clock (`live`): the same hops, and the CPU
  per transaction. The replayed phase's world time runs about 18,000 times as fast as the
  clock, this one's as the clock, as in a deployment.
- Light live latency (`light_*`): the same at `--light-rate` (20 a second by default) for
  `--light-seconds`, as a small deployment sees it: few events a second over many partitions,
  which the features' event-time order handles differently from a busy stream.
- CPU: each process's user and system time, per transaction, by service (its replicas
  together); the broker's, Redis's and this process's (the simulator) apart. Over the
  throughput phase (throughput per CPU-second counts the services only), and over the latency
  phase: at a fixed rate, checkpoints are smaller and each transaction carries more of their cost.
- In the latency phase, from the services' /metrics: checkpoints per second and the mean time
  to commit one, per stage; the mean time an event waited in each features stage for
  event-time order; transactions the features stages applied late or early (out of
  event-time order: their vectors may differ from the backfill's), so that a latency bought
  with disorder shows.
- Redis's append-only rewrites that ran during each phase (`redis_aof_rewrites_*`, summed over
  the rounds): each forks Redis and writes its data set on the cores the services share, and
  the phase's latencies show it.

The world's times are its own: at 2,000 transactions/s a simulated hour passes in about 0.2 s,
so the monitor closes and judges hours about 18,000 times as often as live traffic makes it.

The two-replica figures stand beside the one-replica ones of the same round. Writes
`benchmarks/results/end_to_end.json` and prints a table of the medians over the rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform as host
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import redis
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from kafka_measure import delete_topics
from published_model import PublishedModel, publish_model

from fraudstream_cli.platform.processes import ManagedProcess
from fraudstream_cli.platform.services import SERVICES, LocalService
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import Topic, topic_name
from fraudstream_features.records import KIND_TRANSACTION, record_kind
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import Pacing, replay_to_kafka

PLATFORM = PlatformSettings()
RESULTS = Path(__file__).parent / "results" / "end_to_end.json"
PHASES = ("throughput", "latency", "live", "light")
ON_THE_PATH = ("ingest", "features", "inference", "monitor")
SCALABLE = ("ingest", "features", "inference")
# The model's own history ends before the streamed world (2018-04-01 on) begins: the monitor
# judges only predictions after its reference's period, as it would live traffic.
MODEL_HISTORY = SimulationConfig(
    n_customers=600, n_terminals=1200, nb_days=50, start_date=datetime(2018, 1, 1, tzinfo=UTC)
)
# The latency phase is a replay resumed after every stage went idle: the features' customer
# stage holds its first second (FRAUDSTREAM_PARTITION_IDLE_HOLD_SECONDS) while partitions that
# carry little at this point of the world (labels) are quiet, and the backlog of that second
# drains in the next. The steady figures leave out the transactions written before this.
STEADY_AFTER_SECONDS = 5.0
# The handbook's world makes about 9,700 transactions a day.
TRANSACTIONS_A_DAY = 9000


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free now and not given before in this run: the OS may hand a port just closed out
    again, and a second service given it fails to start."""
    import socket

    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


@dataclasses.dataclass
class Running:
    service: str
    process: subprocess.Popen[bytes]
    http_port: int

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False

    def behind(self, ignoring: Collection[str] = ()) -> float:
        """Messages its stages (but those `ignoring`) have not committed yet, from /metrics, less
        two a partition: the lag counts the commit marker that ends a transactional topic, and
        partitions of `transactions.enriched` were seen to end in two control records with every
        record consumed (in runs with two replicas; what wrote the second is not known)."""
        totals = {"lag": 0.0, "assigned": 0.0}
        for name, value in self.samples().items():
            if any(f'stage="{stage}"' in name for stage in ignoring):
                continue
            for total, metric in (("lag", "consumer_lag_messages"), ("assigned", "assigned_partitions")):
                if name.startswith(f"fraudstream_stream_{metric}{{"):
                    totals[total] += value
        return max(0.0, totals["lag"] - 2 * totals["assigned"])

    def samples(self) -> dict[str, float]:
        """Its /metrics, as {name with labels: value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        found = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found


# The counters read around the latency phase: metric -> what it counts, per stage.
STREAM_COUNTERS = {
    "fraudstream_stream_commit_duration_seconds_count": "checkpoints",
    "fraudstream_stream_commit_duration_seconds_sum": "commit_seconds",
    "fraudstream_features_late_events_total": "late_events",
    "fraudstream_features_early_events_total": "early_events",
    "fraudstream_features_behind_order_events_total": "behind_order_events",
    "fraudstream_features_vectors_missing_label_total": "vectors_missing_label",
    "fraudstream_features_event_time_wait_seconds_count": "order_waits",
    "fraudstream_features_event_time_wait_seconds_sum": "order_wait_seconds",
}


def stream_counters(running: list[Running]) -> dict[tuple[str, str], float]:
    """Over every replica, {(stage, what): total} of STREAM_COUNTERS: checkpoints committed and
    the seconds their commits took; events the features stages waited for event-time order and
    for how long, and those released late or early (late events carry no stage: "features")."""
    totals: dict[tuple[str, str], float] = {}
    for r in running:
        for name, value in r.samples().items():
            base, _, labels = name.partition("{")
            what = STREAM_COUNTERS.get(base)
            if what is not None:
                stage = labels.split('stage="', 1)[1].split('"', 1)[0] if 'stage="' in labels else "features"
                totals[stage, what] = totals.get((stage, what), 0.0) + value
    return totals


def stream_counters_since(running: list[Running], before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """stream_counters now, less what they were at `before`."""
    return {key: value - before.get(key, 0.0) for key, value in stream_counters(running).items()}


def out_of_order(counters: dict[tuple[str, str], float]) -> dict[str, float]:
    """Of stream_counters' differences, the events a features stage took out of event-time order
    (late, early, behind the customer stage's order) and the vectors that missed a label: a
    latency bought with disorder shows here. Every kind is present, zero where none happened."""
    counted = (
        "features.late_events",
        "customers.early_events",
        "terminals.early_events",
        "features.behind_order_events",
        "features.vectors_missing_label",
    )
    figures = dict.fromkeys(counted, 0.0)
    for (stage, what), value in counters.items():
        if f"{stage}.{what}" in figures:
            figures[f"{stage}.{what}"] += value
    return figures


def drain(running: list[Running], timeout: float, ignoring: Collection[str] = ()) -> None:
    """Waits until every stage (but those `ignoring`) has committed all of its input: a latency
    phase starts from a system in its steady state, not one still working off what came before."""
    deadline = time.monotonic() + timeout
    while any(r.behind(ignoring) > 0 for r in running):
        if time.monotonic() > deadline:
            behind = [(r.service, r.behind(ignoring)) for r in running]
            # By stage and topic, for whoever finds out why: the lag counts the markers of
            # transactional topics, and records of aborted transactions at a partition's end.
            lags = [
                (r.service, name.partition("{")[2].rstrip("}"), value)
                for r in running
                for name, value in r.samples().items()
                if name.startswith("fraudstream_stream_consumer_lag_messages{") and value > 0
            ]
            raise SystemExit(f"stages still behind after {timeout:.0f} s: {behind}; lag: {lags}")
        time.sleep(0.5)


# The monitor's judge commits nothing past evidence it is still deciding on, for the retrain
# debounce (10 minutes of wall time once the flood's event time stops): the drain waits for its
# commits.
SERVICE_ENV = {"monitor": {"FRAUDSTREAM_DEBOUNCE_SECONDS": "10"}}


def start_services(
    prefix: str, scratch: Path, model: PublishedModel, replicas: int, features_per_stage: bool
) -> list[Running]:
    """Each service on the path, `replicas` of each scalable one; with `features_per_stage`, each
    replica of the features service as one process per stage (the offline writer beside the
    terminal stage, whose output it reads)."""
    settings = PlatformSettings(home=scratch / "home", topic_prefix=prefix)
    running = []
    for spec in SERVICES:
        if spec.name not in ON_THE_PATH:
            continue
        processes: list[dict[str, str]] = [{}]
        if spec.name == "features" and features_per_stage:
            processes = [
                {"FRAUDSTREAM_STAGES": '["customers"]', "FRAUDSTREAM_WRITE_OFFLINE": "false"},
                {"FRAUDSTREAM_STAGES": '["terminals"]'},
            ]
        for replica in range(replicas if spec.name in SCALABLE else 1):
            for index, process_env in enumerate(processes):
                http_port = free_port()
                env = {
                    **os.environ,
                    **LocalService(spec, settings, replica).environment(),
                    "FRAUDSTREAM_HTTP_PORT": str(http_port),
                    "FRAUDSTREAM_GRPC_PORT": str(free_port()),
                    "FRAUDSTREAM_FEATURE_STORE_REDIS_URL": model.online_url,
                    "FRAUDSTREAM_FEATURE_REGISTRY": str(model.registry),
                    "FRAUDSTREAM_FEATURE_OFFLINE_DIR": str(model.offline),
                    "FRAUDSTREAM_REGISTERED_MODEL": model.model_name,
                    "FRAUDSTREAM_LOG_LEVEL": "WARNING",
                    **SERVICE_ENV.get(spec.name, {}),
                    **process_env,
                }
                log = (scratch / f"{spec.name}-{replica}-{index}.log").open("wb")
                process = subprocess.Popen(
                    [sys.executable, "-m", spec.module], env=env, stdout=log, stderr=subprocess.STDOUT
                )
                running.append(Running(spec.name, process, http_port))
    deadline = time.monotonic() + 240
    try:
        while not all(r.ready() for r in running):
            for r in running:
                if r.process.poll() is not None:
                    raise SystemExit(f"{r.service} exited with {r.process.returncode}; see {scratch}")
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready in 240 s: {[r.service for r in running if not r.ready()]}; see {scratch}")
            time.sleep(0.5)
    except SystemExit:
        stop_services(running)  # or they go on reading and writing beside whatever runs next
        raise
    return running


def stop_services(running: list[Running]) -> None:
    for r in running:
        r.process.terminate()
    for r in running:
        try:
            r.process.wait(40)
        except subprocess.TimeoutExpired:
            r.process.kill()


class CpuMeter:
    """User and system CPU seconds of each service (its replicas together), the broker, Redis and
    this process."""

    def __init__(self, running: list[Running]) -> None:
        self._processes: dict[str, list[psutil.Process]] = {}
        for r in running:
            self._processes.setdefault(r.service, []).append(psutil.Process(r.process.pid))
        for name in ("kafka", "redis"):
            pid = ManagedProcess(name, PLATFORM.home / "run").pid()
            if pid is not None:
                self._processes[name] = [psutil.Process(pid)]
        self._processes["benchmark"] = [psutil.Process()]  # the simulator's writes and the readers

    def read(self) -> dict[str, float]:
        seconds = {}
        for name, processes in self._processes.items():
            total = 0.0
            for process in processes:
                with process.oneshot():
                    times = process.cpu_times()
                    total += times.user + times.system
                if name != "benchmark":  # its children are the services
                    total += sum(c.cpu_times().user + c.cpu_times().system for c in process.children(recursive=True))
            seconds[name] = total
        return seconds


def redis_rewrites() -> tuple[int, int]:
    """Redis's append-only rewrites finished so far, and whether one is running. Each forks
    Redis and writes its whole data set, on the cores the services share."""
    info: dict[str, Any] = redis.Redis.from_url(PLATFORM.redis_url).info("persistence")  # type: ignore[assignment]
    return int(info["aof_rewrites"]), int(info["aof_rewrite_in_progress"])


def rewrites_since(before: tuple[int, int]) -> int:
    """The rewrites that ran for some of the time since `before` was read."""
    finished, running = redis_rewrites()
    return finished - before[0] + running


class TopicReader:
    """Every message of a topic from its start, as (transaction id -> seconds).

    By default a message's time is its Kafka timestamp: its producer's clock when it was
    produced. In a Kafka transaction that comes before the message can be read, by the time the
    producer takes to commit; the next hop's timestamp counts that wait. The last hop has no
    next: `when_read` times its messages by the wall clock when a read_committed consumer, in
    a thread of its own that reads from the moment it is made, received them."""

    def __init__(self, topic: str, decode: Callable[[Message], str | None], *, when_read: bool = False) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": PLATFORM.kafka_bootstrap,
                "group.id": f"bench-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self._decode = decode
        self.stamps: dict[str, float] = {}
        self._failure: str | None = None
        self._closing = threading.Event()
        self._follower: threading.Thread | None = None
        if when_read:
            self._follower = threading.Thread(target=self._follow, name=f"read-{topic}", daemon=True)
            self._follower.start()

    def _follow(self) -> None:
        while not self._closing.is_set() and self._failure is None:
            messages = self._consumer.consume(5000, timeout=0.005)
            self._take(messages, read_at=time.time())

    def _take(self, messages: list[Message], read_at: float | None) -> None:
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self._failure = str(error)
                continue
            transaction_id = self._decode(message)
            if transaction_id is not None:
                stamp = read_at if read_at is not None else message.timestamp()[1] / 1000
                self.stamps.setdefault(transaction_id, stamp)

    def until(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._failure is not None:
                raise SystemExit(self._failure)
            missing = len(ids - self.stamps.keys())
            if not missing:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{missing} of {len(ids)} never arrived in {timeout:.0f} s")
            if self._follower is None:
                self._take(self._consumer.consume(5000, timeout=0.5), read_at=None)
            else:
                time.sleep(0.05)

    def close(self) -> None:
        self._closing.set()
        if self._follower is not None:
            self._follower.join(10)
        self._consumer.close()


def transaction_id(message: Message) -> str:
    return Transaction.FromString(message.value() or b"").transaction_id


def partial_transaction_id(message: Message) -> str | None:
    if record_kind(message) != KIND_TRANSACTION:
        return None  # a label or watermarks
    return EnrichedTransaction.FromString(message.value() or b"").transaction.transaction_id


def enriched_transaction_id(message: Message) -> str:
    return EnrichedTransaction.FromString(message.value() or b"").transaction.transaction_id


def prediction_transaction_id(message: Message) -> str:
    return Prediction.FromString(message.value() or b"").transaction_id


def window(world: Simulation, first: int, last: int) -> Simulation:
    """Transactions first..last-1 of `world`, and the labels reported between their times."""
    tx = world.transactions.iloc[first:last]
    start = tx["event_time"].iloc[0] if first > 0 else pd.Timestamp.min.tz_localize("UTC")
    end = world.transactions["event_time"].iloc[last] if last < len(world.transactions) else tx["event_time"].max()
    labels = world.labels[(world.labels["label_time"] >= start) & (world.labels["label_time"] < end)]
    return dataclasses.replace(world, transactions=tx, labels=labels)


def live(world: Simulation, rate: float) -> Simulation:
    """`world`'s events moved to the wall clock: to start now, their times compressed so that each
    falls due about when a replay at `rate` sends it. Live traffic, as a deployment sees it: the
    features' hold after a replay resumes does not apply to it, and the monitor's hours close as
    the clock's do, not thousands of times faster."""
    tx = world.transactions
    first = tx["event_time"].iloc[0]
    span = max((tx["event_time"].iloc[-1] - first).total_seconds(), 1.0)
    factor = (len(tx) / rate) / span
    now = pd.Timestamp.now(tz="UTC")

    def moved(times: pd.Series) -> pd.Series:
        moved_times: pd.Series = now + (times - first) * factor
        return moved_times

    return dataclasses.replace(
        world,
        transactions=tx.assign(event_time=moved(tx["event_time"])),
        labels=world.labels.assign(
            label_time=moved(world.labels["label_time"]), transaction_time=moved(world.labels["transaction_time"])
        ),
    )


def one_configuration(
    world: Simulation,
    replicas: int,
    partitions: int,
    transactions: int,
    rate: float,
    seconds: float,
    *,
    light_rate: float,
    light_seconds: float,
    features_per_stage: bool,
    trace: Path | None,
) -> dict[str, Any]:
    prefix = f"bench-e2e-{uuid.uuid4().hex[:6]}."
    scratch = Path(tempfile.mkdtemp(prefix="fraudstream-bench-e2e-"))
    platform = PLATFORM.model_copy(update={"stream_partitions": partitions})
    model = publish_model(platform, prefix, scratch, MODEL_HISTORY)
    running = start_services(prefix, scratch, model, replicas, features_per_stage)
    writer = ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=prefix)
    # Only the end of the path is read while transactions flow: the other hops' readers would
    # fetch beside the services, on the same broker and cores. They read the topics afterwards.
    predictions = TopicReader(topic_name(Topic.PREDICTIONS, prefix), prediction_transaction_id, when_read=True)
    hops: dict[str, TopicReader] = {}
    try:
        print(f"{replicas} replica(s): {len(running)} processes ready; throughput phase", file=sys.stderr)
        meter = CpuMeter(running)
        rewrites: dict[str, int] = {}
        before = meter.read()
        rewrites_before = redis_rewrites()
        flood = window(world, 0, transactions)
        replay_to_kafka(flood, writer, pacing=Pacing.fast())
        ids = set(flood.transactions["transaction_id"])
        predictions.until(ids, timeout=600)
        after = meter.read()
        rewrites["throughput"] = rewrites_since(rewrites_before)
        stamps = np.sort(np.array([predictions.stamps[i] for i in ids]))
        low, high = int(0.1 * len(stamps)), int(0.9 * len(stamps))
        throughput = (high - low) / max(stamps[high] - stamps[low], 1e-3)
        cpu = {name: after[name] - before[name] for name in after}
        services_cpu = sum(cpu[name] for name in ON_THE_PATH)

        drain(running, timeout=300)
        paced_end = transactions + int(rate * seconds)
        paced = window(world, transactions, paced_end)
        print(f"{replicas} replica(s): {throughput:,.0f}/s; latency phase at {rate:,.0f}/s", file=sys.stderr)
        before = meter.read()
        rewrites_before = redis_rewrites()
        counters_before = stream_counters(running)
        started = time.monotonic()
        replay_to_kafka(paced, writer, pacing=Pacing(rate=rate))
        paced_ids = set(paced.transactions["transaction_id"])
        predictions.until(paced_ids, timeout=300)
        after = meter.read()
        rewrites["latency"] = rewrites_since(rewrites_before)
        elapsed = time.monotonic() - started
        counters = stream_counters_since(running, counters_before)

        def stages_counting(what: str) -> list[str]:
            return sorted(stage for stage, counted in counters if counted == what)

        paced_cpu = {name: after[name] - before[name] for name in after}
        hops = {
            "raw": TopicReader(topic_name(Topic.TRANSACTIONS_RAW, prefix), transaction_id),
            "ingest": TopicReader(topic_name(Topic.TRANSACTIONS, prefix), transaction_id),
            "features_customers": TopicReader(topic_name(Topic.FEATURES_BY_TERMINAL, prefix), partial_transaction_id),
            "features_terminals": TopicReader(topic_name(Topic.TRANSACTIONS_ENRICHED, prefix), enriched_transaction_id),
            "inference": predictions,
        }
        for reader in hops.values():
            reader.until(paced_ids, timeout=300)
        latency = hop_latencies(hops, paced_ids)
        phase_start = min(hops["raw"].stamps[i] for i in paced_ids)
        steady_ids = {i for i in paced_ids if hops["raw"].stamps[i] >= phase_start + STEADY_AFTER_SECONDS}
        steady = hop_latencies(hops, steady_ids)
        if trace is not None:
            write_trace(hops, paced_ids, trace.with_name(f"{trace.stem}-{replicas}{trace.suffix}"))

        def live_phase(
            first: int, last: int, phase_rate: float, name: str
        ) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
            """Transactions first..last-1 moved to the wall clock (`live`) at `phase_rate`, once
            every stage has committed what it read: each hop's latency, the CPU milliseconds per
            transaction of each process until the last prediction, and the events out of order."""
            # The replay's drift alerts may keep the judge's commits back for minutes (the retrain
            # debounce and cooldown); it waits on evidence, not work, and scores no transaction.
            drain(running, timeout=300, ignoring=("monitor-judge",))
            phase = live(window(world, first, last), phase_rate)
            print(f"{replicas} replica(s): {name} phase at {phase_rate:,.0f}/s", file=sys.stderr)
            before = meter.read()
            rewrites_before = redis_rewrites()
            counters_before = stream_counters(running)
            replay_to_kafka(phase, writer, pacing=Pacing(rate=phase_rate))
            phase_ids = set(phase.transactions["transaction_id"])
            predictions.until(phase_ids, timeout=300)
            after = meter.read()
            counted = stream_counters_since(running, counters_before)
            rewrites[name] = rewrites_since(rewrites_before)
            for reader in hops.values():
                reader.until(phase_ids, timeout=300)
            if trace is not None:
                write_trace(hops, phase_ids, trace.with_name(f"{trace.stem}-{replicas}-{name}{trace.suffix}"))
            cpu_ms = {process: 1000 * (after[process] - before[process]) / len(phase_ids) for process in after}
            return hop_latencies(hops, phase_ids), cpu_ms, out_of_order(counted)

        live_end = paced_end + int(rate * seconds)
        live_latency, live_cpu, live_disorder = live_phase(paced_end, live_end, rate, "live")
        light_latency, _, light_disorder = live_phase(
            live_end, live_end + int(light_rate * light_seconds), light_rate, "light"
        )
        return {
            "replicas": replicas,
            "partitions": partitions,
            "processes": len(running),
            "throughput_per_second": throughput,
            "cpu_ms_per_transaction": {name: 1000 * value / len(ids) for name, value in cpu.items()},
            "transactions_per_cpu_second": len(ids) / services_cpu,
            "latency_rate_per_second": rate,
            "latency_ms": latency,
            "latency_steady_ms": steady,
            "live_latency_ms": live_latency,
            "live_out_of_order_events": live_disorder,
            "light_rate_per_second": light_rate,
            "light_latency_ms": light_latency,
            "light_out_of_order_events": light_disorder,
            "live_phase_cpu_ms_per_transaction": live_cpu,
            "latency_phase_cpu_ms_per_transaction": {
                name: 1000 * value / len(paced_ids) for name, value in paced_cpu.items()
            },
            "latency_phase_checkpoints": {
                stage: {
                    "per_second": counters[stage, "checkpoints"] / elapsed,
                    "commit_ms_mean": 1000 * counters[stage, "commit_seconds"] / max(counters[stage, "checkpoints"], 1),
                }
                for stage in stages_counting("checkpoints")
            },
            "latency_phase_event_time_wait_ms_mean": {
                stage: 1000 * counters[stage, "order_wait_seconds"] / max(counters[stage, "order_waits"], 1)
                for stage in stages_counting("order_waits")
            },
            "redis_aof_rewrites": rewrites,
            "latency_phase_out_of_order_events": out_of_order(counters),
        }
    finally:
        for reader in {*hops.values(), predictions}:
            reader.close()
        stop_services(running)
        delete_topics(prefix)


def hop_latencies(hops: dict[str, TopicReader], ids: set[str]) -> dict[str, dict[str, float]]:
    """For these transactions, each hop's latency from the one before it (in `hops`' order, from
    `raw` to `inference`), and end to end."""
    names = list(hops)
    latency = {hop: milliseconds(hops[hop].stamps, hops[names[i]].stamps, ids) for i, hop in enumerate(names[1:])}
    latency["end_to_end"] = milliseconds(hops[names[-1]].stamps, hops[names[0]].stamps, ids)
    return latency


def write_trace(hops: dict[str, TopicReader], ids: set[str], path: Path) -> None:
    """Each of these transactions' timestamp on every hop, as a CSV in the order they were written."""
    traced = sorted(ids)
    pd.DataFrame({hop: [reader.stamps[i] for i in traced] for hop, reader in hops.items()}, index=traced).sort_values(
        "raw"
    ).to_csv(path)


def milliseconds(later: dict[str, float], earlier: dict[str, float], ids: set[str]) -> dict[str, float]:
    spans = np.array([later[i] - earlier[i] for i in ids]) * 1000
    return {"p50": float(np.percentile(spans, 50)), "p99": float(np.percentile(spans, 99)), "max": float(spans.max())}


def percentile_medians(rounds: list[dict[str, Any]], key: str, prefix: str) -> dict[str, float]:
    """The median over `rounds` of each hop's p50 and p99 under `key`, as `{prefix}{hop}_{q}_ms`."""
    return {
        f"{prefix}{hop}_{q}_ms": statistics.median(r[key][hop][q] for r in rounds)
        for hop in rounds[0][key]
        for q in ("p50", "p99")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--transactions", type=int, default=60_000, help="Written as fast as possible.")
    parser.add_argument("--rate", type=float, default=2000.0, help="Transactions per second in the latency phase.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of the latency phase.")
    parser.add_argument("--light-rate", type=float, default=20.0, help="Transactions per second in the light phase.")
    parser.add_argument("--light-seconds", type=float, default=30.0, help="Length of the light phase.")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--partitions",
        type=int,
        help="Partitions of each stream the stages share (default: the most replicas measured).",
    )
    parser.add_argument(
        "--features-processes",
        choices=("per-stage", "one"),
        default="per-stage",
        help="Each features replica as one process per stage (FRAUDSTREAM_STAGES), or both stages in one.",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        help=(
            "Also write each latency-phase transaction's timestamp on every hop to this CSV (-N: N replicas), "
            "and the live and light phases' beside it (-N-live, -N-light)."
        ),
    )
    args = parser.parse_args()
    partitions = args.partitions or max(args.replicas)
    if partitions < max(args.replicas):
        parser.error("--partitions below --replicas would leave replicas without work")
    if args.seconds <= STEADY_AFTER_SECONDS:
        parser.error(f"--seconds must exceed {STEADY_AFTER_SECONDS:g}: the steady figures leave out the first ones")

    days = (
        int(
            (args.transactions + 2 * args.rate * args.seconds + args.light_rate * args.light_seconds)
            / TRANSACTIONS_A_DAY
        )
        + 2
    )
    world = simulate(SimulationConfig(nb_days=days))
    rounds: list[dict[str, Any]] = []
    for n in range(args.rounds):
        for replicas in args.replicas:
            result = one_configuration(
                world,
                replicas,
                partitions,
                args.transactions,
                args.rate,
                args.seconds,
                light_rate=args.light_rate,
                light_seconds=args.light_seconds,
                features_per_stage=args.features_processes == "per-stage",
                trace=args.trace,
            )
            rounds.append({"round": n, **result})
            print(json.dumps(rounds[-1]), file=sys.stderr)

    medians: dict[int, dict[str, float]] = {}
    for replicas in args.replicas:
        mine = [r for r in rounds if r["replicas"] == replicas]
        medians[replicas] = {
            "throughput_per_second": statistics.median(r["throughput_per_second"] for r in mine),
            "transactions_per_cpu_second": statistics.median(r["transactions_per_cpu_second"] for r in mine),
            "latency_rate_per_second": statistics.median(r["latency_rate_per_second"] for r in mine),
            **percentile_medians(mine, "latency_ms", ""),
            **percentile_medians(mine, "latency_steady_ms", "steady_"),
            **percentile_medians(mine, "live_latency_ms", "live_"),
            "light_rate_per_second": statistics.median(r["light_rate_per_second"] for r in mine),
            **percentile_medians(mine, "light_latency_ms", "light_"),
            **{
                f"live_phase_cpu_ms_{name}": statistics.median(
                    r["live_phase_cpu_ms_per_transaction"][name] for r in mine
                )
                for name in mine[0]["live_phase_cpu_ms_per_transaction"]
            },
            **{
                f"cpu_ms_{name}": statistics.median(r["cpu_ms_per_transaction"][name] for r in mine)
                for name in mine[0]["cpu_ms_per_transaction"]
            },
            **{
                f"latency_phase_cpu_ms_{name}": statistics.median(
                    r["latency_phase_cpu_ms_per_transaction"][name] for r in mine
                )
                for name in mine[0]["latency_phase_cpu_ms_per_transaction"]
            },
            **{
                f"latency_phase_{stage}_{figure}": statistics.median(
                    r["latency_phase_checkpoints"][stage][figure] for r in mine
                )
                for stage in mine[0]["latency_phase_checkpoints"]
                for figure in ("per_second", "commit_ms_mean")
            },
            **{
                f"latency_phase_{stage}_event_time_wait_ms_mean": statistics.median(
                    r["latency_phase_event_time_wait_ms_mean"][stage] for r in mine
                )
                for stage in mine[0]["latency_phase_event_time_wait_ms_mean"]
            },
            **{
                f"{phase}_{name}": statistics.median(r[f"{phase}_out_of_order_events"].get(name, 0.0) for r in mine)
                for phase in ("latency_phase", "live", "light")
                for name in mine[0][f"{phase}_out_of_order_events"]
            },
            **{f"redis_aof_rewrites_{phase}": sum(r["redis_aof_rewrites"][phase] for r in mine) for phase in PHASES},
        }
    ratios = {}
    if 1 in medians:
        for replicas, m in medians.items():
            if replicas != 1:
                ratios[f"{replicas}_over_1"] = {
                    "throughput": m["throughput_per_second"] / medians[1]["throughput_per_second"],
                    "per_cpu_second": m["transactions_per_cpu_second"] / medians[1]["transactions_per_cpu_second"],
                }
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30)},
        "python": host.python_version(),
        "rounds": rounds,
        "medians": {str(k): v for k, v in medians.items()},
        "ratios": ratios,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    names = sorted({k for m in medians.values() for k in m})
    print(f"| medians of {args.rounds} round(s) | " + " | ".join(f"{r} replica(s)" for r in medians) + " |")
    print("|---|" + "---|" * len(medians))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{m[name]:,.2f}" for m in medians.values()) + " |")
    for name, ratio in ratios.items():
        print(f"{name}: throughput {ratio['throughput']:.2f}, per CPU-second {ratio['per_cpu_second']:.2f}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
