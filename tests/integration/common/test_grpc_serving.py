"""gRPC serving (fraudstream_common.grpc_serving over fraudstream_grpc_bridge, and over grpc.aio
where the bridge is not installed) on real sockets, with grpcio's own client: calls answered
with their metadata, statuses as the servicer says, messages over the limit refused, health
following the service's readiness both ways, reflection, and a stop that lets the calls in
flight finish."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from fraudstream_common import grpc_serving
from fraudstream_common.grpc_serving import AioGrpcServer, CallContext, GrpcComponent, GrpcServer
from fraudstream_common.health import Readiness
from fraudstream_common.schemas.v1 import inference_service_pb2 as pb
from fraudstream_common.schemas.v1 import inference_service_pb2_grpc as pb_grpc
from tests.platform import free_port

pytestmark = pytest.mark.anyio

SERVICE = pb.DESCRIPTOR.services_by_name["InferenceService"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_MESSAGE_BYTES = 4096
SERVERS = [
    pytest.param(
        GrpcServer,
        id="bridge",
        marks=pytest.mark.skipif(not grpc_serving.BRIDGE_INSTALLED, reason="installed without the bridge (no Rust)"),
    ),
    pytest.param(AioGrpcServer, id="grpc.aio"),
]
ServerType = type[GrpcServer] | type[AioGrpcServer]


class Servicer:
    """Answers with what it was sent; a transaction id says what else to do."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def Predict(self, request: pb.PredictRequest, context: CallContext) -> pb.PredictResponse:  # noqa: N802
        self.entered.set()
        if request.transaction_id == "abort":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "told to abort")
        if request.transaction_id == "fail":
            raise RuntimeError("a bug")
        if request.transaction_id == "slow":
            await self.release.wait()
        if request.transaction_id == "hold the loop":
            time.sleep(0.5)  # noqa: ASYNC251 - the point: the loop can take nothing meanwhile
        caller = dict(context.invocation_metadata()).get("x-caller", "")
        return pb.PredictResponse(transaction_id=request.transaction_id, model_version=caller, score=request.amount)

    async def PredictBatch(  # noqa: N802
        self, request: pb.PredictBatchRequest, context: CallContext
    ) -> pb.PredictBatchResponse:
        return pb.PredictBatchResponse(
            responses=[pb.PredictResponse(transaction_id=r.transaction_id) for r in request.requests]
        )


@pytest.fixture(params=SERVERS)
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[GrpcComponent, Servicer, int]]:
    servicer = Servicer()
    port = free_port()
    server: GrpcComponent = request.param(
        host="127.0.0.1", port=port, service=SERVICE, servicer=servicer, max_message_bytes=MAX_MESSAGE_BYTES
    )
    running = asyncio.create_task(server.run())
    try:
        yield server, servicer, port
    finally:
        await server.stop()
        await running


async def test_calls_are_answered_with_their_metadata_and_statuses(
    served: tuple[GrpcComponent, Servicer, int],
) -> None:
    _, _, port = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.InferenceServiceStub(channel)
        answers = await asyncio.gather(
            *(
                stub.Predict(pb.PredictRequest(transaction_id=f"t{n}", amount=n), metadata=(("x-caller", f"c{n}"),))
                for n in range(200)
            )
        )
        assert [(a.transaction_id, a.model_version, a.score) for a in answers] == [
            (f"t{n}", f"c{n}", n) for n in range(200)
        ]
        for compression in (grpc.Compression.Gzip, grpc.Compression.Deflate):
            squeezed = await stub.Predict(pb.PredictRequest(transaction_id="z" * 1000), compression=compression)
            assert squeezed.transaction_id == "z" * 1000
        batch = await stub.PredictBatch(pb.PredictBatchRequest(requests=[pb.PredictRequest(transaction_id="b")]))
        assert [r.transaction_id for r in batch.responses] == ["b"]

        with pytest.raises(grpc.aio.AioRpcError) as aborted:
            await stub.Predict(pb.PredictRequest(transaction_id="abort"))
        assert aborted.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert aborted.value.details() == "told to abort"
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Predict(pb.PredictRequest(transaction_id="fail"))
        assert failed.value.code() == grpc.StatusCode.UNKNOWN
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Predict(pb.PredictRequest(transaction_id="x" * MAX_MESSAGE_BYTES))
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.aio.AioRpcError) as inflated_too_big:  # small on the wire, over the limit unpacked
            await stub.Predict(
                pb.PredictRequest(transaction_id="x" * MAX_MESSAGE_BYTES), compression=grpc.Compression.Gzip
            )
        assert inflated_too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.aio.AioRpcError) as answer_too_big:
            # The answer echoes the caller's metadata: a small request, an answer over the limit.
            await stub.Predict(pb.PredictRequest(transaction_id="t"), metadata=(("x-caller", "c" * MAX_MESSAGE_BYTES),))
        assert answer_too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        unknown = channel.unary_unary("/fraudstream.v1.InferenceService/Explain")
        with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
            await unknown(b"")
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
        unreadable = channel.unary_unary("/fraudstream.v1.InferenceService/Predict")
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await unreadable(b"\xff\xff\xff")
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # After all that, the server still answers.
        assert (await stub.Predict(pb.PredictRequest(transaction_id="after"))).transaction_id == "after"


