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
from opentelemetry import propagate
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.trace import SpanKind, TracerProvider

from services.core.errors import INTERNAL, ParleyError, StartupError
from services.core.telemetry import records_spans

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


class UnaryInterceptor:
    """Wraps each unary method's behaviour with `wrap(method, behaviour)`; a server's are run together by
    one `ChainedInterceptor`."""

    def wrap(self, method: str, behaviour: Unary) -> Unary:
        raise NotImplementedError


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


class TraceContextInterceptor(UnaryInterceptor):
    """Each call runs in a span continuing the caller's trace (`traceparent` in its metadata), for
    providers that record no spans: the span is not recording, its ids are what logs and staged facts
    carry. Health probes are left out, as the recording interceptor leaves them out."""

    def __init__(self, tracer_provider: TracerProvider) -> None:
        self._tracer = tracer_provider.get_tracer(__name__)

    def wrap(self, method: str, behaviour: Unary) -> Unary:
        if method.startswith(f"/{HEALTH_SERVICE}/"):
            return behaviour
        tracer = self._tracer

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = propagate.extract(dict(context.invocation_metadata() or ()))
            with tracer.start_as_current_span(method, context=parent, kind=SpanKind.SERVER):
                return await behaviour(request, context)

        return traced


class ChainedInterceptor(grpc.aio.ServerInterceptor):
    """`UnaryInterceptor`s as one server interceptor, the first outermost, wrapping each method's behaviour
    once: grpc.aio runs every interceptor of a server as a coroutine of its own on every call, and each
    `UnaryInterceptor` built a new method handler per call."""

    def __init__(self, interceptors: list[UnaryInterceptor]) -> None:
        self._interceptors = interceptors
        # A method's handler is the same on every call (servicers are registered before the server
        # starts), so it is wrapped at its first call and kept.
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method in self._handlers:
            return self._handlers[method]
        handler = await continuation(handler_call_details)
        if handler is not None and handler.unary_unary is not None:
            behaviour = handler.unary_unary
            for interceptor in reversed(self._interceptors):
                behaviour = interceptor.wrap(method, behaviour)
            handler = grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler is not None:
            # Unknown methods (None) are not kept: a client could fill the table with made-up names.
            self._handlers[method] = handler
        return handler


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
        interceptors: list[UnaryInterceptor] | None = None,
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
            interceptors=self._chain(),
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

    def _chain(self) -> list[grpc.aio.ServerInterceptor]:
        if records_spans(self._tracer_provider):
            tracing: grpc.aio.ServerInterceptor = aio_server_interceptor(
                tracer_provider=self._tracer_provider, filter_=_NOT_HEALTH
            )
            return [tracing, ChainedInterceptor([*self._interceptors, ErrorMappingInterceptor()])]
        # Spans nobody records: only their context is kept (trace ids in the logs, facts staged in the
        # caller's trace), which OpenTelemetry's interceptor paid for with a span's attributes, a wrapped
        # servicer context and an interceptor of its own on every call.
        context = TraceContextInterceptor(self._tracer_provider)
        return [ChainedInterceptor([context, *self._interceptors, ErrorMappingInterceptor()])]

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
    if records_spans(tracer_provider):
        return grpc.aio.insecure_channel(
            address,
            options=CHANNEL_OPTIONS,
            interceptors=aio_client_interceptors(tracer_provider=tracer_provider, filter_=_NOT_HEALTH),
        )
    return PropagatingChannel(grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS))


class _Propagating:
    """A multi-callable that sends the current trace context (`traceparent`) with each call."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __call__(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        pairs = tuple(metadata or ())
        if carrier and not any(key == "traceparent" for key, _ in pairs):
            metadata = (*pairs, *carrier.items())
        return self._call(request, metadata=metadata, **kwargs)


class PropagatingChannel(grpc.aio.Channel):
    """A channel for providers that record no spans: calls carry the caller's trace context, as with
    OpenTelemetry's client interceptor, without a span per call; and without any interceptor, which
    grpc.aio runs as a task of its own per call (the gateway's three calls per connect and join)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def _wrap(self, method: str, call: Any) -> Any:
        return call if method.startswith(f"/{HEALTH_SERVICE}/") else _Propagating(call)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(method, self._channel.unary_unary(method, *args, **kwargs))

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(method, self._channel.unary_stream(method, *args, **kwargs))

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(method, self._channel.stream_unary(method, *args, **kwargs))

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(method, self._channel.stream_stream(method, *args, **kwargs))

    async def __aenter__(self) -> PropagatingChannel:
        await self._channel.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._channel.__aexit__(*exc_info)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()


async def check_health(channel: grpc.aio.Channel, *, timeout_s: float) -> str:
    """The serving status name of the service behind `channel`, or UNREACHABLE."""
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
        )
    except grpc.aio.AioRpcError:
        return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
