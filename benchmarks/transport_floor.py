"""The transports alone: what an HTTP call and a gRPC call cost the server before any scoring,
as a floor under benchmarks/inference_latency.py's gRPC / HTTP comparison.

    uv run python benchmarks/transport_floor.py --rounds 3 --seconds 10

Two servers that answer a fixed PredictResponse and do nothing else, on the stacks inference
runs: uvicorn on uvloop with a plain ASGI app that reads and parses the JSON body (as
`/v1/predict` does), and fraudstream_common.grpc_serving on uvloop serving
`InferenceService.Predict` (the request parsed, the answer serialized) as inference serves it,
with its default threads. Each round, for each, 8 clients in a closed loop for `--seconds` from
the same Go load generators (vegeta, ghz over 8 connections), and the CPU time each request cost
the server's process.
Prints each round, the medians and the ratio gRPC / HTTP.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from typing import Any

from fraudstream_inference.settings import InferenceSettings

CLIENTS = 8
GRPC_THREADS = InferenceSettings.model_fields["grpc_threads"].default
REQUEST = {
    "transaction_id": "tx-1",
    "customer_id": "c-1",
    "terminal_id": "t-1",
    "amount": 12.5,
    "timestamp": "2026-11-23T08:00:00Z",
}
ANSWER = {
    "transaction_id": "tx-1",
    "score": 0.01,
    "decision": "approve",
    "model_version": "1",
    "degraded": False,
    "latency_ms": 0.5,
}


async def _serve_http(port: int) -> None:
    import orjson
    import uvicorn

    body = orjson.dumps(ANSWER)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if raw:  # the readiness probe's GET has none
            orjson.loads(raw)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    await uvicorn.Server(config).serve()


async def _serve_grpc(port: int) -> None:
    from fraudstream_common.grpc_serving import CallContext, GrpcServer
    from fraudstream_common.schemas.v1 import inference_service_pb2 as pb
    from fraudstream_common.schemas.v1.prediction_pb2 import Decision

    answer = pb.PredictResponse(
        transaction_id="tx-1", score=0.01, decision=Decision.DECISION_APPROVE, model_version="1", latency_ms=0.5
    )

    class Servicer:
        async def Predict(self, request: pb.PredictRequest, context: CallContext) -> pb.PredictResponse:  # noqa: N802
            return answer

        async def PredictBatch(  # noqa: N802
            self, request: pb.PredictBatchRequest, context: CallContext
        ) -> pb.PredictBatchResponse:
            return pb.PredictBatchResponse(responses=[answer for _ in request.requests])

    await GrpcServer(
        host="127.0.0.1",
        port=port,
        service=pb.DESCRIPTOR.services_by_name["InferenceService"],
        servicer=Servicer(),
        threads=GRPC_THREADS,
    ).run()


def serve(transport: str, port: int) -> None:
    import uvloop

    uvloop.run(_serve_http(port) if transport == "http" else _serve_grpc(port))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--serve", choices=["http", "grpc"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        drive(args.rounds, args.seconds)


def drive(rounds: int, seconds: float) -> None:
    from inference_latency import (
        GHZ,
        GHZ_CONNECTIONS,
        VEGETA,
        CpuMeter,
        free_port,
        ghz,
        go_tool,
        vegeta,
        wait_http,
        with_cpu,
    )

    from fraudstream_cli.platform.settings import PlatformSettings

    cache = PlatformSettings().home / "cache"
    vegeta_bin, ghz_bin = go_tool(cache, VEGETA), go_tool(cache, GHZ)
    http_port, grpc_port = free_port(), free_port()
    servers = {
        kind: subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)])
        for kind, port in (("http", http_port), ("grpc", grpc_port))
    }
    try:
        wait_http(f"http://127.0.0.1:{http_port}/", timeout=60)
        time.sleep(2)  # the gRPC server starts alongside; ghz would fail on a closed port
        http_targets = [
            {
                "method": "POST",
                "url": f"http://127.0.0.1:{http_port}/v1/predict",
                "header": {"Authorization": ["Bearer key"], "Content-Type": ["application/json"]},
                "body": base64.b64encode(json.dumps(REQUEST).encode()).decode(),
            }
        ]
        runs = {
            "http": partial(vegeta, vegeta_bin, http_targets, rate=0, seconds=seconds, workers=CLIENTS),
            "grpc": partial(
                ghz,
                ghz_bin,
                f"127.0.0.1:{grpc_port}",
                "key",
                [REQUEST],
                rate=0,
                seconds=seconds,
                concurrency=CLIENTS,
                connections=GHZ_CONNECTIONS,
            ),
        }
        results: dict[str, list[dict[str, float]]] = {"http": [], "grpc": []}
        for n in range(rounds):
            for kind, run in runs.items():
                result = with_cpu(CpuMeter(servers[kind].pid), seconds, run)
                results[kind].append({"per_second": result["per_second"], "cpu_ms": result["cpu_ms"]})
                print(
                    f"round {n} {kind}: throughput {result['per_second']:.0f}/s ({CLIENTS} clients), "
                    f"CPU per request {result['cpu_ms']:.3f} ms, errors {result['errors']}"
                )
        medians = {
            kind: {measure: statistics.median(r[measure] for r in rows) for measure in ("per_second", "cpu_ms")}
            for kind, rows in results.items()
        }
        print()
        for kind, m in medians.items():
            print(f"median {kind}: throughput {m['per_second']:.0f}/s, CPU per request {m['cpu_ms']:.3f} ms")
        print(f"CPU per request, gRPC / HTTP: {medians['grpc']['cpu_ms'] / medians['http']['cpu_ms']:.2f}")
        print(f"throughput, gRPC / HTTP: {medians['grpc']['per_second'] / medians['http']['per_second']:.2f}")
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
