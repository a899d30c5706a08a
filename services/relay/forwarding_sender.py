"""An aiortc `RTCRtpSender` for frames that are already encoded.

The stock sender takes frames from its track in `_next_encoded_frame`: it encodes decoded frames, and
packs an `av.Packet` with `pack()` of an encoder it builds first with `get_encoder` (for Opus and G.711
that opens an FFmpeg encoder context). `ForwardingSender` overrides that one method to packetize the
forwarded frame itself, so no encoder exists on the forwarding path; everything else is the stock
sender's: sequence numbers and timestamps, SRTP, the RTP history that answers the subscriber's NACKs
(with RTX when negotiated), RTCP sender reports and BYE.

It overrides `_send_keyframe` too: the stock sender would make its encoder's next frame a key frame
when the subscriber sends PLI or FIR; a forwarding sender passes the request to the publisher.

aiortc creates a transceiver's sender itself, with no way to choose its class; `attach_sender` replaces
it on a transceiver that has not negotiated yet (one private attribute, checked by
tests/unit/relay/test_forwarding_sender.py against the installed aiortc).
"""

from __future__ import annotations

from aiortc import RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender

from services.relay.forwarded_track import ForwardedTrack
from services.relay.packetizer import Packetizer, packetizer_for

TRANSCEIVER_SENDER = "_RTCRtpTransceiver__sender"


class ForwardingSender(RTCRtpSender):
    def __init__(self, track: ForwardedTrack, transport: RTCDtlsTransport) -> None:
        super().__init__(track, transport)
        self._forwarded = track
        self._packetizer: Packetizer | None = None
        self.keyframe_requests = 0

    async def _next_encoded_frame(self, codec: RTCRtpCodecParameters) -> RTCEncodedFrame | None:
        packet = await self._forwarded.recv()
        if not self._enabled:
            return None
        if self._packetizer is None:
            # The negotiated codec, known once RTP starts: the feed's codec under this peer's payload type.
            self._packetizer = packetizer_for(codec)
        payloads = self._packetizer.packetize(bytes(packet))
        # No audio level header extension: measuring the level would take decoding. aiortc annotates the
        # field as int but passes None itself for frames without one.
        return RTCEncodedFrame(payloads, packet.pts or 0, None)  # type: ignore[arg-type]

    def _send_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._forwarded.request_keyframe()


def attach_sender(transceiver: RTCRtpTransceiver, sender: ForwardingSender) -> None:
    """Make `sender` the sender of a transceiver that was just added and has not negotiated yet."""
    sender._stream_id = transceiver.sender._stream_id
    setattr(transceiver, TRANSCEIVER_SENDER, sender)
    # The receiver signs its RTCP with its sender's SSRC (RTCPeerConnection does this on creation).
    transceiver.receiver._set_rtcp_ssrc(sender._ssrc)
