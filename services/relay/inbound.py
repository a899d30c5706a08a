"""SRTP and SRTCP handled where the datagram arrives, once a peer's DTLS is connected.

In aiortc every datagram a peer sends takes this way: the socket's aioice `StunProtocol` tries to parse it
as STUN, hands it to its `Connection`, which puts it on an asyncio queue; the DTLS transport's read task
wakes up for it (a task step per datagram), awaits it through four coroutines (`_recv_next` →
`RTCIceTransport._recv` → `Connection.recv` → `recvfrom`), unprotects it and awaits the receiver's or
sender's handling. For a publisher's media that is a queue hop and a task wake-up per RTP packet.

`InboundMedia` takes the SRTP and SRTCP datagrams (RFC 7983: first byte 128-191) straight from the socket's
`datagram_received` once the DTLS transport is connected, unprotects them with the transport's own SRTP
session (from C where services/relay/_fastsend.c is built and the relay's `compiled_send` setting is on:
services/relay/fast_send.py, `unprotector`), counts them as the transport does (the flood guard reads those
counters) and runs the transport's own RTCP handling at once (`run_now`: the senders' NACK/PLI/report
handling) and the relay's own RTP handling (receive.py: parsing, routing, the receiver's statistics, NACKs,
REMB, jitter buffer and the relay's frame tap). Those coroutines do not suspend (what they await, sending
RTCP, ends in a synchronous `sendto`), so nothing is queued and no task runs per datagram. STUN (consent,
keepalives) and DTLS records keep aioice's and aiortc's own path, and so does media until the transport is
connected and whatever datagrams it has queued have been read, so packets are not handled out of the order
they came.

What fails on the stock path fails here the same way: a datagram SRTP refuses is dropped, an RTP or RTCP
packet that does not parse is dropped (RTP by receive.py's checks, which are aiortc's, RTCP by aiortc).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from time import time_ns
from types import ModuleType
from typing import Any

import pylibsrtp
import structlog
from aioice.ice import Connection, StunProtocol
from aiortc.rtcdtlstransport import RTCDtlsTransport, State

from services.relay.fast_send import Unprotect, unprotector
from services.relay.receive import PublisherRtp
from services.relay.rtp_writer import NTP_UNIX_OFFSET
from services.relay.run_now import run_now

log = structlog.get_logger(__name__)

# The DTLS transport's receive counters, which its `_recv_next` keeps per datagram (getStats and the
# flood guard read them).
DTLS_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
DTLS_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
# RFC 7983: RTP and RTCP datagrams start with a byte in 128-191.
_FIRST_MEDIA_BYTE = 128
_LAST_MEDIA_BYTE = 191
_NTP_UNIX_OFFSET_MS = NTP_UNIX_OFFSET * 1000
# aiortc's `is_rtcp`: the second byte of an RTCP packet is its type, 192-208.
_FIRST_RTCP_TYPE = 192
_LAST_RTCP_TYPE = 208
_CONNECTED = State.CONNECTED

DatagramHandler = Callable[[bytes, Any], None]


class InboundMedia:
    """The fast path for one peer connection's DTLS transport (BUNDLE: one per peer)."""

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        connection: Connection,
        rtp: Callable[[bytes, int], None] | None = None,
        compiled: ModuleType | None = None,
    ) -> None:
        self._dtls = dtls
        self._connection = connection
        self._counters = vars(dtls)
        # What aioice has queued for the DTLS read task: the deque inside its asyncio.Queue, read directly
        # (`Queue.empty` is that deque's length behind a method call, once per datagram).
        self._queued = connection._queue._queue  # type: ignore[attr-defined]
        # What takes an unprotected RTP packet and its arrival time (ms, aiortc's clock).
        self._rtp = rtp or PublisherRtp(dtls, compiled).handle
        self._compiled = compiled
        # The transport's receiving SRTP session (set once DTLS is connected) and what unprotects with it.
        self._srtp: Any = None
        self._unprotect: Unprotect
        self._unprotect_rtcp: Unprotect

    def install(self) -> None:
        """Take the media datagrams of every socket the connection gathered (call after gathering)."""
        for protocol in self._connection._protocols:
            self.take_over(protocol)

    def take_over(self, protocol: StunProtocol) -> None:
        stock: DatagramHandler = protocol.datagram_received
        # The socket transports (asyncio's, uvloop's, the relay's UDP mux) look the handler up per datagram.
        # A partial (C) rather than a closure: one Python frame per datagram, not two.
        protocol.datagram_received = partial(self.received, stock)  # type: ignore[method-assign]

    def received(self, stock: DatagramHandler, data: bytes, addr: Any) -> None:
        """Handle `data` if it is SRTP or SRTCP of a connected transport; else hand it to aioice (`stock`)."""
        if not data or not _FIRST_MEDIA_BYTE <= data[0] <= _LAST_MEDIA_BYTE:
            stock(data, addr)
            return
        dtls = self._dtls
        if dtls._state is not _CONNECTED or self._queued:
            stock(data, addr)
            return
        counters = self._counters
        counters[DTLS_RX_BYTES] += len(data)
        counters[DTLS_RX_PACKETS] += 1
        if dtls._rx_srtp is not self._srtp:
            self._srtp = dtls._rx_srtp
            self._unprotect, self._unprotect_rtcp = unprotector(self._srtp, self._compiled)
        try:
            # aiortc's `is_rtcp`, inline: this runs for every datagram.
            if len(data) >= 2 and _FIRST_RTCP_TYPE <= data[1] <= _LAST_RTCP_TYPE:
                run_now(dtls._handle_rtcp_data(self._unprotect_rtcp(data)))
            else:
                # The arrival time as aiortc's `clock.current_ms()` (ms since the NTP epoch), from one
                # integer clock reading.
                self._rtp(self._unprotect(data), time_ns() // 1_000_000 + _NTP_UNIX_OFFSET_MS)
        except pylibsrtp.Error:
            # Replayed, forged or damaged: dropped, as the DTLS transport drops it.
            pass
        except ConnectionError:
            # The transport is closing while a reply (NACK, PLI, RTX) was being sent.
            pass
        except Exception:
            # Raised into the socket's callback it would reach the event loop's handler for every packet;
            # the stock path would end the transport's read task. One datagram is all it costs here.
            log.exception("inbound_media_failed")


def take_inbound_media(pc: Any, compiled: ModuleType | None = None) -> None:
    """Give each DTLS transport of `pc` (an `RTCPeerConnection` that has gathered) the fast path, with SRTP
    unprotected and RTP headers parsed by `compiled` (services.relay._fastsend) or, None, in Python."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    for dtls in transports.values():
        InboundMedia(dtls, dtls.transport._connection, compiled=compiled).install()
