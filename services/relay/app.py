"""Wires the media relay together."""

from __future__ import annotations

from parley.relay.v1 import relay_pb2, relay_pb2_grpc

from services.core.service import ServiceRuntime
from services.relay.grpc_api import RelayServicer
from services.relay.metering import MeteringTicker
from services.relay.relay import Relay


def build(runtime: ServiceRuntime) -> Relay:
    settings = runtime.settings.relay
    ticker = MeteringTicker(runtime.events, interval_s=settings.metering_interval_s)
    relay = Relay(settings, ticker)
    runtime.grpc.add_servicer(
        relay_pb2_grpc.add_RelayServiceServicer_to_server,
        RelayServicer(relay),
        relay_pb2.DESCRIPTOR.services_by_name["RelayService"],
    )

    async def start_metering() -> None:
        ticker.start()

    async def close_streams() -> None:
        # Every stream's final tick is in the outbox once the relay has closed; the broker is still up.
        await relay.close()
        await ticker.stop()

    runtime.on_ready(start_metering)
    runtime.on_stop(close_streams)
    return relay
