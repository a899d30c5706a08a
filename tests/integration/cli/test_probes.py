"""Liveness and readiness of every service of a running `parley up`, over HTTP and the gRPC health service:
a dependency that stops answering (the Kafka broker, killed here) makes the services not ready, never
not alive."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.config import ServiceName
from services.core.ops import LIVENESS_SERVICE, READINESS_SERVICE
from tests.integration.cli.running import RunningPlatform, processes_with_marker

pytestmark = pytest.mark.integration


def addresses(banner: str) -> dict[ServiceName, tuple[str, str]]:
    """Each service's gRPC address and operations URL, as the banner prints them."""
    found = {}
    for name in ServiceName:
        line = next(line for line in banner.splitlines() if line.startswith(f"  {name.value} "))
        grpc_address = re.search(r"grpc\s+(\S+)", line)
        ops = re.search(r"metrics (\S+)/metrics", line)
        assert grpc_address and ops, line
        found[name] = (grpc_address.group(1), ops.group(1))
    return found


async def health(address: str, service: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def broker_pid(platform: RunningPlatform) -> int:
    for pid in processes_with_marker(platform.marker):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"--storage-engine" in cmdline:
            return pid
    raise LookupError("the embedded broker")


async def test_alive_and_ready_then_not_ready_without_the_broker(
    platform: RunningPlatform,
) -> None:
    services = addresses(platform.banner)
    async with httpx.AsyncClient(timeout=15) as http:
        for name, (grpc_address, ops_url) in services.items():
            assert (await http.get(f"{ops_url}/livez")).status_code == 200, name
            ready = await http.get(f"{ops_url}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert ready.json()["checks"]["kafka"] is True
            assert await health(grpc_address, LIVENESS_SERVICE) == "SERVING", name
            assert await health(grpc_address, READINESS_SERVICE) == "SERVING", name
        for name in (ServiceName.LICENCE, ServiceName.RECORDER):
            checks = (await http.get(f"{services[name][1]}/readyz")).json()["checks"]
            assert checks["database"] is True, name

        os.kill(broker_pid(platform), signal.SIGKILL)
        for name, (grpc_address, ops_url) in services.items():
            assert (await http.get(f"{ops_url}/livez")).status_code == 200, name
            assert await health(grpc_address, LIVENESS_SERVICE) == "SERVING", name
        async with asyncio.timeout(30):
            for name, (grpc_address, ops_url) in services.items():
                while (ready := await http.get(f"{ops_url}/readyz")).status_code != 503:
                    await asyncio.sleep(0.5)
                checks = ready.json()["checks"]
                assert checks["kafka"] is False and checks["serving"] is True, (name, checks)
                assert await health(grpc_address, READINESS_SERVICE) == "NOT_SERVING", name
