"""Hot-swap under load: 20 versions published one after another while clients keep sending
requests; not one request fails, every answer names a version already published when it was
asked (and, per client, never an older one than its previous answer), the service ends on the
last version, and its memory stays flat.

Versions after the first are registered from the first one's run, as an operator re-registering
a run would: each is a new version that inference downloads, checks and loads like any other.
Training each (about 20 s here) tests the trainer, which its own tests do, not the swap."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from fraudstream_registry.registry import CHAMPION, Registry
from tests.integration.inference.serving import Served, serve
from tests.platform import PLATFORM, PrivateRedis, Topics

pytestmark = pytest.mark.integration

VERSIONS = 20
# Long enough for a swap (download, checks, load) to finish before the next version comes.
SECONDS_BETWEEN_VERSIONS = 1.5


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclasses.dataclass
class Client:
    """One load-generating client: sequential requests, each answer with when it was asked."""

    served: Served
    name: str
    answers: list[tuple[float, int, str]] = dataclasses.field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        sample = self.served.world.transactions.sample(200, random_state=hash(self.name) % 1000)
        when = self.served.world.transactions["event_time"].max() + pd.Timedelta(hours=2)
        headers = {"Authorization": f"Bearer {self.served.predict_key}"}
        with httpx.Client(base_url=self.served.service.url, timeout=10) as http:
            n = 0
            while not stop.is_set():
                row = sample.iloc[n % len(sample)]
                asked = time.monotonic()
                response = http.post(
                    "/v1/predict",
                    json={
                        "transaction_id": f"{self.name}-{n}",
                        "customer_id": str(row.customer_id),
                        "terminal_id": str(row.terminal_id),
                        "amount": float(row.amount),
                        "timestamp": when.isoformat().replace("+00:00", "Z"),
                    },
                    headers=headers,
                )
                version = response.json().get("model_version", "") if response.status_code == 200 else ""
                self.answers.append((asked, response.status_code, version))
                n += 1


def registered_again(registry: Registry, version: str) -> str:
    """A new version of the registered model from `version`'s run, tags and artifacts."""
    client: MlflowClient = registry.client
    original = client.get_model_version(registry.model_name, version)
    assert original.source is not None
    # A version of a logged model has the source `models:/<model id>`; MLflow wants the id too.
    model_id = original.source.removeprefix("models:/")
    copy = client.create_model_version(
        registry.model_name, original.source, run_id=original.run_id, tags=dict(original.tags), model_id=model_id
    )
    return str(copy.version)


@pytest.fixture
def served(topics: Topics, tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Served]:
    served = serve(topics, tmp_path, private_redis, always_promote=True, FRAUDSTREAM_RATE_LIMIT_PER_SECOND="100000")
    yield served
    assert served.service.terminate() == 0


def test_twenty_versions_swapped_in_under_load_without_a_failed_request(served: Served) -> None:
    published = served.events
    registry = Registry(PLATFORM.mlflow_url, served.model_name)
    publish = served.trainer.publish
    assert publish is not None
    pid = served.service.process.pid if served.service.process else 0
    published_at = {served.published.version: 0.0}
    stop = threading.Event()
    clients = [Client(served, f"client{i}") for i in range(3)]
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        baseline = 0
        for n in range(2, VERSIONS + 1):
            version = registered_again(registry, served.published.version)
            assert version == str(n)
            published_at[version] = time.monotonic()
            registry.set_alias(CHAMPION, version)
            publish(registry.published_event(version, CHAMPION))
            if n == 3:
                baseline = rss_bytes(pid)
            time.sleep(SECONDS_BETWEEN_VERSIONS)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(c.answers and c.answers[-1][2] == str(VERSIONS) for c in clients):
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert [event.version for event in published][-1] == str(VERSIONS)
    answers = [a for c in clients for a in c.answers]
    assert len(answers) > 200
    assert {status for _, status, _ in answers} == {200}
    for client in clients:
        versions = [int(v) for _, _, v in client.answers]
        assert versions == sorted(versions), f"{client.name} got an older version after a newer one"
        assert versions[-1] == VERSIONS
        for asked, _status, version in client.answers:
            # A version answers only requests asked after it was published (the first one
            # before any), so no answer names a version that was not live yet.
            assert published_at[version] <= asked or version == served.published.version
    seen = {v for _, _, v in answers}
    assert len(seen) >= VERSIONS // 2, f"only {sorted(seen, key=int)} answered"
    growth = rss_bytes(pid) - baseline
    assert growth < 64 * 2**20, f"resident memory grew by {growth / 2**20:.0f} MiB over {VERSIONS - 3} swaps"
    assert served.service.metric("fraudstream_inference_model_swaps_total") >= VERSIONS
