"""gRPC serving that every service shares: unary methods, grpc.health.v1 and server reflection on
one port, as a component of the service runner (fraudstream_common.lifecycle).

HTTP/2, gRPC's framing, health and reflection run in fraudstream_grpc_bridge (tonic, in Rust, on
Tokio threads outside the GIL); here each call's message is parsed, handled by the servicer and
its answer serialized, on the event loop. The bridge wakes the loop once for all the calls that
arrived since it last looked, and they are started together: the calls of a busy server share
the loop's turns (and inference's scoring passes). grpc.aio, which served until this, woke the
loop twice a call from a poller thread and cost four times the CPU a call of an HTTP request on
uvicorn; measured with benchmarks/transport_floor.py (docs/benchmarks.md).

Where the bridge is not installed (`make install` skips it when no Rust toolchain new enough
can be had), grpc.aio serves the same methods, health and reflection instead, and says so at
start: `grpc_component` chooses.

A servicer is a plain object with one `async def Method(request, context)` per unary method of
its service (streaming methods are refused when the server is built); `context` is a
`CallContext`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from fraudstream_common.health import Readiness

try:
    from fraudstream_grpc_bridge import Server
except ImportError:  # installed without Rust: grpc_component serves with grpc.aio
    BRIDGE_INSTALLED = False
else:
    BRIDGE_INSTALLED = True

HEALTH_REFRESH_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
log = logging.getLogger(__name__)


class AbortError(Exception):
    """Ends a call with `code` and `details` (raised by `CallContext.abort`)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class CallContext:
    """What a servicer gets with each call: the part of grpc's ServicerContext fraudstream's
    servicers use."""

    __slots__ = ("_metadata",)

    def __init__(self, metadata: Iterable[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        """The call's ASCII metadata, keys in lower case (binary `-bin` entries are left out)."""
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise AbortError(code, details)


@dataclass(frozen=True)
class UnaryMethod:
    path: str
    request_type: type[Message]
    handle: Callable[[Any, CallContext], Awaitable[Message]]


def unary_methods(service: ServiceDescriptor, servicer: object) -> list[UnaryMethod]:
    """One entry per method of `service`, each handled by the servicer's method of its name."""
    streaming = [m.name for m in service.methods if m.client_streaming or m.server_streaming]
    if streaming:
        raise ValueError(f"{service.full_name} streams in {', '.join(streaming)}: only unary methods are served")
    methods = []
    for method in service.methods:
        handle = getattr(servicer, method.name, None)
        if handle is None:
            raise TypeError(f"{type(servicer).__name__} has no {method.name} for {service.full_name}")
        methods.append(
            UnaryMethod(
                path=f"/{service.full_name}/{method.name}",
                request_type=GetMessageClass(method.input_type),
                handle=handle,
            )
        )
    return methods


def file_descriptor_set(files: Iterable[FileDescriptor]) -> bytes:
    """`files` and every file they import, serialized, for reflection."""
    found = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        file.CopyToProto(found.file.add())

    for file in files:
        add(file)
    return found.SerializeToString()


class _Serving:
    """What both servers share: the service's methods, the address, the limits, and health that
    follows readiness (GrpcServer says how)."""

    name = "grpc"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        service: ServiceDescriptor,
        servicer: object,
        threads: int = 1,
        max_message_bytes: int = 4 * 1024 * 1024,
        readiness: Readiness | None = None,
        reuse_port: bool = False,
    ) -> None:
        """`threads`: the Tokio threads that run HTTP/2 beside the event loop (the bridge's). With
        `reuse_port`, processes of one service share the port."""
        self._methods = unary_methods(service, servicer)
        self._service = service
        self._host, self._port, self._threads, self._reuse_port = host, port, threads, reuse_port
        self._max_message_bytes = max_message_bytes
        self._service_name = service.full_name
        self._readiness = readiness
        self._stopped = asyncio.Event()
        self._stopping = False
        self.port: int | None = None

    async def _call(
        self, method: UnaryMethod, metadata: list[tuple[str, str]], message: bytes
    ) -> tuple[grpc.StatusCode, str, bytes]:
        """One call's status, its details and the serialized answer (empty unless OK)."""
        try:
            request = method.request_type.FromString(message)
        except DecodeError as error:
            return grpc.StatusCode.INVALID_ARGUMENT, f"unreadable request: {error}", b""
        try:
            response = await method.handle(request, CallContext(metadata))
        except AbortError as abort:
            return abort.code, abort.details, b""
        except Exception:
            log.exception("gRPC %s failed", method.path)
            return grpc.StatusCode.UNKNOWN, "the server failed to answer; see its log", b""
        return grpc.StatusCode.OK, "", response.SerializeToString()

    async def _set_serving(self, service_name: str, serving: bool) -> None:
        raise NotImplementedError

    async def _follow_readiness(self) -> None:
        # What makes a service ready (a model loaded by another thread, a dependency reachable)
        # has no event to wait on: look again, every so often.
        serving: bool | None = None
        while not self._stopping:
            ready = self._readiness is None or all((await self._readiness.evaluate()).values())
            if ready != serving and not self._stopping:
                await self._set_serving(self._service_name, ready)
                log.info("gRPC health of %s: %s", self._service_name, "SERVING" if ready else "NOT_SERVING")
                serving = ready
            if self._readiness is None:
                return
            await asyncio.sleep(HEALTH_REFRESH_SECONDS)

    async def _drain(self) -> None:
        """New calls refused, those in flight finished (for up to STOP_GRACE_SECONDS)."""
        raise NotImplementedError

    def _close(self) -> None:
        """Whatever must go once the server stopped."""

    async def stop(self) -> None:
        """Health says NOT_SERVING; new calls are refused while those in flight finish, for up
        to STOP_GRACE_SECONDS; then the port closes."""
        if self._stopping:
            return
        self._stopping = True
        try:
            if self.port is None:  # never started
                return
            for service in ("", self._service_name):
                await self._set_serving(service, False)
            await self._drain()
        finally:
            self._close()
            self._stopped.set()

    async def _serve_until_stopped(self) -> None:
        following = asyncio.create_task(self._follow_readiness())
        try:
            await self._stopped.wait()
        finally:
            following.cancel()


class GrpcServer(_Serving):
    """The component: `service` (served by `servicer`), health and reflection on `host:port`,
    through the bridge. Health says SERVING for the server as a whole ("": the process serves,
    as /healthz) from the start, and for the service while every check of `readiness` (the
    checks behind /readyz) passes, looked at every HEALTH_REFRESH_SECONDS: a client or balancer
    watching it stops sending to a replica that /readyz would take out."""

    def __init__(self, **options: Any) -> None:
        """_Serving's keyword arguments."""
        super().__init__(**options)
        self._server = Server(
            [m.path for m in self._methods], file_descriptor_set([self._service.file]), self._max_message_bytes
        )
        self._calls: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.port = self._server.start(self._host, self._port, self._threads, self._reuse_port, [self._service_name])
        loop.add_reader(self._server.wake_fd(), self._start_calls)
        log.info("gRPC serving %s on %s:%d", self._service_name, self._host, self.port)
        try:
            await self._serve_until_stopped()
        finally:
            loop.remove_reader(self._server.wake_fd())

    def _start_calls(self) -> None:
        for call_id, method, metadata, message in self._server.take():
            task = asyncio.create_task(self._answer(call_id, self._methods[method], metadata, message))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _answer(self, call_id: int, method: UnaryMethod, metadata: list[tuple[str, str]], message: bytes) -> None:
        code, details, answer = await self._call(method, metadata, message)
        self._server.respond(call_id, code.value[0], details, answer)

    async def _set_serving(self, service_name: str, serving: bool) -> None:
        self._server.set_serving(service_name, serving)

    async def _drain(self) -> None:
        self._server.begin_stop()  # GOAWAY: new calls are refused
        # The loop goes on answering the calls in flight while a thread waits for the end.
        await asyncio.to_thread(self._server.wait_stopped, STOP_GRACE_SECONDS)

    def _close(self) -> None:
        self._server.close()


class AioGrpcServer(_Serving):
    """GrpcServer's contract on grpc.aio, for where the bridge is not installed: the same
    methods, statuses, health, reflection, limits and stop."""

    def __init__(self, **options: Any) -> None:
        """_Serving's keyword arguments (`threads` is not used)."""
        super().__init__(**options)
        self._server: grpc.aio.Server | None = None
        self._health: Any = None

    async def run(self) -> None:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.max_send_message_length", self._max_message_bytes),
                ("grpc.so_reuseport", int(self._reuse_port)),
            ]
        )
        handlers = {
            method.path.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(self._answerer(method))
            for method in self._methods
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(self._service_name, handlers)])
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [self._service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server
        )
        address = f"{self._host}:{self._port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as error:  # grpcio says only that it failed to bind
            raise OSError(f"gRPC port {address} in use or not available: {error}") from error
        await server.start()
        self._server = server
        await self._set_serving("", True)
        log.warning(
            "gRPC serving %s on %s:%d with grpc.aio: the Rust bridge is not installed (make install needs Rust "
            "1.85 or later for it); grpc.aio's calls cost more CPU (docs/benchmarks.md)",
            self._service_name,
            self._host,
            self.port,
        )
        await self._serve_until_stopped()

    def _answerer(self, method: UnaryMethod) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]:
        async def answer(message: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            metadata = [
                (key.lower(), value)
                for key, value in context.invocation_metadata() or ()
                if isinstance(value, str) and not key.endswith("-bin")
            ]
            code, details, answer = await self._call(method, metadata, message)
            if code is not grpc.StatusCode.OK:
                await context.abort(code, details)
            return answer

        return answer

    async def _set_serving(self, service_name: str, serving: bool) -> None:
        from grpc_health.v1 import health_pb2

        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self._health.set(service_name, status)

    async def _drain(self) -> None:
        if self._server is not None:
            await self._server.stop(STOP_GRACE_SECONDS)


class GrpcComponent(Protocol):
    name: str
    port: int | None

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


def grpc_component(**options: Any) -> GrpcComponent:
    """GrpcServer (the bridge) where the bridge is installed, AioGrpcServer where it is not; both
    take _Serving's keyword arguments."""
    server: type[GrpcServer] | type[AioGrpcServer] = GrpcServer if BRIDGE_INSTALLED else AioGrpcServer
    return server(**options)
