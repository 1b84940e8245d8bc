"""The system the chaos suite breaks: ingest, features, inference and the monitor against the
local platform's Kafka and MLflow and a Redis of their own, a model version 1 published, a
simulated world streamed into `transactions.raw` at a fixed rate, clients asking for
predictions over HTTP and gRPC, and readers keeping count of what reaches `transactions` and
`predictions`. A fault is applied while a segment of the world streams; what it cost is then
read off the topics, not off the services' own accounts."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pandas as pd
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from google.protobuf.timestamp_pb2 import Timestamp

from fraudstream_cli.platform.kafka import KafkaBroker
from fraudstream_cli.platform.processes import ManagedProcess
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.apikeys import Scope, create_key
from fraudstream_common.kafka import produce_acknowledged
from fraudstream_common.schemas.v1 import inference_service_pb2_grpc as pb_grpc
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.settings import (
    DEVELOPMENT_API_KEY_SECRET,
    DEVELOPMENT_RETRAIN_REQUEST_SECRET,
    ServiceSettings,
)
from fraudstream_common.signing import sign_request
from fraudstream_common.topics import Topic
from fraudstream_feature_store.store import apply_repository
from fraudstream_simulator.simulation import Simulation
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from tests.integration.features.streams import History, features_service, simulated_history
from tests.integration.inference.serving import grpc_request, inference_service, train_and_publish
from tests.integration.monitor.service import monitor_service
from tests.integration.trainer.history import trainer_service
from tests.platform import PLATFORM, PrivateRedis, ServiceProcess, Topics, drain, feast_env, free_port, producer
from tests.unit.deploy import go_tools

RATE = 100  # transactions per second into transactions.raw
CLIENT_RATE = 10  # prediction requests per second, HTTP and gRPC taking turns


@dataclass
class Segment:
    """A slice of the world, in event-time order, with the labels reported while it streams."""

    world: Simulation
    extra_ids: set[str] = field(default_factory=set)  # valid transactions sent another way

    @property
    def transaction_ids(self) -> set[str]:
        return set(self.world.transactions["transaction_id"]) | self.extra_ids


def transaction_body(transaction_id: str, row: Any, when: pd.Timestamp) -> dict[str, object]:
    """A transaction as the HTTP APIs take it: a world's row (customer, terminal, amount) at `when`."""
    return {
        "transaction_id": transaction_id,
        "customer_id": str(row.customer_id),
        "terminal_id": str(row.terminal_id),
        "amount": float(row.amount),
        "timestamp": when.isoformat().replace("+00:00", "Z"),
    }


def instants(timestamps: list[Timestamp]) -> pd.Series:
    """Protobuf timestamps as a tz-aware column, to the nanosecond."""
    return pd.Series(pd.to_datetime([t.seconds * 1_000_000_000 + t.nanos for t in timestamps], unit="ns", utc=True))


class Tally(threading.Thread):
    """Reads a topic from its start (committed records only) and counts what it holds by key."""

    def __init__(self, topic: str, key_of: Callable[[bytes], tuple[str, ...]]) -> None:
        super().__init__(daemon=True, name=f"tally-{topic}")
        self.topic = topic
        self.key_of = key_of
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": PLATFORM.kafka_bootstrap,
                "group.id": f"chaos-tally-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 0,
            }
        )
        partitions = consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        # Assigned, not subscribed: a group that lost its coordinator (a broker restart) would
        # start again from the earliest offset and count everything twice.
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        seen: set[tuple[int | None, int | None]] = set()
        try:
            while not self.stopping.is_set():
                batch = consumer.consume(1000, timeout=0.2)
                fresh = [m for m in batch if m.error() is None and (m.partition(), m.offset()) not in seen]
                seen.update((m.partition(), m.offset()) for m in fresh)
                keys = [self.key_of(m.value() or b"") for m in fresh]
                with self.lock:
                    self.counts.update(keys)
                for message in batch:
                    error = message.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF and error.fatal():
                        raise RuntimeError(f"tally of {self.topic}: {error}")
        finally:
            consumer.close()

    def snapshot(self) -> Counter[tuple[str, ...]]:
        with self.lock:
            return Counter(self.counts)


