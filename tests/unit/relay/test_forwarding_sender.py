"""The forwarding sender packetizes frames instead of encoding them, and passes the subscriber's key
frame requests to the publisher; it replaces the sender aiortc made for a transceiver."""

from __future__ import annotations

import aiortc.rtcrtpsender
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs import CODECS
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from encoded_video import encode
from fake_source import FakeSource, meter, packet

from services.relay.forwarded_track import ForwardedTrack
from services.relay.forwarding_sender import TRANSCEIVER_SENDER, ForwardingSender, attach_sender

RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
VP8 = next(codec for codec in CODECS["video"] if codec.mimeType == "video/VP8")
OPUS = next(codec for codec in CODECS["audio"] if codec.mimeType == "audio/opus")


@pytest.fixture
async def pc():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    yield pc
    await pc.close()


@pytest.fixture(autouse=True)
def no_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_encoder(codec: RTCRtpCodecParameters) -> None:
        raise AssertionError(f"an encoder was created for {codec.mimeType}")

    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", no_encoder)


async def test_the_attached_sender_is_the_one_aiortc_negotiates_with(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("video", direction="sendonly")
    assert hasattr(transceiver, TRANSCEIVER_SENDER)
    sender = ForwardingSender(ForwardedTrack("video", FakeSource(), meter()), transceiver.sender.transport)
    attach_sender(transceiver, sender)
    assert transceiver.sender is sender and pc.getSenders() == [sender]
    offer = await pc.createOffer()
    assert f"a=ssrc:{sender._ssrc} " in offer.sdp
    assert vars(transceiver.receiver)[RECEIVER_RTCP_SSRC] == sender._ssrc


async def test_a_vp8_frame_is_packetized_with_its_timestamp_and_never_encoded(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("video", direction="sendonly")
    track = ForwardedTrack("video", FakeSource(), meter())
    sender = ForwardingSender(track, transceiver.sender.transport)
    key, *_ = encode("libvpx", 640, 360)
    track.push(packet(key, pts=3000, keyframe=True))
    frame = await sender._next_encoded_frame(VP8)
    assert frame is not None and frame.timestamp == 3000
    assert all(len(payload) <= 1300 for payload in frame.payloads)
    assert b"".join(vp8_depayload(payload) for payload in frame.payloads) == key


async def test_an_opus_frame_is_one_payload(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("audio", direction="sendonly")
    track = ForwardedTrack("audio", FakeSource(), meter())
    sender = ForwardingSender(track, transceiver.sender.transport)
    track.push(packet(b"\xfc" * 60, pts=960, keyframe=True, clock_rate=48000))
    frame = await sender._next_encoded_frame(OPUS)
    assert frame is not None and (frame.payloads, frame.timestamp) == ([b"\xfc" * 60], 960)


async def test_pli_and_fir_from_a_subscriber_become_requests_to_the_publisher(
    pc: RTCPeerConnection,
) -> None:
    source = FakeSource()
    transceiver = pc.addTransceiver("video", direction="sendonly")
    sender = ForwardingSender(ForwardedTrack("video", source, meter()), transceiver.sender.transport)
    sender._send_keyframe()
    sender._send_keyframe()
    assert (source.keyframe_requests, sender.keyframe_requests) == (2, 2)
