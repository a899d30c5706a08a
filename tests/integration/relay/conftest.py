"""The relay running in this process as its own service (tests/testing.py: a ServiceRuntime with a real
gRPC server, on a Tansu broker of its own), a gRPC client of it, a consumer of its metering ticks, and a
guard that counts every decoder and encoder aiortc creates, telling the relay's from the test clients'."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from parley.relay.v1 import metering_pb2, relay_pb2_grpc

import services.relay.peer
from services.core.config import ServiceName
from services.core.topics import Topic
from services.relay.relay import Relay
from tests.integration.codec_watch import codecs_watched
from tests.testing import Facts, Platform, start_platform

# Short enough that a test sees several ticks and a connect timeout without waiting long.
METERING_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 3.0


@dataclass
class CodecGuard:
    """Who created which decoders and encoders: aiortc creates them in exactly two places, a receiver's
    decoder thread (`get_decoder`) and a sender's `_next_encoded_frame` (`get_encoder`)."""

    relay_peers: list[RTCPeerConnection] = field(default_factory=list)
    relay: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)

    def _record(self, what: str, on_relay: bool) -> None:
        (self.relay if on_relay else self.clients).append(what)

    def decoder_created(self, codec: Any, caller: Any) -> None:
        # decoder_worker(loop, input_q, output_q, decode_error): output_q is the receiver's track queue.
        output = caller.f_locals.get("output_q")
        on_relay = any(
            receiver.track is not None and getattr(receiver.track, "_queue", None) is output
            for pc in list(self.relay_peers)
            for receiver in pc.getReceivers()
        )
        self._record(f"decoder {codec.mimeType}", on_relay)

    def encoder_created(self, codec: Any, caller: Any) -> None:
        sender = caller.f_locals.get("self")
        on_relay = any(
            sender is relay_sender for pc in list(self.relay_peers) for relay_sender in pc.getSenders()
        )
        self._record(f"encoder {codec.mimeType}", on_relay)


@pytest.fixture(scope="module")
def codec_guard() -> Iterator[CodecGuard]:
    guard = CodecGuard()
    with codecs_watched(services.relay.peer, guard.relay_peers, guard):
        yield guard


@dataclass
class RelayUnderTest:
    relay: Relay
    stub: relay_pb2_grpc.RelayServiceStub
    guard: CodecGuard
    platform: Platform


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((None, True), id="port per peer"),
        pytest.param((0, True), id="one UDP port"),
        # The fallback's run doubles nothing the two modes above do not cover but the send loop,
        # so it goes with the system tests (`make test-system`) to keep `make test` short.
        pytest.param((None, False), id="port per peer, sent from Python", marks=pytest.mark.system),
    ],
)
async def relay_service(
    request: pytest.FixtureRequest, codec_guard: CodecGuard, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RelayUnderTest]:
    """The relay in this process as its own service, listening and gathering on loopback only; every test
    runs with both media socket modes (`udp_port`: a port per peer connection, one port for all) with the
    compiled send loop where it was built, and once more with the send loop in Python
    (`compiled_send` off, as where no compiler was found: services/relay/fast_send.py)."""
    udp_port, compiled_send = request.param
    async with start_platform(
        tmp_path_factory.mktemp("relay"),
        ServiceName.RELAY,
        settings={
            "relay": {
                "metering_interval_s": METERING_INTERVAL_S,
                "connect_timeout_s": CONNECT_TIMEOUT_S,
                "udp_port": udp_port,
                "compiled_send": compiled_send,
            }
        },
    ) as platform:
        yield RelayUnderTest(
            relay=platform["relay"].built,
            stub=platform.stub(relay_pb2_grpc.RelayServiceStub, ServiceName.RELAY),
            guard=codec_guard,
            platform=platform,
        )


@pytest.fixture(scope="module")
async def metering(relay_service: RelayUnderTest) -> Facts:
    """Every MeteringTick on parley.metering.v1 by room_id, as a consumer of billing's kind would see it."""
    return await relay_service.platform.record([Topic.METERING], [metering_pb2.MeteringTick])
