"""Prometheus metrics of one service process: one registry per `ServiceRuntime` (tests run several services in
one process, each must report as itself), the request metrics every service shares, and the hooks the
services add their own through.

What a service knows as state (rooms, sessions, streams) is read when Prometheus scrapes (`gauge`,
`on_scrape`), so the code that owns the state does not count twice. What happens (a request, a webhook
delivery, a billing tick) is counted where it happens. Names follow Prometheus' conventions: `_total` on
counters (added by the client library), `_seconds` and `_bytes` units. The dashboard in
charts/parley/dashboards/ reads these names.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.rpc import Unary, UnaryInterceptor

# Request latencies of a calling platform: most answers take milliseconds, a relay negotiation seconds.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Refresh = Callable[[], Awaitable[None]]


class _CallbackGauges(Collector):
    """Gauges whose value is read from the service's own state at each scrape."""

    def __init__(self) -> None:
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []

    def add(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._gauges.append((name, documentation, read))

    def collect(self) -> Iterable[Metric]:
        for name, documentation, read in self._gauges:
            yield GaugeMetricFamily(name, documentation, value=read())

    def describe(self) -> Iterable[Metric]:
        return []


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self._callback_gauges = _CallbackGauges()
        self.registry.register(self._callback_gauges)
        self._refreshers: list[Refresh] = []
        self.grpc_requests = Counter(
            "parley_grpc_server_requests",
            "gRPC requests this service answered, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.grpc_duration = Histogram(
            "parley_grpc_server_duration_seconds",
            "Time to answer a gRPC request, by method",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "parley_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "parley_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "parley_kafka_consumer_lag",
            "Messages on a partition this service's consumer group has not yet read",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        # Called by the webhook service (issue: webhook deliveries) and the billing service (ticks).
        self.webhook_deliveries = Counter(
            "parley_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, failed, retried, dropped...)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_delivery_duration = Histogram(
            "parley_webhook_delivery_duration_seconds",
            "Time a customer's endpoint took to answer one delivery attempt",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.billing_ticks = Counter(
            "parley_billing_ticks",
            "Metering ticks the billing service handled, by outcome (applied, duplicate, rejected...)",
            ["outcome"],
            registry=self.registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read from the service's state when scraped (`read` must be quick and not block)."""
        self._callback_gauges.add(name, documentation, read)

    def counter(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)

    def on_scrape(self, refresh: Refresh) -> None:
        """Run `refresh` before each scrape (to bring metrics up to date from state that takes awaiting)."""
        self._refreshers.append(refresh)

    def webhook_delivered(self, outcome: str, seconds: float | None = None) -> None:
        self.webhook_deliveries.labels(outcome=outcome).inc()
        if seconds is not None:
            self.webhook_delivery_duration.observe(seconds)

    def billing_ticked(self, outcome: str, count: int = 1) -> None:
        self.billing_ticks.labels(outcome=outcome).inc(count)

    async def exposition(self) -> tuple[bytes, str]:
        """The text format a scrape answers with, and its content type."""
        for refresh in self._refreshers:
            await refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


async def refresh_consumer_lag(metrics: ServiceMetrics, broker: KafkaBroker) -> None:
    """Set the lag of every partition assigned to this process: the partition's high watermark (as of the
    consumer's last fetch) less the consumer's position."""
    metrics.consumer_lag.clear()
    for subscriber in broker.subscribers:
        consumer: Any = getattr(subscriber, "consumer", None)
        if consumer is not None:
            await set_consumer_lag(metrics, getattr(subscriber, "group_id", None) or "", consumer)


async def set_consumer_lag(metrics: ServiceMetrics, group: str, consumer: Any) -> None:
    """The lag of each partition assigned to one aiokafka consumer (also for consumers outside FastStream,
    whose refresh runs after `refresh_consumer_lag` cleared the gauge)."""
    for partition in consumer.assignment():
        highwater = consumer.highwater(partition)
        if highwater is None:
            continue
        try:
            position = await consumer.position(partition)
        except Exception:
            # Reassigned between the two calls: the next scrape sees the new assignment.
            continue
        metrics.consumer_lag.labels(group, partition.topic, str(partition.partition)).set(
            max(highwater - position, 0)
        )


class GrpcMetricsInterceptor(UnaryInterceptor):
    """Counts and times every unary request by method and final status code (health checks included: a
    probe that slows down is worth seeing)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def wrap(self, method: str, behaviour: Unary) -> Unary:
        requests, duration = self._metrics.grpc_requests, self._metrics.grpc_duration

        async def measured(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = await behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                requests.labels(method, _code_name(code)).inc()
                duration.labels(method).observe(time.perf_counter() - started)

        return measured


def _code_name(code: Any) -> str:
    # context.code() answers a StatusCode, or the bare integer the handler set.
    if isinstance(code, grpc.StatusCode):
        return code.name
    return next((status.name for status in grpc.StatusCode if status.value[0] == code), str(code))


class HttpMetricsMiddleware:
    """ASGI middleware counting and timing HTTP requests by route template (not path: ids in paths would
    make a series per id). WebSocket connections are counted by the gateway's session gauge instead."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            method = scope["method"]
            self._metrics.http_requests.labels(method, route, str(status)).inc()
            self._metrics.http_duration.labels(method, route).observe(time.perf_counter() - started)
