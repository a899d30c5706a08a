"""A frame's RTP packets onto the wire: SRTP protect and send, without a coroutine chain per packet.

aiortc sends each RTP packet through `RTCDtlsTransport._send_rtp` (connection state check, SRTP
protect, transport counters) which awaits aioice's `Connection.send`, `Connection.sendto` and the
candidate pair protocol's `send_data`: four coroutines per packet per subscriber, where only the last
does any I/O. This takes the same steps once per frame (state, nominated pair, counters) and per packet
only protects and awaits the pair protocol's `send_data`, so a TURN-relayed pair still wraps the packet
as aioice's TURN protocol does. The private names are constants, checked by
tests/unit/relay/test_rtp_output.py against the installed aiortc and aioice.
"""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport, State

# aiortc's ICE transport holds its aioice Connection here; the Connection its nominated pairs by component.
ICE_CONNECTION = "_connection"
NOMINATED_PAIRS = "_nominated"
RTP_COMPONENT = 1
# The DTLS transport's counters behind its transport stats (bytesSent, packetsSent).
TX_BYTES = "_RTCDtlsTransport__tx_bytes"
TX_PACKETS = "_RTCDtlsTransport__tx_packets"


async def send_protected(transport: RTCDtlsTransport, packets: list[bytes]) -> None:
    """Protect and send RTP packets (never RTCP) as `RTCDtlsTransport._send_rtp` would, one by one."""
    if transport._state != State.CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    pair: Any = getattr(getattr(transport.transport, ICE_CONNECTION), NOMINATED_PAIRS).get(RTP_COMPONENT)
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    protect = transport._tx_srtp.protect
    send_data = pair.protocol.send_data
    address = pair.remote_addr
    state = vars(transport)
    for packet in packets:
        data = protect(packet)
        await send_data(data, address)
        state[TX_BYTES] += len(data)
        state[TX_PACKETS] += 1
