"""The relay running in this process as its own service: a ServiceRuntime with its real gRPC server on the
session's Tansu broker, listening and gathering on loopback only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from parley.relay.v1 import relay_pb2_grpc

from services.core.config import GrpcEndpoints, KafkaSettings, RelaySettings, ServiceName, Settings
from services.core.embedded_broker import free_port
from services.core.service import ServiceRuntime
from services.relay.app import build
from services.relay.relay import Relay


@asynccontextmanager
async def running_relay(
    kafka: str, data_dir: Path, **relay_settings: Any
) -> AsyncIterator[tuple[Relay, relay_pb2_grpc.RelayServiceStub]]:
    """A relay with `relay_settings` on top of the loopback ones, and a gRPC client of it; stopped after."""
    settings = Settings(
        data_dir=data_dir,
        kafka=KafkaSettings(bootstrap_servers=kafka),
        grpc=GrpcEndpoints(**{name.value: f"127.0.0.1:{free_port()}" for name in ServiceName}),
        relay=RelaySettings(listen_address="127.0.0.1", candidate_networks=["127.0.0.0/8"], **relay_settings),
    )
    runtime = ServiceRuntime(ServiceName.RELAY, settings, set_global_tracing=False)
    relay = build(runtime)
    await runtime.start()
    channel = grpc.aio.insecure_channel(settings.grpc.address_of(ServiceName.RELAY))
    try:
        yield relay, relay_pb2_grpc.RelayServiceStub(channel)
    finally:
        await channel.close()
        await runtime.stop()
