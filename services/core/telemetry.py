"""OpenTelemetry tracing: one tracer provider per service, exporting over OTLP only when asked to.

Providers are passed explicitly to every instrumentation (gRPC, Kafka, HTTP) rather than only set
globally, so several services can share one process in tests and still report as themselves.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF


def service_resource_name(service: str) -> str:
    return f"parley-{service}"


def create_tracer_provider(
    service: str, *, exporter: SpanExporter | None = None, set_global: bool = True
) -> TracerProvider:
    resource = Resource.create({"service.name": service_resource_name(service)})
    exporting = exporter is not None or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    # Spans nobody exports are not recorded: ids are still made and propagated (logs carry them), but a
    # span's attributes and events are not kept, which every request and push paid for before.
    provider = TracerProvider(resource=resource, sampler=None if exporting else ALWAYS_OFF)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif exporting:
        # Imported here: the exporter pulls in its own gRPC stubs, which only deployments that trace need.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def records_spans(provider: trace.TracerProvider) -> bool:
    """Whether `provider` keeps spans; those made by `create_tracer_provider` without an exporter do not,
    and instrumentation may then carry only their context."""
    return not (isinstance(provider, TracerProvider) and provider.sampler is ALWAYS_OFF)