class Toxiproxy:
    """A Toxiproxy server (pinned in tools/checks) with one proxy, `name`, in front of a local
    port: the services connect through it, so that the suite can slow or cut their connections.
    `port`: where the proxy listens (None: any free port)."""

    def __init__(self, log_dir: Path, name: str, upstream_port: int, port: int | None = None) -> None:
        self.name = name
        self.api = f"http://127.0.0.1:{free_port()}"
        self.port = port if port is not None else free_port()
        binary = go_tools.built("github.com/Shopify/toxiproxy/v2/cmd/server")
        host, api_port = self.api.removeprefix("http://").split(":")
        with (log_dir / f"toxiproxy-{name}.log").open("wb") as log:
            self.process = subprocess.Popen([str(binary), "-host", host, "-port", api_port], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.api}/version", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "Toxiproxy did not start"
                time.sleep(0.1)
        created = httpx.post(
            f"{self.api}/proxies",
            json={"name": name, "listen": f"127.0.0.1:{self.port}", "upstream": f"127.0.0.1:{upstream_port}"},
        )
        created.raise_for_status()

    def latency(self, milliseconds: int | None) -> None:
        """Delays every reply by `milliseconds` (None: no longer)."""
        toxics = f"{self.api}/proxies/{self.name}/toxics"
        if milliseconds is None:
            httpx.delete(f"{toxics}/latency").raise_for_status()
            return
        toxic = {"name": "latency", "type": "latency", "stream": "downstream", "attributes": {"latency": milliseconds}}
        httpx.post(toxics, json=toxic).raise_for_status()

    def connected(self, enabled: bool) -> None:
        """False closes every connection through the proxy and refuses new ones; True opens it again."""
        httpx.post(f"{self.api}/proxies/{self.name}", json={"enabled": enabled}).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@dataclass
class ClientCounts:
    answered: int = 0
    degraded: int = 0
    errors: int = 0


class Clients(threading.Thread):
    """Asks inference for predictions at CLIENT_RATE, HTTP and gRPC in turn, each with its own
    transaction id, timed at the stream's current event time; counts what came back."""

    def __init__(self, system: System) -> None:
        super().__init__(daemon=True, name="chaos-clients")
        self.system = system
        self.counts = ClientCounts()
        self.stopping = threading.Event()

    def reset(self) -> ClientCounts:
        counts, self.counts = self.counts, ClientCounts()
        return counts

    def run(self) -> None:
        rows = self.system.history.transactions.sample(5000, random_state=7)
        bearer = f"Bearer {self.system.predict_key}"
        sent = 0
        while not self.stopping.is_set():
            row = rows.iloc[sent % len(rows)]
            request = transaction_body(f"client-{sent}", row, self.system.stream_time())
            try:
                degraded = self._http(request, bearer) if sent % 2 == 0 else self._grpc(request, bearer)
            except (httpx.HTTPError, grpc.RpcError, AssertionError):
                self.counts.errors += 1
            else:
                self.counts.answered += 1
                self.counts.degraded += int(degraded)
            sent += 1
            time.sleep(1 / CLIENT_RATE)

    def _http(self, request: dict[str, object], bearer: str) -> bool:
        inference = self.system.services["inference"]
        answer = httpx.post(f"{inference.url}/v1/predict", json=request, headers={"Authorization": bearer}, timeout=5)
        assert answer.status_code == 200, answer.status_code
        return bool(answer.json()["degraded"])

    def _grpc(self, request: dict[str, object], bearer: str) -> bool:
        inference = self.system.services["inference"]
        with grpc.insecure_channel(f"127.0.0.1:{inference.grpc_port}") as channel:
            answer = pb_grpc.InferenceServiceStub(channel).Predict(
                grpc_request(request), metadata=(("authorization", bearer),), timeout=5
            )
        return bool(answer.degraded)


def transaction_key(value: bytes) -> tuple[str, ...]:
    return (Transaction.FromString(value).transaction_id,)


def prediction_key(value: bytes) -> tuple[str, ...]:
    prediction = Prediction.FromString(value)
    return (prediction.transaction_id, prediction.model_version)


