"""gRPC channels to peers learned at run time (gateways, relays), by address, opened once and kept."""

from __future__ import annotations

import grpc
from opentelemetry.trace import TracerProvider

from services.core.rpc import open_channel


class ChannelPool:
    def __init__(self, tracer_provider: TracerProvider) -> None:
        self._tracer_provider = tracer_provider
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address, tracer_provider=self._tracer_provider)
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
