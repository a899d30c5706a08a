"""An aiortc `RTCRtpSender` for frames that are already encoded.

The stock sender takes frames from its track in `_next_encoded_frame`: it encodes decoded frames, and
packs an `av.Packet` with `pack()` of an encoder it builds first with `get_encoder` (for Opus and G.711
that opens an FFmpeg encoder context). `ForwardingSender` overrides that method to packetize the
forwarded frame itself, so no encoder exists on the forwarding path.

It overrides the RTP loop (`_run_rtp`) too, the per-packet part of every subscriber's stream: the stock
loop builds an `RtpPacket` per packet and reads the clock twice per packet; this one writes each frame's
packets as bytes with one clock reading per frame (`services/relay/rtp_writer.py`). Frames are sent
synchronously from the feed's fan-out (the sender is its track's `sink`), with the payloads the feed cut
once for all its subscribers: no task wake-up per frame and no coroutine chain per packet (aiortc's
`_send_rtp` → ICE transport → aioice `Connection.sendto` → `StunProtocol.send_data`); each packet is
protected with the DTLS transport's SRTP session and written to the nominated pair's socket, as that
chain does. The loop itself only sends what was queued before the sender started. What subscribers see
is the stock sender's: a random first sequence number and timestamp offset, the marker bit on a frame's
last packet, the negotiated mid and abs-send-time extensions, SRTP through the DTLS transport. The
stock sender's state that its other tasks read is kept up to date once per frame: the packet and octet
counts and the NTP/RTP timestamp pair of its RTCP sender reports and `getStats()`. NACKs are answered
from the packets this loop sent (`_retransmit`), through the stock retransmission (RTX when
negotiated). RTCP (reports, BYE) and `stop()` are the stock sender's.

It overrides `_send_keyframe` as well: the stock sender would make its encoder's next frame a key frame
when the subscriber sends PLI or FIR; a forwarding sender passes the request to the publisher.

aiortc creates a transceiver's sender itself, with no way to choose its class; `attach_sender` replaces
it on a transceiver that has not negotiated yet. The private names used are constants below, checked by
tests/unit/relay/test_forwarding_sender.py against the installed aiortc.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import structlog
from aiortc import RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender, random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensionsMap, RtpPacket
from aiortc.utils import random32
from av.packet import Packet

from services.relay.fast_send import Outbox, Protect, Route
from services.relay.forwarded_track import ForwardedTrack
from services.relay.packetizer import Packetizer, packetizer_for
from services.relay.rtp_writer import RtpStreamWriter, ntp_now

log = structlog.get_logger(__name__)

TRANSCEIVER_SENDER = "_RTCRtpTransceiver__sender"
# The stock sender's state that its `stop()`, `_run_rtcp`, `getStats` and `_retransmit` read.
RTP_STARTED = "_RTCRtpSender__rtp_started"
RTP_EXITED = "_RTCRtpSender__rtp_exited"
RTP_HISTORY = "_RTCRtpSender__rtp_history"
NTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp"
RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
OCTET_COUNT = "_RTCRtpSender__octet_count"
PACKET_COUNT = "_RTCRtpSender__packet_count"
SENDER_STATE = (RTP_STARTED, RTP_EXITED, RTP_HISTORY, NTP_TIMESTAMP, RTP_TIMESTAMP, OCTET_COUNT, PACKET_COUNT)
# The DTLS transport's counters that its `_send_rtp` keeps (its getStats reads them).
DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"
# aioice's RTP/RTCP component (aiortc multiplexes RTCP on it).
ICE_COMPONENT = 1


class ForwardingSender(RTCRtpSender):
    def __init__(self, track: ForwardedTrack, transport: RTCDtlsTransport, outbox: Outbox) -> None:
        super().__init__(track, transport)
        self._forwarded = track
        self._outbox = outbox
        # The nominated ICE pair and SRTP session that `_route` and `_protect` were made for.
        self._route_for: tuple[object, object] | None = None
        self._route: Route | None = None
        self._protect: Protect | None = None
        self._packetizer: Packetizer | None = None
        self._extensions = HeaderExtensionsMap()
        self._mid: str | None = None
        self._writer: RtpStreamWriter | None = None
        # The negotiated codec, set when RTP starts, before the sender becomes its track's sink.
        self._codec = cast(RTCRtpCodecParameters, None)
        self._sequence_number = 0
        self._timestamp_origin = 0
        self.keyframe_requests = 0
        self.retransmitted_packets = 0

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self._writer is None:
            # What the stock sender notes before it starts `_run_rtp`, which needs it here.
            self._mid = parameters.muxId
            self._extensions.configure(parameters)
        await super().send(parameters)

    async def _next_encoded_frame(self, codec: RTCRtpCodecParameters) -> RTCEncodedFrame | None:
        packet, payloads, _, _ = await self._forwarded.next_frame()
        if not self._enabled:
            return None
        # No audio level header extension: measuring the level would take decoding. aiortc annotates the
        # field as int but passes None itself for frames without one.
        return RTCEncodedFrame(self._payloads(packet, payloads, codec), packet.pts or 0, None)  # type: ignore[arg-type]

    def _payloads(
        self, packet: Packet, payloads: list[bytes] | None, codec: RTCRtpCodecParameters
    ) -> list[bytes]:
        if payloads is not None:
            return payloads
        if self._packetizer is None:
            # The negotiated codec: the feed's codec under this peer's payload type.
            self._packetizer = packetizer_for(codec)
        return self._packetizer.packetize(bytes(packet))

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        state = vars(self)
        state[RTP_STARTED].set()
        # A negotiated codec always has its payload type (the stock loop relies on it too).
        payload_type = cast(int, codec.payloadType)
        self._writer = RtpStreamWriter(self._ssrc, payload_type, self._extensions, self._mid)
        self._codec = codec
        self._sequence_number = random_sequence_number()
        self._timestamp_origin = random32()
        try:
            # From now on the track hands frames over as they come, once the frames queued before now
            # (and any queued while the sink could not send) have gone through this loop.
            self._forwarded.sink = self._send_now
            while True:
                frame = await self._next_encoded_frame(codec)
                if frame is not None:
                    payloads = frame.payloads
                    self._send_frame(payloads, frame.timestamp, sum(map(len, payloads)), ntp_now())
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            # `stop()` waits for RTP_EXITED: never leave without setting it.
            log.exception("subscriber_rtp_failed")
        self._forwarded.sink = None
        self._forwarded.stop()
        state[RTP_EXITED].set()

    def _send_now(self, packet: Packet, payloads: list[bytes] | None, octets: int, ntp: int | None) -> None:
        """The track's sink: send a frame now, inside the publisher's fan-out (never raise into it), with
        the payloads, their bytes and the clock reading the feed made once for all its subscribers."""
        if not self._enabled:
            return
        try:
            if payloads is None:
                payloads = self._payloads(packet, None, self._codec)
                octets = sum(map(len, payloads))
            self._send_frame(payloads, packet.pts or 0, octets, ntp_now() if ntp is None else ntp)
        except ConnectionError:
            # Closing: frames queue from now on, and the RTP loop ends on the next one.
            self._forwarded.sink = None
        except Exception:
            log.exception("subscriber_rtp_failed")
            self._forwarded.sink = None

    def _send_frame(self, payloads: list[bytes], pts: int, octets: int, ntp: int) -> None:
        timestamp = (self._timestamp_origin + pts) & 0xFFFFFFFF
        assert self._writer is not None
        packets = self._writer.frame(payloads, timestamp, self._sequence_number, ntp)
        self._send_packets(packets)
        self._sequence_number = (self._sequence_number + len(packets)) & 0xFFFF
        state = vars(self)
        state[NTP_TIMESTAMP] = ntp
        state[RTP_TIMESTAMP] = timestamp
        state[OCTET_COUNT] += octets
        state[PACKET_COUNT] += len(packets)

    def _send_packets(self, packets: list[bytes]) -> None:
        """What the DTLS transport's `_send_rtp` does per packet, for a frame's packets at once: protected
        with its SRTP session and handed to the relay's outbox for the nominated pair's socket."""
        dtls: Any = self.transport
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = dtls.transport._connection._nominated.get(ICE_COMPONENT)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        session = dtls._tx_srtp
        made_for = self._route_for
        if made_for is None or made_for[0] is not pair or made_for[1] is not session:
            self._route = self._outbox.route(pair.protocol.transport, pair.remote_addr)
            self._protect = self._outbox.protector(session)
            self._route_for = (pair, session)
        assert self._protect is not None and self._route is not None
        datagrams = self._protect(packets)
        self._outbox.send(self._route, datagrams)
        counters = vars(dtls)
        counters[DTLS_TX_BYTES] += sum(map(len, datagrams))
        counters[DTLS_TX_PACKETS] += len(packets)

    async def _retransmit(self, sequence_number: int) -> None:
        packet = self._writer.sent(sequence_number) if self._writer else None
        if packet is None:
            return
        # The stock retransmission (RTX wrapping when negotiated) reads the packet from its own history.
        vars(self)[RTP_HISTORY][sequence_number % RTP_HISTORY_SIZE] = RtpPacket.parse(
            packet, self._extensions
        )
        self.retransmitted_packets += 1
        await super()._retransmit(sequence_number)

    def _send_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._forwarded.request_keyframe()


def attach_sender(transceiver: RTCRtpTransceiver, sender: ForwardingSender) -> None:
    """Make `sender` the sender of a transceiver that was just added and has not negotiated yet."""
    sender._stream_id = transceiver.sender._stream_id
    setattr(transceiver, TRANSCEIVER_SENDER, sender)
    # The receiver signs its RTCP with its sender's SSRC (RTCPeerConnection does this on creation).
    transceiver.receiver._set_rtcp_ssrc(sender._ssrc)
