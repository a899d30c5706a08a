"""The relay sends RTP through the private parts of aiortc's DTLS and ICE transports that the stock
`RTCDtlsTransport._send_rtp` uses; they must exist in the installed aiortc and aioice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aioice.ice import StunProtocol
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtcdtlstransport import State

from services.relay.rtp_output import ICE_CONNECTION, NOMINATED_PAIRS, TX_BYTES, TX_PACKETS, send_protected


@pytest.fixture
async def transport() -> RTCDtlsTransport:
    return RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])


async def test_the_transport_parts_used_exist(transport: RTCDtlsTransport) -> None:
    assert {TX_BYTES, TX_PACKETS, "_tx_srtp", "_state"} <= set(vars(transport))
    connection = getattr(transport.transport, ICE_CONNECTION)
    assert getattr(connection, NOMINATED_PAIRS) == {}


async def test_nothing_is_sent_before_the_transport_connects(transport: RTCDtlsTransport) -> None:
    assert transport._state == State.NEW
    with pytest.raises(ConnectionError):
        await send_protected(transport, [bytes(20)])
    assert vars(transport)[TX_PACKETS] == 0


class Socket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))


def connected_transport(protocol: object) -> SimpleNamespace:
    pair = SimpleNamespace(protocol=protocol, remote_addr=("127.0.0.1", 9))
    return SimpleNamespace(
        _state=State.CONNECTED,
        _tx_srtp=SimpleNamespace(protect=lambda packet: b"srtp:" + packet),
        transport=SimpleNamespace(**{ICE_CONNECTION: SimpleNamespace(**{NOMINATED_PAIRS: {1: pair}})}),
        **{TX_BYTES: 0, TX_PACKETS: 0},
    )


async def test_packets_are_protected_and_sent_on_the_nominated_pair_socket_and_counted() -> None:
    protocol = StunProtocol(None)  # type: ignore[arg-type]
    protocol.transport = Socket()  # type: ignore[assignment]
    transport = connected_transport(protocol)
    await send_protected(transport, [b"one", b"two"])  # type: ignore[arg-type]
    assert protocol.transport.sent == [(b"srtp:one", ("127.0.0.1", 9)), (b"srtp:two", ("127.0.0.1", 9))]
    assert (vars(transport)[TX_BYTES], vars(transport)[TX_PACKETS]) == (16, 2)


async def test_a_pair_protocol_with_its_own_send_data_is_awaited() -> None:
    sent: list[bytes] = []

    async def send_data(data: bytes, address: tuple[str, int]) -> None:
        sent.append(data)

    transport = connected_transport(SimpleNamespace(send_data=send_data))
    await send_protected(transport, [b"one"])  # type: ignore[arg-type]
    assert sent == [b"srtp:one"] and vars(transport)[TX_PACKETS] == 1
