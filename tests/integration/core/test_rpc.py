"""A real gRPC server built by GrpcServer: health, reflection, the domain-error mapping and the trace context
crossing a call, with a tracer provider that records spans and with one that does not (no exporter)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from parley.rooms.v1 import rooms_pb2, rooms_pb2_grpc

from services.core.embedded_broker import free_port
from services.core.errors import NOT_FOUND, ParleyError, StartupError, from_rpc_error
from services.core.rpc import GrpcServer, check_health, open_channel
from services.core.telemetry import create_tracer_provider, records_spans


class Rooms(rooms_pb2_grpc.RoomServiceServicer):
    async def GetRoom(
        self, request: rooms_pb2.GetRoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.Room:
        if request.room_id == "crash":
            raise RuntimeError("secret internals")
        if request.room_id == "trace":
            # The trace this call runs in, as logs and staged facts see it.
            trace_id = trace.get_current_span().get_span_context().trace_id
            return rooms_pb2.Room(room_id=format(trace_id, "032x"))
        raise NOT_FOUND(f"room {request.room_id} does not exist", room_id=request.room_id)


@pytest.fixture(params=["recording", "not recording"])
def provider(request: pytest.FixtureRequest) -> TracerProvider:
    if request.param == "recording":
        return TracerProvider()
    provider = create_tracer_provider("rpc-test", set_global=False)
    assert not records_spans(provider)
    return provider


@pytest.fixture
async def server(provider: TracerProvider) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(f"127.0.0.1:{free_port()}", tracer_provider=provider)
    server.add_servicer(
        rooms_pb2_grpc.add_RoomServiceServicer_to_server,
        Rooms(),
        rooms_pb2.DESCRIPTOR.services_by_name["RoomService"],
    )
    await server.start()
    yield server
    await server.stop(0)


async def test_health_says_not_serving_until_marked_and_again_while_draining(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(server.listen_address) as channel:
        assert await check_health(channel, timeout_s=2) == "NOT_SERVING"
        await server.mark_serving()
        assert await check_health(channel, timeout_s=2) == "SERVING"
        per_service = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="parley.rooms.v1.RoomService")
        )
        assert per_service.status == health_pb2.HealthCheckResponse.SERVING
        await server.drain()
        assert await check_health(channel, timeout_s=2) == "NOT_SERVING"


async def test_reflection_lists_the_registered_services(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(server.listen_address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for response in responses:
            names = {service.name for service in response.list_services_response.service}
            break
    assert {"parley.rooms.v1.RoomService", "grpc.health.v1.Health"} <= names


async def test_a_domain_error_crosses_the_wire_with_its_code_and_metadata(
    server: GrpcServer, provider: TracerProvider
) -> None:
    channel = open_channel(server.listen_address, tracer_provider=provider)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rooms_pb2_grpc.RoomServiceStub(channel).GetRoom(rooms_pb2.GetRoomRequest(room_id="r1"))
    await channel.close()
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    error = from_rpc_error(raised.value)
    assert isinstance(error, ParleyError)
    assert error.kind == NOT_FOUND
    assert error.message == "room r1 does not exist"
    assert error.metadata == {"room_id": "r1"}


async def test_a_call_runs_in_the_trace_of_its_caller(server: GrpcServer, provider: TracerProvider) -> None:
    channel = open_channel(server.listen_address, tracer_provider=provider)
    stub = rooms_pb2_grpc.RoomServiceStub(channel)
    try:
        with provider.get_tracer(__name__).start_as_current_span("caller") as span:
            answer = await stub.GetRoom(rooms_pb2.GetRoomRequest(room_id="trace"))
        # Outside any span a call still gets a trace of its own.
        untraced = await stub.GetRoom(rooms_pb2.GetRoomRequest(room_id="trace"))
    finally:
        await channel.close()
    assert answer.room_id == format(span.get_span_context().trace_id, "032x")
    assert untraced.room_id not in ("0" * 32, answer.room_id)


async def test_an_unexpected_exception_is_internal_and_leaks_nothing(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(server.listen_address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await rooms_pb2_grpc.RoomServiceStub(channel).GetRoom(rooms_pb2.GetRoomRequest(room_id="crash"))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (raised.value.details() or "")
    assert from_rpc_error(raised.value).code == -90013


async def test_a_port_in_use_is_a_startup_error_naming_it(server: GrpcServer) -> None:
    second = GrpcServer(server.listen_address, tracer_provider=TracerProvider())
    with pytest.raises(StartupError, match=f"cannot listen for gRPC on {server.listen_address}"):
        await second.start()
