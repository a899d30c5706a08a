"""Tracer providers (services/core/telemetry.py): spans are recorded only where something exports them."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.core.telemetry import create_tracer_provider


def test_spans_nobody_exports_are_not_recorded_but_keep_their_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracer = create_tracer_provider("rooms", set_global=False).get_tracer("test")
    with tracer.start_as_current_span("join") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid


def test_spans_are_recorded_and_exported_when_an_exporter_is_given() -> None:
    exporter = InMemorySpanExporter()
    tracer = create_tracer_provider("rooms", exporter=exporter, set_global=False).get_tracer("test")
    with tracer.start_as_current_span("join") as span:
        assert span.is_recording()
    assert [finished.name for finished in exporter.get_finished_spans()] == ["join"]
