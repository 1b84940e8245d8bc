"""Inference: fraudstream's /v1/predict and gRPC Predict against `mlflow models serve` of the
same model, side by side on this machine.

    uv run python benchmarks/inference_latency.py --rounds 3 --rate 500 --seconds 15
    uv run python benchmarks/inference_latency.py --workers 2    # fraudstream on both cores

Setup, once: a simulated history (600 customers, 50 days) backfilled into a Feast store of its
own, a model trained on it by the trainer (default hyperparameters: 400 trees) and published
on a fresh topic prefix; its customers' and terminals' final states pushed to a Redis database
of its own; `python -m fraudstream_inference` (auth on, stream scoring off) and
`mlflow models serve` of the same registered version (`--env-manager local`).

First each server gets `--warmup` seconds at `--rate`, not counted. Then each round, for each
server, from a separate load process (so the client does not share the servers' interpreter):
- latency: an open loop at `--rate` requests per second for `--seconds`; each latency from the
  request's scheduled time (coordinated omission counted), client side; for fraudstream also
  the server-side time it reports (`latency_ms`: decision cache, Feast read, scoring);
- throughput: closed loops of `--clients` (8, then 32) clients for `--seconds` each, requests
  per second, each server's best of them counted (a server's capacity, whatever concurrency
  suits it);
  and the CPU time each request cost the server's processes (all of its threads and child
  processes) and, apart, the platform's (Redis and the Kafka broker) and the load generator's,
  from the processes' CPU counters over the run. On a machine this size the load generator,
  Redis and the broker share the cores with the server, so the throughput moves with whatever
  else runs; the CPU per request moves less. Few clients leave a server that waits on I/O
  between calls idle: the throughput is then bounded by latency, not capacity. For fraudstream
  also the calls a scoring pass held on average (`fraudstream_inference_pass_rows`): calls that
  arrive together share a pass's Redis round trips and model run, so fewer calls a pass cost
  more CPU each, whatever the transport.
gRPC's clients share `--grpc-connections` HTTP/2 connections (8), as several client processes
would; each HTTP client has its own connection.
fraudstream's request is a transaction (its features read from Feast at request time); mlflow's
is the finished feature vector (it has no feature store): the peer does less work per request.
Prints each round and the medians over the rounds, and the ratios.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from kafka_measure import delete_topics

HERE = Path(__file__).resolve().parent
GHZ_WORKERS_AT_RATE = 8  # ghz's workers for the open loop at --rate
GHZ_CONNECTIONS = 8  # HTTP/2 connections ghz spreads its clients over (--grpc-connections)


# The load generators: vegeta (HTTP) and ghz (gRPC), Go programs built once from the Go module
# proxy into the platform's cache, so that the client costs little of the two cores.

VEGETA = ("vegeta", "github.com/tsenart/vegeta/v12@v12.12.0")
GHZ = ("ghz", "github.com/bojand/ghz/cmd/ghz@v0.120.0")


def go_tool(cache: Path, tool: tuple[str, str]) -> str:
    name, module = tool
    binary = cache / "bin" / name
    if not binary.exists():
        print(f"building {name} ({module}) ...", file=sys.stderr)
        env = {**os.environ, "GOBIN": str(binary.parent), "GOPATH": str(cache / "gopath"), "GOFLAGS": "-modcacherw"}
        go = shutil.which("go")
        if go is None:
            raise SystemExit("the load generators are Go programs: install Go (https://go.dev/dl/)")
        subprocess.run([go, "install", module], check=True, env=env)
    return str(binary)


def vegeta(
    binary: str, targets: list[dict[str, Any]], *, rate: float, seconds: float, workers: int = 0
) -> dict[str, Any]:
    """Open loop at `rate` (or, with rate 0, `workers` clients as fast as they can)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for target in targets:
            handle.write(json.dumps(target) + "\n")
    attack = [binary, "attack", "-format=json", f"-targets={handle.name}", f"-duration={seconds}s", "-timeout=10s"]
    attack += [f"-rate={rate:g}/s"] if rate else ["-rate=0", f"-max-workers={workers}", f"-workers={workers}"]
    results = subprocess.run(attack, check=True, capture_output=True).stdout
    report = subprocess.run([binary, "report", "-type=json"], input=results, check=True, capture_output=True).stdout
    os.unlink(handle.name)
    parsed = json.loads(report)
    latencies = parsed["latencies"]
    return {
        "p50_ms": latencies["50th"] / 1e6,
        "p99_ms": latencies["99th"] / 1e6,
        "per_second": parsed["throughput"],
        "errors": parsed["requests"] - round(parsed["success"] * parsed["requests"]),
    }


