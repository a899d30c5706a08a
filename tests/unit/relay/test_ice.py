"""The relay's ICE policy: host candidates only on its listen address, no STUN unless configured, and
SDP candidates filtered and announced as its settings say."""

from __future__ import annotations

import socket
from pathlib import Path

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from pydantic import SecretStr

from services.core.config import IceServerSettings, RelaySettings
from services.core.errors import StartupError
from services.core.media.gathering import gathering_on
from services.relay.ice import IcePolicy

LOOPBACK_ONLY = RelaySettings(listen_address="127.0.0.1", candidate_networks=["127.0.0.0/8"])

OFFER = (
    "v=0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
    "a=candidate:2 1 udp 2130706431 192.0.2.2 50001 typ host\r\n"
    "a=candidate:3 1 udp 2130706431 fd00::2 50002 typ host\r\n"
    "a=candidate:4 1 udp 2130706431 5b0c5d0e.local 50003 typ host\r\n"
    "a=candidate:5 1 udp 1694498815 198.51.100.9 50004 typ srflx raddr 127.0.0.1 rport 50000\r\n"
    "a=candidate:broken\r\n"
    "a=end-of-candidates\r\n"
)


def candidate_addresses(sdp: str) -> list[str]:
    return [
        line.split()[4]
        for line in sdp.splitlines()
        if line.startswith("a=candidate:") and len(line.split()) > 4
    ]


def test_gathering_on_names_only_the_given_addresses_and_only_inside_the_block() -> None:
    with gathering_on(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    # aioice's own answer outside: every interface but loopback.
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)


async def test_a_peer_connection_gathering_under_the_policy_offers_only_the_listen_address() -> None:
    policy = IcePolicy(LOOPBACK_ONLY)
    pc = RTCPeerConnection(policy.configuration())
    try:
        pc.addTransceiver("video", direction="recvonly")
        offer = await pc.createOffer()
        with policy.gathering():
            await pc.setLocalDescription(offer)
        assert set(candidate_addresses(pc.localDescription.sdp)) == {"127.0.0.1"}
    finally:
        await pc.close()


async def test_connectivity_checks_from_outside_the_allowed_networks_go_unanswered() -> None:
    pc = RTCPeerConnection(IcePolicy(LOOPBACK_ONLY).configuration())
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        connections = {
            id(
                t.receiver.transport.transport.iceGatherer._connection
            ): t.receiver.transport.transport.iceGatherer._connection
            for t in pc.getTransceivers()
        }
        answered: list[str] = []
        for connection in connections.values():
            connection.request_received = lambda message, addr, protocol: answered.append(addr[0])
        policy = IcePolicy(LOOPBACK_ONLY)
        policy.refuse_outside_checks(pc)
        policy.refuse_outside_checks(pc)  # guarding twice must not wrap twice
        for connection in connections.values():
            connection.request_received(None, ("192.0.2.2", 5000), None)
            connection.request_received(None, ("127.0.0.1", 5000), None)
        assert answered == ["127.0.0.1"] * len(connections)
    finally:
        await pc.close()


def test_no_stun_server_unless_configured_and_turn_credentials_are_passed_on() -> None:
    assert IcePolicy(LOOPBACK_ONLY).configuration().iceServers == []
    turn = RelaySettings(
        ice_servers=[
            IceServerSettings(
                urls=["turn:turn.example:3478"], username="relay", credential=SecretStr("s3cret")
            )
        ]
    )
    [server] = IcePolicy(turn).configuration().iceServers or []
    assert (server.urls, server.username, server.credential) == (
        ["turn:turn.example:3478"],
        "relay",
        "s3cret",
    )


def test_candidates_outside_the_allowed_networks_are_stripped_from_incoming_sdp() -> None:
    incoming = IcePolicy(LOOPBACK_ONLY).incoming(OFFER)
    assert candidate_addresses(incoming) == ["127.0.0.1"]
    assert "a=end-of-candidates\r\n" in incoming and incoming.endswith("\r\n")
    # By default every address is allowed, host names (mDNS) too; malformed candidate lines never are.
    assert candidate_addresses(IcePolicy(RelaySettings()).incoming(OFFER)) == [
        "127.0.0.1",
        "192.0.2.2",
        "fd00::2",
        "5b0c5d0e.local",
        "198.51.100.9",
    ]


def test_host_candidates_on_the_listen_address_are_announced_with_the_nat_address() -> None:
    policy = IcePolicy(RelaySettings(listen_address="127.0.0.1", announced_address="203.0.113.7"))
    outgoing = policy.outgoing(OFFER)
    assert "c=IN IP4 203.0.113.7\r\n" in outgoing
    assert candidate_addresses(outgoing) == [
        "203.0.113.7",
        "192.0.2.2",
        "fd00::2",
        "5b0c5d0e.local",
        "198.51.100.9",
    ]
    assert "203.0.113.7 50000 typ host" in outgoing


@pytest.mark.parametrize(
    "settings",
    [
        RelaySettings(listen_address="localhost"),
        RelaySettings(announced_address="relay.example"),
        RelaySettings(candidate_networks=["127.0.0.0/33"]),
        RelaySettings(listen_address="0.0.0.0", udp_port=0),
    ],
)
def test_unusable_ice_settings_stop_start_up_with_one_line(settings: RelaySettings) -> None:
    with pytest.raises(StartupError, match="relay ICE settings"):
        IcePolicy(settings)


def media_sockets(pc: RTCPeerConnection) -> list[socket.socket]:
    return [
        protocol.transport.get_extra_info("socket")
        for transceiver in pc.getTransceivers()
        for protocol in transceiver.receiver.transport.transport.iceGatherer._connection._protocols
    ]


def kernel_limit(name: str) -> int:
    return int(Path(f"/proc/sys/net/core/{name}").read_text())


@pytest.mark.parametrize(("receive", "send"), [(1024 * 1024, 512 * 1024), (3 * 1024 * 1024, 0)])
async def test_media_sockets_get_the_configured_kernel_buffers(receive: int, send: int) -> None:
    settings = LOOPBACK_ONLY.model_copy(
        update={"udp_receive_buffer_bytes": receive, "udp_send_buffer_bytes": send}
    )
    policy = IcePolicy(settings)
    pc = RTCPeerConnection(policy.configuration())
    try:
        pc.addTransceiver("video", direction="recvonly")
        with policy.gathering():
            await pc.setLocalDescription(await pc.createOffer())
        default_send = media_sockets(pc)[0].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        policy.size_socket_buffers(pc)
        sockets = media_sockets(pc)
        assert sockets
        for sock in sockets:
            # Linux grants at most rmem_max / wmem_max and reports twice what it granted.
            granted_receive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert granted_receive == 2 * min(receive, kernel_limit("rmem_max"))
            granted_send = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            expected_send = 2 * min(send, kernel_limit("wmem_max")) if send else default_send
            assert granted_send == expected_send
    finally:
        await pc.close()
