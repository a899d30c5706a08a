"""Each published track gets the publisher's first offered codec among those the relay forwards."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from services.core.errors import ParleyError
from services.relay.codecs import accepts, choose_published_codec, preferences
from services.relay.offer import OfferedMedia

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(
    mimeType="video/H264",
    clockRate=90000,
    payloadType=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f", "level-asymmetry-allowed": "1"},
)
H264_HIGH = RTCRtpCodecParameters(
    mimeType="video/H264",
    clockRate=90000,
    payloadType=104,
    parameters={"packetization-mode": "1", "profile-level-id": "640c1f"},
)
RTX = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96})
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
PCMU = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
G722 = RTCRtpCodecParameters(mimeType="audio/G722", clockRate=8000, channels=1, payloadType=9)
ISAC = RTCRtpCodecParameters(mimeType="audio/ISAC", clockRate=16000, channels=1, payloadType=103)


def media(kind: str, *codecs: RTCRtpCodecParameters) -> OfferedMedia:
    return OfferedMedia(kind=kind, mid="0", direction="sendonly", codecs=list(codecs), ssrc=None)


def test_the_publishers_first_forwardable_codec_is_chosen() -> None:
    assert (
        choose_published_codec(media("video", H264_HIGH, H264, VP8, RTX)).parameters["profile-level-id"]
        == "42e01f"
    )
    assert choose_published_codec(media("video", RTX, VP8, H264)).mimeType == "video/VP8"
    assert choose_published_codec(media("audio", G722, ISAC, PCMU, OPUS)).mimeType == "audio/PCMU"


def test_a_track_with_no_forwardable_codec_is_refused_naming_what_it_offered() -> None:
    with pytest.raises(ParleyError) as refused:
        choose_published_codec(media("audio", G722, ISAC))
    assert (refused.value.code, refused.value.kind.reason) == (5003, "CODEC_UNSUPPORTED")
    assert "audio/G722, audio/ISAC" in refused.value.message


def test_a_subscriber_must_accept_the_feeds_codec_itself() -> None:
    feed_codec = choose_published_codec(media("video", H264))
    assert accepts(media("video", VP8, H264), feed_codec)
    assert not accepts(media("video", VP8, H264_HIGH), feed_codec)


def test_preferences_name_one_codec_and_rtx_for_video_only() -> None:
    assert [c.mimeType for c in preferences(choose_published_codec(media("video", VP8)))] == [
        "video/VP8",
        "video/rtx",
    ]
    assert [c.mimeType for c in preferences(choose_published_codec(media("audio", OPUS)))] == ["audio/opus"]