@dataclass
class System:
    directory: Path
    topics: Topics
    redis: PrivateRedis
    redis_proxy: Toxiproxy
    kafka_proxy: Toxiproxy
    history: History
    model_name: str
    predict_key: str
    ingest_key: str
    services: dict[str, ServiceProcess]
    transactions: Tally
    predictions: Tally
    clients: Clients | None = None
    _stream_time: pd.Timestamp | None = None

    def stream_time(self) -> pd.Timestamp:
        """The event time the stream has reached (the world's start before it begins)."""
        return self._stream_time or self.history.transactions["event_time"].iloc[0]

    def segments(self, count: int) -> Iterator[Segment]:
        """The world cut into `count` consecutive slices; each slice's labels are those reported
        before the next slice begins (the last takes the rest)."""
        transactions = self.history.transactions
        labels = self.history.labels.sort_values("label_time", kind="stable")
        bounds = [len(transactions) * i // count for i in range(count + 1)]
        for i in range(count):
            part = transactions.iloc[bounds[i] : bounds[i + 1]]
            after = labels["label_time"] >= part["event_time"].iloc[0] if i else labels["label_time"].notna()
            before = (
                labels["label_time"] < transactions["event_time"].iloc[bounds[i + 1]]
                if i + 1 < count
                else labels["label_time"].notna()
            )
            yield Segment(dataclasses.replace(self.history.world, transactions=part, labels=labels[after & before]))

    def stream(self, segment: Segment) -> threading.Thread:
        """Starts replaying `segment` into `transactions.raw` at RATE per second."""
        settings = ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=self.topics.prefix)
        times = segment.world.transactions["event_time"]
        started = time.monotonic()

        def follow_time() -> None:
            while thread.is_alive():
                index = min(int((time.monotonic() - started) * RATE), len(times) - 1)
                self._stream_time = times.iloc[index]
                time.sleep(0.1)
            self._stream_time = times.iloc[-1]

        def replay() -> None:
            replay_to_kafka(segment.world, settings, pacing=Pacing(rate=RATE))

        thread = threading.Thread(target=replay, name="chaos-stream", daemon=True)
        thread.start()
        threading.Thread(target=follow_time, daemon=True).start()
        return thread

    def post_transactions(self, bodies: list[dict[str, object]]) -> None:
        """Sends transactions through ingest's HTTP API, as a client system would."""
        ingest = self.services["ingest"]
        answer = httpx.post(
            f"{ingest.url}/v1/transactions",
            json=bodies,
            headers={"Authorization": f"Bearer {self.ingest_key}"},
            timeout=30,
        )
        assert answer.status_code in (200, 202), answer.text

    def all_ready(self) -> bool:
        return all(
            s.process is not None and s.process.poll() is None and s.readiness() == 200 for s in self.services.values()
        )

    def restart_exited(self) -> None:
        """Starts again what an earlier fault left dead (that fault has failed already), so that
        each fault is judged on its own."""
        for name in self.exited():
            self.services[name].start()

    def exited(self) -> list[str]:
        return [name for name, s in self.services.items() if s.process is not None and s.process.poll() is not None]

    def ask_for_retrain(self) -> str:
        """A signed, forced retrain request, as an operator's `fraudstream retrain` sends it."""
        request = RetrainRequest(
            request_id=f"chaos-{uuid.uuid4().hex[:8]}",
            model_name=self.model_name,
            reason="operator",
            requested_by="chaos",
            force=True,
        )
        request.requested_at.GetCurrentTime()
        sign_request(request, DEVELOPMENT_RETRAIN_REQUEST_SECRET)
        produce_acknowledged(
            producer(), self.topics(Topic.RETRAIN_REQUESTS), request.SerializeToString(), None, None, timeout=10
        )
        return request.request_id

    def serving_version(self) -> str | None:
        """The version inference answers with now (None: it does not answer)."""
        row = self.history.transactions.iloc[0]
        request = transaction_body(f"probe-{uuid.uuid4().hex[:8]}", row, self.stream_time())
        inference = self.services["inference"]
        try:
            answer = httpx.post(
                f"{inference.url}/v1/predict",
                json=request,
                headers={"Authorization": f"Bearer {self.predict_key}"},
                timeout=5,
            )
        except httpx.HTTPError:
            return None
        return str(answer.json()["model_version"]) if answer.status_code == 200 else None

    def published_versions(self) -> list[str]:
        records = drain(self.topics(Topic.MODELS_PUBLISHED), quiet=1)
        return [ModelPublished.FromString(r.value).version for r in records]

    def rebuild_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The `transactions` and `labels` topics as the backfill reads a history."""
        transactions = [Transaction.FromString(r.value) for r in drain(self.topics(Topic.TRANSACTIONS), quiet=3)]
        labels = [Label.FromString(r.value) for r in drain(self.topics(Topic.LABELS), quiet=3)]
        tx = pd.DataFrame(
            {
                "transaction_id": [t.transaction_id for t in transactions],
                "customer_id": [t.customer_id for t in transactions],
                "terminal_id": [t.terminal_id for t in transactions],
                "event_time": instants([t.event_time for t in transactions]),
                "amount": [t.amount for t in transactions],
            }
        )
        lb = pd.DataFrame(
            {
                "transaction_id": [x.transaction_id for x in labels],
                "customer_id": [x.customer_id for x in labels],
                "terminal_id": [x.terminal_id for x in labels],
                "transaction_time": instants([x.transaction_time for x in labels]),
                "is_fraud": [x.is_fraud for x in labels],
                "label_time": instants([x.label_time for x in labels]),
            }
        )
        return (
            tx.sort_values("event_time", kind="stable").reset_index(drop=True),
            lb.sort_values("label_time", kind="stable").reset_index(drop=True),
        )


def kill_platform_part(part: ManagedProcess) -> None:
    """SIGKILL to a part of the local platform (the broker, MLflow), as a crash or an OOM kill."""
    pid = part.pid()
    assert pid is not None, f"the platform's {part.name} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while part.pid() is not None:
        assert time.monotonic() < deadline, f"{part.name} outlived SIGKILL"
        time.sleep(0.1)


@contextmanager
def running_system(directory: Path) -> Iterator[System]:
    prefix = f"chaos-{uuid.uuid4().hex[:8]}."
    KafkaBroker(PlatformSettings(topic_prefix=prefix)).ensure_topics()
    topics = Topics(prefix)
    private = PrivateRedis(directory / "redis")
    private.directory.mkdir()
    private.start()
    model_name = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    (directory / "model").mkdir()
    train_and_publish(topics, directory / "model", model_name, always_promote=False)
    logs = directory / "logs"
    logs.mkdir()
    proxy = Toxiproxy(logs, "redis", private.port)
    # The broker's second listener advertises the proxy's port, so that the services stay behind
    # the proxy after they bootstrap (the first listener advertises itself).
    platform = PlatformSettings()
    kafka_proxy = Toxiproxy(logs, "kafka", platform.kafka_proxied_port, port=platform.kafka_proxy_port)
    through_proxy = f"redis://127.0.0.1:{proxy.port}/0"
    online_store = f"redis://127.0.0.1:{proxy.port}/1"
    stores = directory / "stores"
    apply_repository(online_store, stores / "registry.db", stores / "offline")
    keys = redis.Redis.from_url(private.url)
    predict_key = create_key(keys, [Scope.PREDICT], "chaos", secret=DEVELOPMENT_API_KEY_SECRET, namespace=prefix)
    ingest_key = create_key(keys, [Scope.INGEST], "chaos", secret=DEVELOPMENT_API_KEY_SECRET, namespace=prefix)
    store_env = feast_env(online_store, stores)
    features = features_service(topics, logs, **store_env)
    inference = inference_service(prefix, logs, model_name, store_env)
    monitor = monitor_service(prefix, logs, model_name, model_name)
    ingest = ServiceProcess(prefix=prefix, log_dir=logs)
    # On the features service's stores, as in production; small windows, and a gate that lets
    # every version through, so that a request ends in a publish.
    trainer = trainer_service(
        prefix,
        logs,
        model_name,
        model_name,
        **{name.removeprefix("FRAUDSTREAM_").lower(): value for name, value in store_env.items()},
        min_rows="1000",
        min_frauds="10",
        n_estimators="50",
        gate_ap_margin="1",
        gate_card_precision_margin="1",
        cooldown_seconds="0",
    )
    services = {
        "ingest": ingest,
        "features": features,
        "inference": inference,
        "monitor": monitor,
        "trainer": trainer,
    }
    for service in services.values():
        service.redis_url = through_proxy
        service.kafka_bootstrap = f"127.0.0.1:{kafka_proxy.port}"
        service.start()
    system = System(
        directory,
        topics,
        private,
        proxy,
        kafka_proxy,
        simulated_history(),
        model_name,
        predict_key,
        ingest_key,
        services,
        Tally(topics(Topic.TRANSACTIONS), transaction_key),
        Tally(topics(Topic.PREDICTIONS), prediction_key),
    )
    system.transactions.start()
    system.predictions.start()
    system.clients = Clients(system)
    system.clients.start()
    try:
        yield system
    finally:
        system.clients.stopping.set()
        system.transactions.stopping.set()
        system.predictions.stopping.set()
        for service in services.values():
            if service.process is not None and service.process.poll() is None:
                service.terminate()
        proxy.stop()
        kafka_proxy.stop()
        admin = KafkaBroker(PlatformSettings()).admin()
        names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(prefix)]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()
        if private.process is not None and private.process.poll() is None:
            private.kill()