def ghz(
    binary: str,
    target: str,
    key: str,
    data: list[dict[str, Any]],
    *,
    rate: float,
    seconds: float,
    concurrency: int,
    connections: int = 1,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(data, handle)
    command = [
        binary,
        "--insecure",
        "--call",
        "fraudstream.v1.InferenceService/Predict",
        "--import-paths",
        str(HERE.parent / "proto"),
        "--proto",
        "fraudstream/v1/inference_service.proto",
        "--data-file",
        handle.name,
        "--metadata",
        json.dumps({"authorization": f"Bearer {key}"}),
        "--duration",
        f"{seconds}s",
        "--concurrency",
        str(concurrency),
        "--connections",
        str(min(connections, concurrency)),
        "--format",
        "json",
        "--skipFirst",
        "0",
    ]
    command += ["--rps", str(int(rate))] if rate else []
    finished = subprocess.run([*command, target], check=False, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"ghz failed: {finished.stderr or finished.stdout}")
    report = json.loads(finished.stdout)
    os.unlink(handle.name)
    by_percentile = {d["percentage"]: d["latency"] for d in report["latencyDistribution"]}
    return {
        "p50_ms": by_percentile[50] / 1e6,
        "p99_ms": by_percentile[99] / 1e6,
        "per_second": report["rps"],
        "errors": sum(count for status, count in report.get("statusCodeDistribution", {}).items() if status != "OK"),
        # ghz ends a timed run by cancelling the calls in flight (or, over several connections,
        # by closing them under those calls): name the statuses, so that those are told apart
        # from refusals.
        "statuses": _by_message(report.get("errorDistribution") or {}),
    }


def _by_message(errors: dict[str, int]) -> dict[str, int]:
    """ghz's error counts with the connections' addresses left out of the messages."""
    counts: dict[str, int] = {}
    for message, count in errors.items():
        anywhere = re.sub(r"read tcp \S+->\S+: ", "", message)
        counts[anywhere] = counts.get(anywhere, 0) + count
    return counts


# The driver -----------------------------------------------------------------------------------


def wait_http(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (http URLs built here)
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class CpuMeter:
    """CPU seconds (user + system) spent by a server's process tree and by the platform's
    processes (redis-server, the Kafka broker) between `start` and `stop`."""

    def __init__(self, server_pid: int) -> None:
        self._server = psutil.Process(server_pid)
        self._platform = [
            process
            for process in psutil.process_iter(["name", "cmdline"])
            if process.info["name"] == "redis-server" or "kafka.Kafka" in " ".join(process.info["cmdline"] or ())
        ]
        self._started = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        return _cpu_seconds([self._server, *self._server.children(recursive=True)]), _cpu_seconds(self._platform)

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> tuple[float, float]:
        server, platform = self._now()
        return server - self._started[0], platform - self._started[1]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def with_cpu(meter: CpuMeter, seconds: float, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A throughput run's result with the milliseconds of CPU per request of the server
    (`cpu_ms`), of the platform (`platform_cpu_ms`) and of the load generator (`client_cpu_ms`:
    the child processes `run` started and waited for)."""
    meter.start()
    clients_before = _children_cpu_seconds()
    result = run()
    client = _children_cpu_seconds() - clients_before
    server, platform = meter.stop()
    requests = max(result["per_second"] * seconds, 1.0)
    return {
        **result,
        "cpu_ms": server / requests * 1000,
        "platform_cpu_ms": platform / requests * 1000,
        "client_cpu_ms": client / requests * 1000,
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def histogram(http_port: int, name: str, label: str = "") -> dict[str, tuple[float, float]]:
    """One of fraudstream's histograms so far, from its /metrics (every worker's, summed): (count,
    sum) by the value of `label` ("" for a histogram without labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, list[float]] = {}
    for line in text.splitlines():
        for field, slot in (("_count", 0), ("_sum", 1)):
            prefix = f'{name}{field}{{{label}="' if label else f"{name}{field} "
            if line.startswith(prefix):
                value = line[len(prefix) : line.index('"', len(prefix))] if label else ""
                totals.setdefault(value, [0.0, 0.0])[slot] = float(line.rsplit(" ", 1)[1])
    return {value: (count, total) for value, (count, total) in sorted(totals.items())}


def gc_pauses(http_port: int) -> dict[str, tuple[float, float]]:
    """fraudstream's garbage-collector pauses so far: (count, seconds) by generation."""
    return histogram(http_port, "fraudstream_gc_pause_seconds", "generation")


def pass_rows(http_port: int) -> tuple[float, float]:
    """fraudstream's scoring passes so far and the calls they held (HTTP and gRPC together)."""
    return histogram(http_port, "fraudstream_inference_pass_rows").get("", (0.0, 0.0))


def rows_a_pass(before: tuple[float, float], after: tuple[float, float]) -> str:
    passes, rows = after[0] - before[0], after[1] - before[1]
    return f", {rows / passes:.1f} calls a scoring pass" if passes else ""


def gc_pauses_between(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> str:
    parts = []
    for generation, (count, seconds) in after.items():
        earlier = before.get(generation, (0.0, 0.0))
        parts.append(f"gen{generation} {count - earlier[0]:.0f} ({(seconds - earlier[1]) * 1000:.1f} ms)")
    return ", ".join(parts)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--warmup", type=float, default=5, help="seconds at --rate per server before the first round, not counted"
    )
    parser.add_argument(
        "--clients",
        type=lambda text: [int(count) for count in text.split(",")],
        default=[8, 32],
        help="closed-loop client counts for the throughput runs, comma-separated; each server's best counts",
    )
    parser.add_argument("--workers", type=int, default=1, help="fraudstream's worker processes")
    parser.add_argument(
        "--mlflow-workers", type=int, default=1, help="mlflow models serve's --workers (its default: 1)"
    )
    parser.add_argument(
        "--grpc-connections",
        type=int,
        default=GHZ_CONNECTIONS,
        help="HTTP/2 connections ghz spreads its clients over, as that many gRPC clients would (vegeta "
        "opens one per client)",
    )
    args = parser.parse_args()
    drive(
        args.rounds,
        args.rate,
        args.seconds,
        args.warmup,
        args.clients,
        args.workers,
        args.mlflow_workers,
        args.grpc_connections,
    )


def drive(
    rounds: int,
    rate: float,
    seconds: float,
    warmup: float,
    clients: list[int],
    workers: int,
    mlflow_workers: int,
    grpc_connections: int,
) -> None:
    import pandas as pd
    import redis
    from published_model import publish_model

    from fraudstream_cli.backfill import final_states
    from fraudstream_cli.platform.settings import PlatformSettings
    from fraudstream_common.apikeys import Scope, create_key
    from fraudstream_common.features.definitions import FEATURE_NAMES
    from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
    from fraudstream_feature_store.store import FeatureStateStore, open_store
    from fraudstream_simulator.config import SimulationConfig

    platform = PlatformSettings()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    scratch = Path(tempfile.mkdtemp(prefix="fraudstream-bench-inference-"))
    history = SimulationConfig(n_customers=600, n_terminals=1200, nb_days=50)
    published = publish_model(platform, prefix, scratch, history)
    world, model_name, online_url = published.world, published.model_name, published.online_url
    states = final_states(world.transactions, world.labels)
    store = FeatureStateStore(open_store(online_url, scratch / "registry.db", scratch / "offline"))
    store.push(
        {c: s.snapshot() for c, s in states.customers.items()}, {t: s.snapshot() for t, s in states.terminals.items()}
    )
    key = create_key(
        redis.Redis.from_url(platform.redis_url),
        [Scope.PREDICT],
        "bench",
        secret=DEVELOPMENT_API_KEY_SECRET,
        namespace=prefix,
    )

    http_port, grpc_port, mlflow_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": platform.kafka_bootstrap,
        "FRAUDSTREAM_TOPIC_PREFIX": prefix,
        "FRAUDSTREAM_REDIS_URL": platform.redis_url,
        "FRAUDSTREAM_MLFLOW_TRACKING_URI": platform.mlflow_url,
        "FRAUDSTREAM_REGISTERED_MODEL": model_name,
        "FRAUDSTREAM_FEATURE_STORE_REDIS_URL": online_url,
        "FRAUDSTREAM_FEATURE_REGISTRY": str(scratch / "registry.db"),
        "FRAUDSTREAM_FEATURE_OFFLINE_DIR": str(scratch / "offline"),
        "FRAUDSTREAM_HTTP_PORT": str(http_port),
        "FRAUDSTREAM_GRPC_PORT": str(grpc_port),
        "FRAUDSTREAM_STREAM_SCORING": "false",
        "FRAUDSTREAM_WORKERS": str(workers),
        "FRAUDSTREAM_RATE_LIMIT_PER_SECOND": "1000000",
        "FRAUDSTREAM_RATE_LIMIT_BURST": "1000000",
        "FRAUDSTREAM_LOG_LEVEL": "WARNING",
        "MLFLOW_TRACKING_URI": platform.mlflow_url,
    }
    logs = (scratch / "inference.log").open("wb"), (scratch / "mlflow-serve.log").open("wb")
    inference = subprocess.Popen(
        [sys.executable, "-m", "fraudstream_inference"], env=env, stdout=logs[0], stderr=subprocess.STDOUT
    )
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    serving = subprocess.Popen(
        [
            mlflow_bin,
            "models",
            "serve",
            "-m",
            f"models:/{model_name}/{published.version}",
            "--env-manager",
            "local",
            "-p",
            str(mlflow_port),
            "-h",
            "127.0.0.1",
            "--workers",
            str(mlflow_workers),
        ],
        env=env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    fraudstream_cpu, mlflow_cpu = CpuMeter(inference.pid), CpuMeter(serving.pid)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        wait_http(f"http://127.0.0.1:{mlflow_port}/ping")

        sample = world.transactions.sample(2000, random_state=0)
        when = (world.transactions["event_time"].max() + pd.Timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        requests = [
            {
                "customer_id": str(r.customer_id),
                "terminal_id": str(r.terminal_id),
                "amount": float(r.amount),  # type: ignore[arg-type]
                "timestamp": when,
            }
            for r in sample.itertuples()
        ]
        vectors = [
            [
                float(v)
                for v in store.request_features(
                    customer_id=r["customer_id"],
                    terminal_id=r["terminal_id"],
                    event_time=pd.Timestamp(when).timestamp(),
                    amount=r["amount"],
                ).values()
            ]
            for r in requests[:500]
        ]
        assert len(vectors[0]) == len(FEATURE_NAMES)
        cache = platform.home / "cache"
        vegeta_bin, ghz_bin = go_tool(cache, VEGETA), go_tool(cache, GHZ)
        bearer = {"Authorization": [f"Bearer {key}"], "Content-Type": ["application/json"]}
        results: dict[str, list[dict[str, Any]]] = {"http": [], "grpc": [], "mlflow": []}
        for n in range(rounds):
            run = f"r{n}-{uuid.uuid4().hex[:6]}"
            count = int(rate * seconds * 2) + 50_000  # every request its own transaction id

            def http_targets(tag: str, count: int = count, run: str = run) -> list[dict[str, Any]]:
                return [
                    {
                        "method": "POST",
                        "url": f"http://127.0.0.1:{http_port}/v1/predict",
                        "header": bearer,
                        "body": base64.b64encode(
                            json.dumps({**requests[i % len(requests)], "transaction_id": f"{run}-{tag}{i}"}).encode()
                        ).decode(),
                    }
                    for i in range(count)
                ]

            def grpc_data(tag: str, count: int = count, run: str = run) -> list[dict[str, Any]]:
                return [
                    {**requests[i % len(requests)], "transaction_id": f"{run}-{tag}{i}"}
                    for i in range(min(count, 20_000))
                ]

            mlflow_targets = [
                {
                    "method": "POST",
                    "url": f"http://127.0.0.1:{mlflow_port}/invocations",
                    "header": {"Content-Type": ["application/json"]},
                    "body": base64.b64encode(json.dumps({"inputs": [vector]}).encode()).decode(),
                }
                for vector in vectors
            ]
            grpc_target = f"127.0.0.1:{grpc_port}"
            if n == 0 and warmup > 0:
                # The broker, Redis and the servers were all just started: the first seconds of
                # traffic meet cold caches, the group coordinator loading and lazy imports.
                vegeta(vegeta_bin, http_targets("hw"), rate=rate, seconds=warmup)
                ghz(
                    ghz_bin,
                    grpc_target,
                    key,
                    grpc_data("gw"),
                    rate=rate,
                    seconds=warmup,
                    concurrency=GHZ_WORKERS_AT_RATE,
                    connections=grpc_connections,
                )
                vegeta(vegeta_bin, mlflow_targets, rate=rate, seconds=warmup)
            latencies: dict[str, Callable[[], dict[str, Any]]] = {
                "http": partial(vegeta, vegeta_bin, http_targets("hl"), rate=rate, seconds=seconds),
                "grpc": partial(
                    ghz,
                    ghz_bin,
                    grpc_target,
                    key,
                    grpc_data("gl"),
                    rate=rate,
                    seconds=seconds,
                    concurrency=GHZ_WORKERS_AT_RATE,
                    connections=grpc_connections,
                ),
                "mlflow": partial(vegeta, vegeta_bin, mlflow_targets, rate=rate, seconds=seconds),
            }

            def closed_loop(
                kind: str,
                count: int,
                tag: str,
                grpc_target: str = grpc_target,
                mlflow_targets: list[dict[str, Any]] = mlflow_targets,
            ) -> Callable[[], dict[str, Any]]:
                if kind == "http":
                    return partial(vegeta, vegeta_bin, http_targets(tag), rate=0, seconds=seconds, workers=count)
                if kind == "grpc":
                    return partial(
                        ghz,
                        ghz_bin,
                        grpc_target,
                        key,
                        grpc_data(tag),
                        rate=0,
                        seconds=seconds,
                        concurrency=count,
                        connections=grpc_connections,
                    )
                return partial(vegeta, vegeta_bin, mlflow_targets, rate=0, seconds=seconds, workers=count)

            meters = {"http": fraudstream_cpu, "grpc": fraudstream_cpu, "mlflow": mlflow_cpu}
            for kind, latency_run in latencies.items():
                collected = gc_pauses(http_port) if kind != "mlflow" else {}
                latency = latency_run()
                at_rate = f"p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms"
                statuses = f" {latency['statuses']}" if latency.get("statuses") else ""
                print(f"round {n} {kind:<7} at {rate:g}/s: {at_rate}, errors {latency['errors']}{statuses}")
                by_clients = {}
                for count in clients:
                    passes = pass_rows(http_port) if kind != "mlflow" else None
                    throughput = with_cpu(meters[kind], seconds, closed_loop(kind, count, f"t{count}-"))
                    by_clients[count] = throughput
                    statuses = f" {throughput['statuses']}" if throughput.get("statuses") else ""
                    batching = rows_a_pass(passes, pass_rows(http_port)) if passes is not None else ""
                    print(
                        f"round {n} {kind:<7} {count} clients: throughput {throughput['per_second']:.0f}/s, "
                        f"errors {throughput['errors']}{statuses}, CPU per request {throughput['cpu_ms']:.3f} ms "
                        f"(Redis + Kafka {throughput['platform_cpu_ms']:.3f} ms, "
                        f"load generator {throughput['client_cpu_ms']:.3f} ms){batching}"
                    )
                if kind != "mlflow":
                    pauses = gc_pauses_between(collected, gc_pauses(http_port))
                    print(f"round {n} {kind:<7} fraudstream's garbage collections (pauses): {pauses}")
                best = max(by_clients, key=lambda count: by_clients[count]["per_second"])
                results[kind].append({"latency": latency, "throughput": {**by_clients[best], "clients": best}})
        print()
        print(
            f"fraudstream: {workers} worker process(es), ghz over {grpc_connections} connection(s); "
            f"mlflow models serve: {mlflow_workers} worker(s)"
        )
        medians = {}
        for kind, rounds_ in results.items():
            medians[kind] = {
                "p50_ms": statistics.median(r["latency"]["p50_ms"] for r in rounds_),
                "p99_ms": statistics.median(r["latency"]["p99_ms"] for r in rounds_),
                "throughput": statistics.median(r["throughput"]["per_second"] for r in rounds_),
                "cpu_ms": statistics.median(r["throughput"]["cpu_ms"] for r in rounds_),
                "platform_cpu_ms": statistics.median(r["throughput"]["platform_cpu_ms"] for r in rounds_),
                "client_cpu_ms": statistics.median(r["throughput"]["client_cpu_ms"] for r in rounds_),
                "best_clients": [r["throughput"]["clients"] for r in rounds_],
            }
        print(f"throughput: each round's best over {', '.join(map(str, clients))} closed-loop clients")
        for kind, m in medians.items():
            at_rate = f"p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms"
            cpu = (
                f"CPU per request {m['cpu_ms']:.3f} ms (Redis + Kafka {m['platform_cpu_ms']:.3f} ms, "
                f"load generator {m['client_cpu_ms']:.3f} ms)"
            )
            best_at = "/".join(map(str, m["best_clients"]))
            print(f"median {kind:<7}: {at_rate}, throughput {m['throughput']:.0f}/s (best at {best_at} clients), {cpu}")
        versus_mlflow = medians["http"]["throughput"] / medians["mlflow"]["throughput"]
        print(f"throughput ratio fraudstream HTTP / mlflow serve: {versus_mlflow:.2f}")
        print(f"throughput ratio gRPC / HTTP: {medians['grpc']['throughput'] / medians['http']['throughput']:.2f}")
        print(f"p99 ratio gRPC / HTTP: {medians['grpc']['p99_ms'] / medians['http']['p99_ms']:.2f}")
        cpu_ratio = medians["mlflow"]["cpu_ms"] / medians["http"]["cpu_ms"]
        print(f"server CPU per request, mlflow serve / fraudstream HTTP: {cpu_ratio:.2f}")
        with_platform = medians["mlflow"]["cpu_ms"] / (medians["http"]["cpu_ms"] + medians["http"]["platform_cpu_ms"])
        print(f"... fraudstream's Redis and Kafka counted in: {with_platform:.2f}")
        print(f"server CPU per request, gRPC / HTTP: {medians['grpc']['cpu_ms'] / medians['http']['cpu_ms']:.2f}")
    finally:
        for process in (inference, serving):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        delete_topics(prefix)


if __name__ == "__main__":
    main()
