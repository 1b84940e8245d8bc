"""Faults under load, one after another on one running system (tests/chaos/system.py): each
while its own slice of the world streams at a fixed rate and clients ask for predictions.
After each: every valid transaction of the slice is on `transactions` once and has exactly one
prediction per model version on `predictions`, and every service came back by itself. At the
end, the feature state equals a rebuild from the source topics.

`make chaos` runs every fault; `make test` the ones not marked `chaos_slow`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from _pytest.mark import ParameterSet
from mlflow import MlflowClient

from fraudstream_cli.backfill import backfill, final_states
from fraudstream_cli.platform.kafka import KafkaBroker
from fraudstream_cli.platform.mlflow_server import MlflowServer
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.apikeys import KEY_PREFIX, digest_of
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.features.history import FeatureStates
from fraudstream_common.features.state import CustomerState, TerminalState
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
from tests.chaos import report
from tests.chaos.system import RATE, Segment, System, Toxiproxy, kill_platform_part, running_system, transaction_body
from tests.integration.features.test_one_definition import enriched_frame
from tests.integration.features.test_recovery import changelog_states
from tests.platform import PLATFORM
from tests.unit.common.features.test_one_definition import assert_same

pytestmark = pytest.mark.integration

REDIS_OUTAGE_SECONDS = 30
BROKER_OUTAGE_SECONDS = 10
REDIS_LATENCY_MS = 300
KAFKA_LATENCY_MS = 300
TOXIC_SECONDS = 15
MLFLOW_OUTAGE_SECONDS = 15
# Five minutes ahead of real time, less a margin for the trip: ingest refuses what lies more
# than its max_clock_skew_seconds (300) ahead of its own clock.
CLOCK_AHEAD = pd.Timedelta(minutes=5) - pd.Timedelta(seconds=5)
CLOCK_AHEAD_TRANSACTIONS = 200


def sigkill_and_restart(name: str) -> Callable[[System, Segment], None]:
    def fault(system: System, segment: Segment) -> None:
        service = system.services[name]
        service.kill()
        service.start(wait_ready=False)

    return fault


def broker_killed(system: System, segment: Segment) -> None:
    broker = KafkaBroker(PlatformSettings())
    kill_platform_part(broker.process)
    time.sleep(BROKER_OUTAGE_SECONDS)
    broker.start()


def mlflow_killed_while_publishing(system: System, segment: Segment) -> None:
    """MLflow killed as soon as the trainer's run for a retrain request appears in it, started
    again 15 s later; the version is published once MLflow is back, and inference serves it."""
    versions_before = system.published_versions()
    request_id = system.ask_for_retrain()
    tracking = MlflowClient(PLATFORM.mlflow_url)
    experiment = tracking.get_experiment_by_name(system.model_name)
    assert experiment is not None

    def run_started() -> bool:
        runs = tracking.search_runs([experiment.experiment_id], f"tags.retrain_request_id = '{request_id}'")
        return bool(runs)

    assert wait_for(run_started, timeout=120) is not None, "the trainer never started the requested run"
    mlflow = MlflowServer(PlatformSettings())
    kill_platform_part(mlflow.process)
    time.sleep(MLFLOW_OUTAGE_SECONDS)
    mlflow.start()

    def published() -> bool:
        return len(system.published_versions()) > len(versions_before)

    assert wait_for(published, timeout=300) is not None, "the requested version was never published"
    newest = system.published_versions()[-1]
    assert wait_for(lambda: system.serving_version() == newest, timeout=120) is not None, (
        f"inference did not swap in version {newest}"
    )


def redis_down(system: System, segment: Segment) -> None:
    system.redis.kill()
    time.sleep(REDIS_OUTAGE_SECONDS)
    system.redis.start()


ProxyOf = Callable[[System], Toxiproxy]


def replies_late(proxy_of: ProxyOf, milliseconds: int) -> Callable[[System, Segment], None]:
    def fault(system: System, segment: Segment) -> None:
        proxy_of(system).latency(milliseconds)
        time.sleep(TOXIC_SECONDS)
        proxy_of(system).latency(None)

    return fault


def connections_cut(proxy_of: ProxyOf) -> Callable[[System, Segment], None]:
    def fault(system: System, segment: Segment) -> None:
        proxy_of(system).connected(False)
        time.sleep(TOXIC_SECONDS)
        proxy_of(system).connected(True)

    return fault


def redis_proxy(system: System) -> Toxiproxy:
    return system.redis_proxy


def kafka_proxy(system: System) -> Toxiproxy:
    return system.kafka_proxy


def proxy_faults(store: str, proxy_of: ProxyOf, milliseconds: int) -> list[ParameterSet]:
    """Replies `milliseconds` late, then every connection cut, each for TOXIC_SECONDS."""
    return [
        pytest.param(
            Fault(
                f"{store} replies {milliseconds} ms late for {TOXIC_SECONDS} s", replies_late(proxy_of, milliseconds)
            ),
            id=f"{store.lower()}-slow",
            marks=pytest.mark.chaos_slow,
        ),
        pytest.param(
            Fault(f"{store} connections cut for {TOXIC_SECONDS} s", connections_cut(proxy_of)),
            id=f"{store.lower()}-cut",
            marks=pytest.mark.chaos_slow,
        ),
    ]


def clock_ahead(system: System, segment: Segment) -> None:
    """A client system whose clock runs five minutes ahead sends transactions through ingest
    while the world replays (issue 20: one such transaction at a partition's head stopped that
    partition for as long as the replay ran). Its customers and terminals are its own: a
    transaction eight years after a replayed customer's history would end that history's windows
    (see docs/testing.md), which is the replay's affair, not this fault's."""
    rows = system.history.transactions.sample(CLOCK_AHEAD_TRANSACTIONS, random_state=11)
    bodies: list[dict[str, object]] = []
    for i, row in enumerate(rows.itertuples()):
        when = pd.Timestamp.now(tz="UTC") + CLOCK_AHEAD
        body = transaction_body(f"ahead-{i}", row, when)
        body.update(customer_id=f"ahead-c{i % 7}", terminal_id=f"ahead-t{i % 5}")
        bodies.append(body)
        if len(bodies) == 20:
            system.post_transactions(bodies)
            segment.extra_ids.update(str(b["transaction_id"]) for b in bodies)
            bodies = []
            time.sleep(0.5)


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[System, Segment], None]


FAULTS = [
    pytest.param(Fault("features SIGKILLed", sigkill_and_restart("features")), id="features-killed"),
    pytest.param(Fault("inference SIGKILLed", sigkill_and_restart("inference")), id="inference-killed"),
    pytest.param(Fault("producer clock 5 min ahead", clock_ahead), id="clock-ahead"),
    pytest.param(
        Fault("ingest SIGKILLed", sigkill_and_restart("ingest")), id="ingest-killed", marks=pytest.mark.chaos_slow
    ),
    pytest.param(
        Fault("monitor SIGKILLed", sigkill_and_restart("monitor")), id="monitor-killed", marks=pytest.mark.chaos_slow
    ),
    pytest.param(
        Fault(f"Redis down {REDIS_OUTAGE_SECONDS} s", redis_down), id="redis-down", marks=pytest.mark.chaos_slow
    ),
    *proxy_faults("Redis", redis_proxy, REDIS_LATENCY_MS),
    pytest.param(
        Fault(
            f"MLflow killed while a version is published, back after {MLFLOW_OUTAGE_SECONDS} s",
            mlflow_killed_while_publishing,
        ),
        id="mlflow-killed",
        marks=pytest.mark.chaos_slow,
    ),
    *proxy_faults("Kafka", kafka_proxy, KAFKA_LATENCY_MS),
    pytest.param(
        Fault(f"Kafka broker killed, back after {BROKER_OUTAGE_SECONDS} s", broker_killed),
        id="broker-killed",
        marks=pytest.mark.chaos_slow,
    ),
]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(tmp_path_factory.mktemp("chaos")) as system:
        yield system


@pytest.fixture(scope="module")
def segments(system: System) -> list[Segment]:
    return list(system.segments(len(FAULTS)))


def wait_for(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `check()` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    return None


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_loses_nothing_and_duplicates_nothing(
    fault: Fault, system: System, segments: list[Segment], request: pytest.FixtureRequest
) -> None:
    segment = segments[[param.values[0] for param in FAULTS].index(fault)]
    assert system.clients is not None
    system.restart_exited()
    assert system.all_ready(), f"a service was not ready before the fault: {system.exited()}"
    system.clients.reset()
    stream = system.stream(segment)
    time.sleep(len(segment.world.transactions) / RATE / 3)
    fault.apply(system, segment)
    healed = time.monotonic()
    ready = wait_for(system.all_ready, timeout=180)
    stream.join(timeout=600)
    assert not stream.is_alive(), "the simulator could not deliver its slice"
    expected = segment.transaction_ids

    def every_transaction_predicted() -> bool:
        predicted = {key[0] for key in system.predictions.snapshot()}
        return expected <= predicted

    caught_up = wait_for(every_transaction_predicted, timeout=300)
    caught_up_seconds = time.monotonic() - healed if caught_up is not None else float("nan")
    time.sleep(3)  # anything written twice would follow soon after
    on_transactions = system.transactions.snapshot()
    predictions = system.predictions.snapshot()
    predicted = {key[0] for key in predictions}
    lost = len(expected - predicted) + len(expected - {key[0] for key in on_transactions})
    duplicated = sum(n - 1 for (tid,), n in on_transactions.items() if tid in expected) + sum(
        n - 1 for (tid, _), n in predictions.items() if tid in expected
    )
    clients = system.clients.reset()
    exited = system.exited()
    report.ROWS.append(
        report.Row(
            fault=fault.name,
            transactions=len(expected),
            ready_seconds=ready if ready is not None else float("nan"),
            caught_up_seconds=caught_up_seconds,
            lost=lost,
            duplicated=duplicated,
            client_answers=clients.answered,
            degraded_answers=clients.degraded,
            client_errors=clients.errors,
            exited=", ".join(exited) or "-",
        )
    )
    assert not exited, f"{exited} exited instead of recovering; see {system.directory / 'logs'}"
    assert ready is not None, "a service was not ready again within 180 s"
    assert (lost, duplicated) == (0, 0)


def held_states(states: FeatureStates) -> FeatureStates:
    """The states that hold something: a terminal that only a genuine label named (a label of a
    transaction outside the slices streamed) has an empty state in the rebuild and none in the
    changelog, which is the same."""
    return FeatureStates(
        {key: state for key, state in states.customers.items() if state != CustomerState()},
        {key: state for key, state in states.terminals.items() if state != TerminalState()},
    )


def test_feature_state_equals_a_rebuild_from_the_source_topics(system: System) -> None:
    transactions, labels = system.rebuild_frames()
    expected = backfill(transactions, labels).set_index("transaction_id")
    streamed = enriched_frame(system.topics, len(expected))
    assert_same(streamed.loc[expected.index], expected, list(FEATURE_NAMES))
    # Labels change no vector of their own: the last ones may still be on their way to the state.
    expected_states = held_states(final_states(transactions, labels))
    deadline = time.monotonic() + 60
    while (states := held_states(changelog_states(system.topics))) != expected_states:
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    differing = {
        kind: [
            (key, streamed_states.get(key), rebuilt.get(key))
            for key in sorted(set(streamed_states) | set(rebuilt))
            if streamed_states.get(key) != rebuilt.get(key)
        ][:2]
        for kind, streamed_states, rebuilt in (
            ("customer", states.customers, expected_states.customers),
            ("terminal", states.terminals, expected_states.terminals),
        )
    }
    assert states == expected_states, f"changelog (streamed) against rebuilt, first differences: {differing}"


def test_no_key_material_in_any_log(system: System) -> None:
    """After every fault, with keys sent on every request: no service logged a key, a key's
    digest, or the secret the key records are signed with."""
    secrets = [system.predict_key, system.ingest_key, DEVELOPMENT_API_KEY_SECRET]
    secrets += [digest_of(key) for key in (system.predict_key, system.ingest_key)]
    logs = sorted((system.directory / "logs").glob("*.log"))
    assert logs
    any_key = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{16}")
    leaks = []
    for log in logs:
        text = log.read_text(errors="replace")
        leaks += [(log.name, secret[:6]) for secret in secrets if secret in text]
        leaks += [(log.name, found.group()[:6]) for found in any_key.finditer(text)]
    assert not leaks, f"key material in logs: {leaks}"
