"""One request into the gateway crosses gRPC and Kafka and leaves one trace across three services.

The gateway, the room manager and billing run in this process, each as its own `ServiceRuntime` with
its own tracer provider (so its spans carry its own service.name), all exporting into one in-memory
exporter; the broker is a real Tansu (tests/testing.py), the gRPC and HTTP hops are real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.core.config import ServiceName
from tests.testing import start_platform


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    async with start_platform(
        tmp_path,
        ServiceName.BILLING,
        ServiceName.ROOMS,
        ServiceName.GATEWAY,
        span_exporter=exporter,
    ) as running:
        yield running.http_url, exporter


def service_of(span) -> str:
    return str(span.resource.attributes["service.name"])


async def test_creating_a_room_is_one_trace_from_gateway_through_rooms_to_billing(platform) -> None:
    url, exporter = platform
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/v1/rooms", json={"bizName": "trace-demo", "uid": "alice"})
    assert response.status_code == 201, response.text
    room_id = response.json()["roomId"]

    http_span = next(
        s for s in exporter.get_finished_spans() if service_of(s) == "parley-gateway" and s.parent is None
    )
    trace_id = http_span.context.trace_id

    def services_in_trace() -> set[str]:
        return {service_of(s) for s in exporter.get_finished_spans() if s.context.trace_id == trace_id}

    async with asyncio.timeout(30):
        while "parley-billing" not in services_in_trace():
            await asyncio.sleep(0.05)

    assert services_in_trace() == {"parley-gateway", "parley-rooms", "parley-billing"}
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    kinds = {(service_of(s), s.kind.name) for s in spans}
    assert ("parley-gateway", "CLIENT") in kinds  # the gRPC call out of the gateway
    assert ("parley-rooms", "SERVER") in kinds  # CreateRoom served
    assert ("parley-rooms", "PRODUCER") in kinds  # RoomCreated published
    assert ("parley-billing", "CONSUMER") in kinds  # and consumed
    consumed = next(s for s in spans if service_of(s) == "parley-billing" and s.kind.name == "CONSUMER")
    assert "parley.room.v1" in consumed.name
    assert room_id