async def test_calls_that_arrive_while_the_loop_is_busy_are_taken_together(
    served: tuple[GrpcComponent, Servicer, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, port = served
    if not isinstance(server, GrpcServer):
        pytest.skip("the bridge's batching")
    bridge = server._server
    taken: list[int] = []
    take = bridge.take

    def counted() -> list[tuple[int, int, list[tuple[str, str]], bytes]]:
        calls = take()
        taken.append(len(calls))
        return calls

    monkeypatch.setattr(server, "_server", _Counting(bridge, counted))

    def call_while_the_loop_is_held() -> list[str]:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.InferenceServiceStub(channel)
            holding = stub.Predict.future(pb.PredictRequest(transaction_id="hold the loop"), timeout=10)
            time.sleep(0.1)  # the held call is running
            others = [stub.Predict.future(pb.PredictRequest(transaction_id=f"t{n}"), timeout=10) for n in range(20)]
            return [holding.result().transaction_id] + [f.result().transaction_id for f in others]

    answered = await asyncio.to_thread(call_while_the_loop_is_held)
    assert answered == ["hold the loop"] + [f"t{n}" for n in range(20)]
    # The 20 arrived while the loop slept: one wake-up took them all.
    assert max(taken) == 20, taken


class _Counting:
    """The bridge, with `take` replaced."""

    def __init__(self, bridge: object, take: object) -> None:
        self._bridge = bridge
        self.take = take

    def __getattr__(self, name: str) -> object:
        return getattr(self._bridge, name)


async def test_reflection_serves_the_service_and_what_it_imports(served: tuple[GrpcComponent, Servicer, int]) -> None:
    _, _, port = served
    # grpcio's reflection client is synchronous: it runs beside the loop that serves.
    await asyncio.to_thread(reflect, port)


def reflect(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {SERVICE.full_name, "grpc.health.v1.Health"} <= set(database.get_services())
        method = DescriptorPool(database).FindServiceByName(SERVICE.full_name).FindMethodByName("Predict")
        assert method.input_type.full_name == "fraudstream.v1.PredictRequest"
        assert "timestamp" in method.input_type.fields_by_name  # google/protobuf/timestamp.proto served too


async def test_stop_lets_calls_in_flight_finish(served: tuple[GrpcComponent, Servicer, int]) -> None:
    server, servicer, port = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.InferenceServiceStub(channel)
        in_flight = asyncio.ensure_future(stub.Predict(pb.PredictRequest(transaction_id="slow"), timeout=10))
        await asyncio.wait_for(servicer.entered.wait(), 10)
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done(), "the stop waits for the call in flight"
        servicer.release.set()
        assert (await in_flight).transaction_id == "slow"
        await stopping


async def until(health: health_pb2_grpc.HealthStub, service: str, status: int) -> None:
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    deadline = time.monotonic() + 5
    while True:
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:  # NOT_FOUND: not yet set
                raise
        else:
            if answer.status == status:
                return
        assert time.monotonic() < deadline, f"{service or 'the server'} never said {name}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("server_type", SERVERS)
async def test_health_follows_readiness_both_ways(server_type: ServerType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_serving, "HEALTH_REFRESH_SECONDS", 0.05)
    dependency = {"up": False}

    async def dependency_reachable() -> bool:
        return dependency["up"]

    readiness = Readiness()
    readiness.add("dependency", dependency_reachable)
    port = free_port()
    server = server_type(host="127.0.0.1", port=port, service=SERVICE, servicer=Servicer(), readiness=readiness)
    serving = asyncio.create_task(server.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await until(health, "", SERVING)  # the process serves, whatever its dependencies
            await until(health, SERVICE.full_name, NOT_SERVING)
            dependency["up"] = True
            await until(health, SERVICE.full_name, SERVING)
            dependency["up"] = False
            await until(health, SERVICE.full_name, NOT_SERVING)
    finally:
        await server.stop()
        await serving


@pytest.mark.parametrize("server_type", SERVERS)
async def test_a_port_in_use_is_refused(server_type: ServerType) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = server_type(host="127.0.0.1", port=port, service=SERVICE, servicer=Servicer())
        with pytest.raises(OSError, match="in use"):
            await server.run()
