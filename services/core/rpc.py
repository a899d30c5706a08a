"""gRPC plumbing shared by every service: a server with standard health checking, reflection, tracing
and the one place domain errors become gRPC status; and client channels that trace their calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.trace import TracerProvider

from services.core.errors import INTERNAL, ParleyError, StartupError

log = structlog.get_logger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Health probes arrive every second or so; tracing them would bury the spans that matter.
_NOT_HEALTH = filters.negate(filters.service_name(HEALTH_SERVICE))


# A peer that vanished without closing its connections (cut off by a network partition, its node lost) is
# found out by keepalive pings rather than by TCP's retries, which take about 15 minutes: unanswered within
# the timeout, the connection is dropped (gRPC also sets TCP_USER_TIMEOUT to it, so a call sent into the
# dead link drops it as soon) and the channel connects again, to the next address of a list (`ipv4:a,b`)
# when the first does not answer: a gateway moves to the room manager that took over.
CHANNEL_OPTIONS = (("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000))
# Servers take pings that often from their peers (gRPC's default, one per 5 minutes, answers a client that
# pings more often with GOAWAY).
_SERVER_OPTIONS = (("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),)

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class UnaryInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps each unary method's behaviour with `wrap(method, behaviour)`."""

    def wrap(self, method: str, behaviour: Unary) -> Unary:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(handler_call_details.method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ErrorMappingInterceptor(UnaryInterceptor):
    """Turns a `ParleyError` raised by a handler into its gRPC status with an ErrorInfo detail, and any
    other exception into INTERNAL — logged here once, with no internals sent to the caller."""

    def wrap(self, method: str, behaviour: Unary) -> Unary:
        async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(request, context)
            except ParleyError as error:
                status = error.to_status()
                await context.abort(status.code, status.details, status.trailing_metadata)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception:
                log.exception("rpc_failed", method=method)
                status = INTERNAL().to_status()
                await context.abort(status.code, status.details, status.trailing_metadata)

        return mapped


class ProbingHealthServicer(HealthServicer):
    """The standard health service, where some service names are answered by running a probe at each Check
    (liveness and readiness, services/core/ops.py) instead of from a status set in advance."""

    def __init__(self, probes: dict[str, Callable[[], Awaitable[bool]]]) -> None:
        super().__init__()
        self._probes = probes

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        probe = self._probes.get(request.service)
        if probe is None:
            return await super().Check(request, context)
        answer = health_pb2.HealthCheckResponse
        return answer(status=answer.SERVING if await probe() else answer.NOT_SERVING)


class GrpcServer:
    """A service's gRPC server. Health reports NOT_SERVING until `mark_serving`, and again while draining."""

    def __init__(
        self,
        listen_address: str,
        *,
        tracer_provider: TracerProvider,
        interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    ) -> None:
        self.listen_address = listen_address
        self._tracer_provider = tracer_provider
        self._interceptors = interceptors or []
        self._probes: dict[str, Callable[[], Awaitable[bool]]] = {}
        # Between `mark_serving` and `drain`: what the readiness probe asks first.
        self.serving = False
        self._registrations: list[tuple[Callable[[Any, grpc.aio.Server], None], Any]] = []
        self._service_names: list[str] = []
        self._server: grpc.aio.Server | None = None
        self._health: HealthServicer | None = None

    def add_servicer(
        self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, service: ServiceDescriptor
    ) -> None:
        self._registrations.append((register, servicer))
        self._service_names.append(service.full_name)

    def add_probe(self, service_name: str, probe: Callable[[], Awaitable[bool]]) -> None:
        """Answer health checks of `service_name` with `probe`, run at each check."""
        self._probes[service_name] = probe

    async def start(self) -> None:
        """Listen; StartupError when the address cannot be bound. Health stays NOT_SERVING."""
        # Created here, not in __init__: an aio server belongs to the event loop that runs it.
        self._server = grpc.aio.server(
            # gRPC sets SO_REUSEPORT by default, which lets a second server silently share a port.
            options=[("grpc.so_reuseport", 0), *_SERVER_OPTIONS],
            interceptors=[
                aio_server_interceptor(tracer_provider=self._tracer_provider, filter_=_NOT_HEALTH),
                *self._interceptors,
                ErrorMappingInterceptor(),
            ],
        )
        self._health = ProbingHealthServicer(self._probes)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        for register, servicer in self._registrations:
            register(servicer, self._server)
        reflection.enable_server_reflection(
            [*self._service_names, HEALTH_SERVICE, reflection.SERVICE_NAME], self._server
        )
        for name in ("", *self._service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            self._server.add_insecure_port(self.listen_address)
        except RuntimeError:
            await self._server.stop(None)
            self._server = None
            # grpc gives no reason; a port that cannot be bound is nearly always one in use.
            raise StartupError(f"cannot listen for gRPC on {self.listen_address}: port in use") from None
        await self._server.start()

    async def mark_serving(self) -> None:
        assert self._health is not None, "start() first"
        for name in ("", *self._service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.serving = True

    async def drain(self) -> None:
        self.serving = False
        if self._health is not None:
            await self._health.enter_graceful_shutdown()

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)


def open_channel(address: str, *, tracer_provider: TracerProvider) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address,
        options=CHANNEL_OPTIONS,
        interceptors=aio_client_interceptors(tracer_provider=tracer_provider, filter_=_NOT_HEALTH),
    )


async def check_health(channel: grpc.aio.Channel, *, timeout_s: float) -> str:
    """The serving status name of the service behind `channel`, or UNREACHABLE."""
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
        )
    except grpc.aio.AioRpcError:
        return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
