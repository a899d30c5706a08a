"""A relay with one UDP port (`PARLEY_RELAY__UDP_PORT`): every peer connection's media goes through that one
socket, and a call through it works as through per-peer ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from parley.relay.v1 import relay_pb2_grpc
from relay_clients import Publisher, Subscriber, publish, subscribe, wait_until

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


def udp_sockets_of_this_process() -> set[tuple[str, int]]:
    """(address, port) of every UDP socket this process holds, from the kernel's socket table."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    bound = set()
    with open("/proc/net/udp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[9] in inodes:
                address, port = fields[1].split(":")
                # Little-endian hex IPv4 address.
                octets = [str(int(address[i : i + 2], 16)) for i in range(6, -1, -2)]
                bound.add((".".join(octets), int(port, 16)))
    return bound


def client_sockets(peers: list[RTCPeerConnection]) -> set[tuple[str, int]]:
    return {
        protocol.transport.get_extra_info("sockname")[:2]
        for pc in peers
        for protocol in _ice_connection(pc)._protocols
    }


def _ice_connection(pc: RTCPeerConnection) -> Any:
    return pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection


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

        # Three peer connections on the relay, each connected through the one port.
        relay_peers = [feed.peer.pc for feed in relay.feeds.values()] + [
            subscription.peer.pc for subscription in relay.subscriptions.values()
        ]
        assert len(relay_peers) == 3
        for pc in relay_peers:
            [pair] = _ice_connection(pc)._nominated.values()
            assert (pair.local_candidate.host, pair.local_candidate.port) == one_port
        # And in the kernel's table: besides the test's own clients, this process has one UDP socket.
        assert udp_sockets_of_this_process() - client_sockets([c.pc for c in clients]) == {one_port}
        # Each client talks to that port alone.
        for client in clients:
            [pair] = _ice_connection(client.pc)._nominated.values()
            assert (pair.remote_candidate.host, pair.remote_candidate.port) == one_port
    finally:
        for client in clients:
            await client.close()
