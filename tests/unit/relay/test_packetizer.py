"""Payloads cut from encoded frames reassemble, at the receiver, into the same frames."""

from __future__ import annotations

import pytest
from aiortc.codecs import CODECS, depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from encoded_video import encode

from services.core.media.bitstream import split_annexb
from services.relay.packetizer import packetizer_for


def codec(mime: str) -> RTCRtpCodecParameters:
    return next(c for kind in ("audio", "video") for c in CODECS[kind] if c.mimeType == mime)


def test_vp8_frames_split_into_packets_that_reassemble_with_fresh_picture_ids() -> None:
    packetizer = packetizer_for(codec("video/VP8"))
    key, delta, *_ = encode("libvpx", 1280, 720)
    first, second = packetizer.packetize(key), packetizer.packetize(delta)
    assert len(first) > 1 and all(len(payload) <= 1300 for payload in first)
    assert b"".join(depayload(codec("video/VP8"), p) for p in first) == key
    assert b"".join(depayload(codec("video/VP8"), p) for p in second) == delta
    assert first[0][2:4] != second[0][2:4]  # the picture id moved on


def test_h264_frames_reassemble_into_the_same_nal_units() -> None:
    packetizer = packetizer_for(codec("video/H264"))
    for frame in encode("libx264", 1280, 720)[:2]:
        payloads = packetizer.packetize(frame)
        reassembled = b"".join(depayload(codec("video/H264"), p) for p in payloads)
        assert split_annexb(reassembled) == split_annexb(frame)


@pytest.mark.parametrize("mime", ["audio/opus", "audio/PCMU", "audio/PCMA"])
def test_audio_frames_travel_whole(mime: str) -> None:
    assert packetizer_for(codec(mime)).packetize(b"\x01\x02\x03") == [b"\x01\x02\x03"]


def test_a_codec_the_relay_does_not_forward_has_no_packetizer() -> None:
    with pytest.raises(ValueError, match="G722"):
        packetizer_for(codec("audio/G722"))
