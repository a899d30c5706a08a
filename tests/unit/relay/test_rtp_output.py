"""The relay sends RTP through the private parts of aiortc's DTLS and ICE transports that the stock
`RTCDtlsTransport._send_rtp` uses; they must exist in the installed aiortc and aioice."""

from __future__ import annotations

import pytest
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
