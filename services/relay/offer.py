"""A client's SDP offer, checked before any peer connection is made for it.

aiortc's own parser accepts nonsense (an empty string is a session without media) and fails on other
input with whatever exception the line it was reading raised; the relay wants one clear SDP_MALFORMED
naming what is wrong, before it spends a certificate and sockets on the peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from services.relay.errors import MEDIA_MISSING, SDP_MALFORMED

MEDIA_KINDS = ("audio", "video")
SENDING = ("sendonly", "sendrecv")
RECEIVING = ("recvonly", "sendrecv")

# Whatever aiortc's line-by-line parser raises on a line it cannot read.
_PARSE_ERRORS = (ValueError, AssertionError, KeyError, IndexError, StopIteration, AttributeError, TypeError)


@dataclass(frozen=True)
class OfferedMedia:
    """One audio or video m-line of an offer."""

    kind: str
    mid: str
    # As the offerer states it (its own point of view).
    direction: str
    codecs: list[RTCRtpCodecParameters]
    # The SSRC the offerer sends this media with, when it says (the first of a FID group is the media,
    # the second its retransmissions).
    ssrc: int | None


@dataclass(frozen=True)
class Offer:
    sdp: str
    media: list[OfferedMedia]

    def sending(self) -> list[OfferedMedia]:
        return [media for media in self.media if media.direction in SENDING]

    def receiving(self) -> list[OfferedMedia]:
        return [media for media in self.media if media.direction in RECEIVING]


def _primary_ssrc(media: sdp.MediaDescription) -> int | None:
    for group in media.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    return media.ssrc[0].ssrc if media.ssrc else None


def parse_offer(text: str) -> Offer:
    if not text.strip().startswith("v=0"):
        raise SDP_MALFORMED("the SDP offer must start with v=0")
    try:
        description = sdp.SessionDescription.parse(text)
    except _PARSE_ERRORS as error:
        raise SDP_MALFORMED(f"the SDP offer does not parse ({type(error).__name__})") from None
    offered = []
    for index, media in enumerate(description.media):
        if media.kind not in MEDIA_KINDS:
            raise SDP_MALFORMED(f"m-line {index} is {media.kind}; the relay forwards audio and video only")
        if not media.rtp.muxId:
            raise SDP_MALFORMED(f"m-line {index} has no a=mid")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise SDP_MALFORMED(f"m-line {index} has no a=ice-ufrag and a=ice-pwd")
        if media.dtls is None or not media.dtls.fingerprints:
            raise SDP_MALFORMED(f"m-line {index} has no a=fingerprint and a=setup")
        offered.append(
            OfferedMedia(
                kind=media.kind,
                mid=media.rtp.muxId,
                direction=media.direction or "sendrecv",
                codecs=list(media.rtp.codecs),
                ssrc=_primary_ssrc(media),
            )
        )
    if not offered:
        raise MEDIA_MISSING("the SDP offer has no audio or video m-line")
    for kind in MEDIA_KINDS:
        if sum(media.kind == kind for media in offered) > 1:
            raise SDP_MALFORMED(f"the SDP offer has more than one {kind} m-line")
    return Offer(sdp=text, media=offered)
