"""The life of one service process: start its parts in order, serve, and drain before stopping.

`ServiceRuntime` owns what every service has — settings, tracer provider, Kafka broker and publisher,
gRPC server, channels to the other services — and each service's `app.py` adds its own handlers to it.
Start-up failures that a person must fix (a port in use, a broker that does not answer, a folder that
cannot be written) are `StartupError`s: one line saying what and where, never a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import structlog
import uvloop
from aiokafka.errors import KafkaError
from opentelemetry.sdk.trace.export import SpanExporter

from services.core.config import ServiceName, Settings
from services.core.errors import StartupError
from services.core.events import EventPublisher, create_broker
from services.core.http_server import HttpServer
from services.core.kafka_security import broker_security
from services.core.logs import configure_logging
from services.core.metrics import GrpcMetricsInterceptor, ServiceMetrics, refresh_consumer_lag
from services.core.ops import LIVENESS_SERVICE, READINESS_SERVICE, Readiness, ops_app
from services.core.rpc import GrpcServer, open_channel
from services.core.telemetry import create_tracer_provider

log = structlog.get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


class ServiceRuntime:
    def __init__(
        self,
        name: ServiceName,
        settings: Settings,
        *,
        span_exporter: SpanExporter | None = None,
        set_global_tracing: bool = True,
    ) -> None:
        self.name = name
        self.settings = settings
        self.tracer_provider = create_tracer_provider(
            name.value, exporter=span_exporter, set_global=set_global_tracing
        )
        self.broker = create_broker(
            settings.kafka.bootstrap_servers,
            client_id=f"parley-{name.value}",
            tracer_provider=self.tracer_provider,
            security=broker_security(settings.kafka),
        )
        self.events = EventPublisher(
            self.broker, source=f"//parley/{name.value}", tracer_provider=self.tracer_provider
        )
        self.metrics = ServiceMetrics(name.value)
        self.metrics.on_scrape(lambda: refresh_consumer_lag(self.metrics, self.broker))
        self.grpc = GrpcServer(
            settings.grpc.listen or settings.grpc.address_of(name),
            tracer_provider=self.tracer_provider,
            interceptors=[GrpcMetricsInterceptor(self.metrics)],
        )
        self.readiness = Readiness(timeout_s=settings.ops.readiness_timeout_s)
        self.readiness.add("serving", self._serving)
        self.readiness.add("kafka", self._broker_answers)
        self.grpc.add_probe(LIVENESS_SERVICE, self._alive)
        self.grpc.add_probe(READINESS_SERVICE, self.readiness.ready)
        self.ops_http: HttpServer | None = None
        if settings.ops.port is not None:
            self.ops_http = HttpServer(
                ops_app(self.metrics, self.readiness), host=settings.ops.host, port=settings.ops.port
            )
        self._channels: dict[ServiceName, grpc.aio.Channel] = {}
        self._migrate_hooks: list[Hook] = []
        self._start_hooks: list[Hook] = []
        self._ready_hooks: list[Hook] = []
        self._consumers: asyncio.Task[None] | None = None
        self._drain_hooks: list[Hook] = []
        self._stop_hooks: list[Hook] = []
        self._stop_requested = asyncio.Event()

    def on_migrate(self, hook: Hook) -> None:
        """Run `hook` to bring the service's database to its schema: at start (unless
        `PARLEY_MIGRATE_ON_START=false`), and alone for `python -m services.<name> migrate`."""
        self._migrate_hooks.append(hook)

    async def migrate(self) -> None:
        for hook in self._migrate_hooks:
            await hook()

    def on_start(self, hook: Hook) -> None:
        """Run `hook` before the broker's consumers start (prepare storage, open listeners)."""
        self._start_hooks.append(hook)

    def on_ready(self, hook: Hook) -> None:
        """Run `hook` once the broker is connected and gRPC listens, before health says SERVING
        (background work that publishes, such as an outbox relay)."""
        self._ready_hooks.append(hook)

    def on_drain(self, hook: Hook) -> None:
        """Run `hook` when a signal asks the service to stop, before `stop()`, while it still serves
        (a relay letting its streams end); `drain()` runs these hooks, in order."""
        self._drain_hooks.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run `hook` while stopping, after the gRPC server has drained; hooks run in reverse order."""
        self._stop_hooks.append(hook)

    def channel(self, service: ServiceName) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(
                self.settings.grpc.address_of(service), tracer_provider=self.tracer_provider
            )
        return self._channels[service]

    async def _alive(self) -> bool:
        # Answering at all is the proof: the event loop runs.
        return True

    async def _serving(self) -> bool:
        return self.grpc.serving

    async def _broker_answers(self) -> bool:
        return bool(await self.broker.ping(timeout=self.settings.ops.readiness_timeout_s))

    async def start(self) -> None:
        """Start every part, then report SERVING; on any failure undo what had started and re-raise."""
        try:
            # First, so liveness answers while the rest starts (migrations may take a while).
            if self.ops_http is not None:
                await self.ops_http.start()
            if self.settings.migrate_on_start:
                await self.migrate()
            for hook in self._start_hooks:
                await hook()
            await self._connect_broker()
            await self.grpc.start()
            for hook in self._ready_hooks:
                await hook()
        except BaseException:
            await self._release()
            raise
        await self.grpc.mark_serving()
        log.info("service_started", grpc=self.grpc.listen_address)

    async def _connect_broker(self) -> None:
        bootstrap = self.settings.kafka.bootstrap_servers
        try:
            await asyncio.wait_for(self.broker.connect(), self.settings.kafka.connect_timeout_s)
        except (TimeoutError, KafkaError, OSError) as error:
            raise StartupError(
                f"Kafka broker at {bootstrap} does not answer ({type(error).__name__})"
            ) from None
        # Consumers join their groups in the background: a join waits for the group to rebalance (seconds,
        # longer after a member died without leaving), and the service can answer requests meanwhile;
        # committed offsets make sure nothing is skipped. `consumers_joined` is there to wait for.
        self._consumers = asyncio.create_task(self.broker.start(), name="kafka-consumers")

    async def consumers_joined(self) -> None:
        """Return once every consumer of this service has joined its group."""
        if self._consumers is None:
            raise RuntimeError("start() first")
        await asyncio.shield(self._consumers)

    async def drain(self) -> None:
        for hook in self._drain_hooks:
            try:
                await hook()
            except Exception:
                # A failed drain must not keep the service from stopping.
                log.exception("drain_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)))

    async def stop(self) -> None:
        # Drain first: health turns NOT_SERVING so callers move away, then calls in flight get their grace.
        await self.grpc.drain()
        await self.grpc.stop(self.settings.drain_timeout_s)
        await self._release()
        log.info("service_stopped")

    async def _release(self) -> None:
        await self.grpc.stop(0)
        if self.ops_http is not None:
            await self.ops_http.stop()
        for hook in reversed(self._stop_hooks):
            try:
                await hook()
            except Exception:
                log.exception("stop_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)))
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        if self._consumers is not None and not self._consumers.done():
            self._consumers.cancel()
            await asyncio.gather(self._consumers, return_exceptions=True)
        try:
            await self.broker.stop()
        except Exception:
            log.exception("broker_stop_failed")
        self.tracer_provider.shutdown()

    def request_stop(self) -> None:
        """Stop as SIGTERM would (drain, then stop): for a service that must not go on serving."""
        self._stop_requested.set()

    async def serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop_requested.set)
        starting = asyncio.create_task(self.start(), name="service-start")
        stopping = asyncio.create_task(self._stop_requested.wait(), name="service-stop-requested")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            # Asked to stop while still starting (a start hook may wait, e.g. a standby room manager for its
            # turn): `start` undoes what had started.
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        if starting.exception() is not None:
            stopping.cancel()
        starting.result()
        await stopping
        await self.drain()
        await self.stop()


# A service's `app.build`: adds its handlers to the runtime; may return what tests want to reach.
Build = Callable[[ServiceRuntime], object]


def run_service(name: ServiceName, build: Build) -> None:
    """The whole body of `python -m services.<name>`."""
    settings = Settings()
    configure_logging(name.value, level=settings.log_level, fmt=settings.log_format)

    async def serve() -> None:
        runtime = ServiceRuntime(name, settings)
        build(runtime)
        if sys.argv[1:] == ["migrate"]:
            # `parley migrate`: the schema only, then exit.
            await runtime.migrate()
            return
        await runtime.serve_until_signalled()

    try:
        run_on_loop(serve(), settings.event_loop)
    except StartupError as error:
        print(f"parley-{name.value}: {error}", file=sys.stderr)
        sys.exit(2)


def run_on_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run `main` to completion on a new event loop of the chosen kind ("uvloop" or "asyncio")."""
    # On uvloop the relay needs about 15 % less CPU per forwarded packet (bench/README.md); the stock loop
    # stays a setting for debugging and for platforms uvloop does not support.
    factory = uvloop.new_event_loop if event_loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
