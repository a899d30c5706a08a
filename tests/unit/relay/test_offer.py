"""Offers are checked before the relay spends a peer connection on them."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from services.core.errors import ParleyError
from services.core.media.gathering import gathering_on
from services.relay.offer import parse_offer


async def aiortc_offer(*kinds_and_directions: tuple[str, str], datachannel: bool = False) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for kind, direction in kinds_and_directions:
            pc.addTransceiver(kind, direction=direction)
        if datachannel:
            pc.createDataChannel("chat")
        offer = await pc.createOffer()
        with gathering_on(["127.0.0.1"]):
            await pc.setLocalDescription(offer)
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_an_offer_lists_its_media_with_directions_codecs_and_sending_ssrc() -> None:
    offer = parse_offer(await aiortc_offer(("video", "sendonly"), ("audio", "recvonly")))
    video, audio = offer.media
    assert (video.kind, video.direction, audio.kind, audio.direction) == (
        "video",
        "sendonly",
        "audio",
        "recvonly",
    )
    assert {codec.mimeType for codec in video.codecs} >= {"video/VP8", "video/H264", "video/rtx"}
    assert video.ssrc is not None
    assert offer.sending() == [video] and offer.receiving() == [audio]


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("", "SDP_MALFORMED"),
        ("not sdp at all", "SDP_MALFORMED"),
        ("v=0\r\n", "MEDIA_MISSING"),
        ("v=0\r\nm=video x UDP/TLS/RTP/SAVPF 96\r\n", "SDP_MALFORMED"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 300\r\n", "SDP_MALFORMED"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n", "SDP_MALFORMED"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=fmtp:112 x=1\r\n", "SDP_MALFORMED"),
    ],
)
def test_malformed_offers_are_refused_with_5003(sdp: str, reason: str) -> None:
    with pytest.raises(ParleyError) as refused:
        parse_offer(sdp)
    assert (refused.value.code, refused.value.kind.reason) == (5003, reason)


async def test_data_channels_and_second_m_lines_of_a_kind_are_refused() -> None:
    with pytest.raises(ParleyError, match="audio and video only"):
        parse_offer(await aiortc_offer(("video", "sendonly"), datachannel=True))
    with pytest.raises(ParleyError, match="more than one video"):
        parse_offer(await aiortc_offer(("video", "sendonly"), ("video", "sendonly")))


async def test_an_offer_without_ice_credentials_or_fingerprint_is_malformed() -> None:
    sdp = await aiortc_offer(("audio", "sendonly"))
    for attribute in ("a=ice-pwd:", "a=fingerprint:"):
        stripped = "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(attribute))
        with pytest.raises(ParleyError) as refused:
            parse_offer(stripped)
        assert refused.value.kind.reason == "SDP_MALFORMED"
