"""The relay's one UDP port: which connection each datagram reaches (services/relay/udp_mux.py)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

from aioice import stun

from services.relay.udp_mux import UdpMux

PEER_A = ("127.0.0.1", 40001)
PEER_B = ("127.0.0.1", 40002)
RTP = b"\x80\x60" + bytes(10)


@dataclass
class FakeConnection:
    """What a StunProtocol calls on its aioice connection."""

    local_username: str
    _protocols: list[Any] = field(default_factory=list)
    requests: list[tuple[str, int]] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)

    def request_received(self, message: stun.Message, addr: tuple[str, int], protocol: Any) -> None:
        self.requests.append(addr)

    def data_received(self, data: bytes, component: int) -> None:
        self.data.append(data)

    def protocol_lost(self, protocol: Any) -> None:
        pass


def binding_request(username: str) -> bytes:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    return bytes(message)


async def opened() -> UdpMux:
    mux = UdpMux()
    await mux.open("127.0.0.1", 0)
    return mux


async def test_every_connection_gets_a_host_candidate_on_the_one_socket() -> None:
    mux = await opened()
    try:
        first = FakeConnection(mux.new_ufrag())
        second = FakeConnection(mux.new_ufrag())
        assert first.local_username != second.local_username
        candidates = [mux.attach(c, 1) for c in (first, second)]  # type: ignore[arg-type]
        assert {(c.host, c.port, c.type) for c in candidates} == {(*mux.address, "host")}
        assert len(first._protocols) == len(second._protocols) == 1
    finally:
        mux.close()


async def test_a_stun_request_routes_by_ufrag_and_claims_its_address_for_the_media_after_it() -> None:
    mux = await opened()
    try:
        first, second = FakeConnection(mux.new_ufrag()), FakeConnection(mux.new_ufrag())
        for connection in (first, second):
            mux.attach(connection, 1)  # type: ignore[arg-type]

        mux.datagram_received(RTP, PEER_A)
        assert first.data == second.data == [], "media from an unknown address is dropped"

        mux.datagram_received(binding_request(f"{second.local_username}:peer"), PEER_A)
        mux.datagram_received(binding_request(f"{first.local_username}:peer"), PEER_B)
        mux.datagram_received(binding_request("nobody:peer"), ("127.0.0.1", 40003))
        assert (first.requests, second.requests) == ([PEER_B], [PEER_A])

        mux.datagram_received(RTP + b"a", PEER_A)
        mux.datagram_received(RTP + b"b", PEER_B)
        assert (first.data, second.data) == ([RTP + b"b"], [RTP + b"a"])
    finally:
        mux.close()


async def test_the_relay_s_own_check_claims_the_address_it_goes_to_unless_another_connection_has_it() -> None:
    mux = await opened()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    try:
        first, second = FakeConnection(mux.new_ufrag()), FakeConnection(mux.new_ufrag())
        for connection in (first, second):
            mux.attach(connection, 1)  # type: ignore[arg-type]
        peer = receiver.getsockname()
        first._protocols[0].transport.sendto(binding_request("peer:relay"), peer)
        second._protocols[0].transport.sendto(binding_request("peer:relay"), peer)
        assert receiver.recv(1500)
        mux.datagram_received(RTP, peer)
        assert (first.data, second.data) == ([RTP], [])
    finally:
        receiver.close()
        mux.close()


async def test_a_closed_connection_gets_nothing_more_and_its_ufrag_is_free() -> None:
    mux = await opened()
    try:
        connection = FakeConnection(mux.new_ufrag())
        mux.attach(connection, 1)  # type: ignore[arg-type]
        mux.datagram_received(binding_request(f"{connection.local_username}:peer"), PEER_A)
        protocol = connection._protocols[0]
        await asyncio.wait_for(protocol.close(), 5)
        mux.datagram_received(RTP, PEER_A)
        mux.datagram_received(binding_request(f"{connection.local_username}:peer"), PEER_A)
        assert connection.data == [] and connection.requests == [PEER_A]
    finally:
        mux.close()
