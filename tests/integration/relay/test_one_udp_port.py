"""A relay with one UDP port (`PARLEY_RELAY__UDP_PORT`): every peer connection's media goes through that one
socket, and a call through it works as through per-peer ports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from parley.relay.v1 import relay_pb2_grpc
from relay_clients import (
    Publisher,
    Subscriber,
    assert_all_media_on_one_port,
    ice_connection,
    publish,
    subscribe,
    wait_until,
)

from services.core.config import ServiceName
from services.relay.relay import Relay
from tests.testing import Platform, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    # Port 0: the kernel picks the one port, so nothing races for a fixed number.
    async with start_platform(
        tmp_path_factory.mktemp("relay-one-port"), ServiceName.RELAY, settings={"relay": {"udp_port": 0}}
    ) as platform:
        yield platform


async def test_a_call_through_the_relay_uses_one_udp_port_for_all_its_peers(platform: Platform) -> None:
    relay: Relay = platform["relay"].built
    stub = platform.stub(relay_pb2_grpc.RelayServiceStub, ServiceName.RELAY)
    room_id = f"room-{uuid.uuid4()}"
    one_port = relay.udp_address
    assert one_port is not None and one_port[0] == "127.0.0.1"
    publisher, first, second = Publisher(), Subscriber(), Subscriber()
    clients = [publisher, first, second]
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="cam")
        for uid, subscriber in (("bob", first), ("carol", second)):
            await subscribe(stub, subscriber, room_id=room_id, feed_id="cam", uid=uid)
        await wait_until(
            lambda: all(
                len(s.received.video_frames) >= 30 and len(s.received.audio_frames) >= 50
                for s in (first, second)
            )
        )

        assert_all_media_on_one_port(relay, [c.pc for c in clients], expected_peers=3)
        # Each client talks to that port alone.
        for client in clients:
            [pair] = ice_connection(client.pc)._nominated.values()
            assert (pair.remote_candidate.host, pair.remote_candidate.port) == one_port
    finally:
        for client in clients:
            await client.close()
