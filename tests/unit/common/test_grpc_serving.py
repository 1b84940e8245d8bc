"""gRPC serving's Python side, without sockets: which methods a service description gives, what
reflection is sent, and a servicer's abort."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2

from fraudstream_common import grpc_serving
from fraudstream_common.grpc_serving import AbortError, CallContext, file_descriptor_set, unary_methods
from fraudstream_common.schemas.v1 import inference_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["InferenceService"]


class Servicer:
    async def Predict(self, request: pb.PredictRequest, context: CallContext) -> pb.PredictResponse:  # noqa: N802
        return pb.PredictResponse()

    async def PredictBatch(  # noqa: N802
        self, request: pb.PredictBatchRequest, context: CallContext
    ) -> pb.PredictBatchResponse:
        return pb.PredictBatchResponse()


def test_each_method_is_routed_by_its_path_to_the_servicer_method_of_its_name() -> None:
    servicer = Servicer()
    methods = {m.path: m for m in unary_methods(SERVICE, servicer)}
    assert set(methods) == {"/fraudstream.v1.InferenceService/Predict", "/fraudstream.v1.InferenceService/PredictBatch"}
    predict = methods["/fraudstream.v1.InferenceService/Predict"]
    assert predict.request_type is pb.PredictRequest
    assert predict.handle == servicer.Predict


def test_a_servicer_without_a_method_is_refused() -> None:
    class Incomplete:
        async def Predict(self, request: pb.PredictRequest, context: CallContext) -> pb.PredictResponse:  # noqa: N802
            return pb.PredictResponse()

    with pytest.raises(TypeError, match=r"Incomplete has no PredictBatch for fraudstream\.v1\.InferenceService"):
        unary_methods(SERVICE, Incomplete())


def test_streaming_methods_are_refused() -> None:
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]  # Watch streams its answers
    with pytest.raises(ValueError, match=r"grpc\.health\.v1\.Health streams in Watch"):
        unary_methods(health, object())


def test_reflection_gets_the_file_and_everything_it_imports_once_each() -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(file_descriptor_set([pb.DESCRIPTOR, pb.DESCRIPTOR]))
    names = [f.name for f in files.file]
    assert names[-1] == pb.DESCRIPTOR.name
    assert "google/protobuf/timestamp.proto" in names
    assert len(names) == len(set(names))
    # Each file comes after the files it imports, as a descriptor pool needs them.
    for position, file in enumerate(files.file):
        assert set(file.dependency) <= set(names[:position])


@pytest.mark.anyio
async def test_abort_ends_the_call_with_its_status() -> None:
    context = CallContext([("authorization", "Bearer k")])
    assert dict(context.invocation_metadata()) == {"authorization": "Bearer k"}
    with pytest.raises(AbortError) as aborted:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
    assert (aborted.value.code, aborted.value.details) == (grpc.StatusCode.PERMISSION_DENIED, "no")


@pytest.mark.parametrize(
    ("installed", "served_by"),
    [
        pytest.param(
            True,
            "GrpcServer",
            marks=pytest.mark.skipif(not grpc_serving.BRIDGE_INSTALLED, reason="installed without the bridge"),
        ),
        (False, "AioGrpcServer"),
    ],
)
def test_grpc_is_served_by_the_bridge_where_it_is_installed_else_by_grpc_aio(
    installed: bool, served_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grpc_serving, "BRIDGE_INSTALLED", installed)
    server = grpc_serving.grpc_component(host="127.0.0.1", port=0, service=SERVICE, servicer=Servicer())
    assert type(server).__name__ == served_by
