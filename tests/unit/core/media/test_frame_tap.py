"""The tap takes encoded frames out of a real aiortc receiver, whose decoder thread then never creates a
decoder; the private attributes it relies on exist in the installed aiortc."""

from __future__ import annotations

import asyncio

import aiortc.rtcrtpreceiver
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpDecodingParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtpPacket

from services.core.media.frame_tap import DECODER_QUEUE, JITTER_BUFFER, EncodedFrameTap, tap_receiver
from services.core.media.jitter_buffer import MarkerJitterBuffer

DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)


def opus_packet(sequence: int) -> RtpPacket:
    return RtpPacket(
        payload_type=96, sequence_number=sequence, timestamp=960 * sequence, ssrc=1234, payload=b"\xfc" * 40
    )


async def test_a_tapped_receiver_hands_over_encoded_frames_and_never_creates_a_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoder(codec: RTCRtpCodecParameters) -> None:
        raise AssertionError(f"a decoder was created for {codec.mimeType}")

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", no_decoder)
    frames: list[tuple[str, JitterFrame]] = []
    ended: list[bool] = []
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = pc.addTransceiver("audio", direction="recvonly").receiver
    assert hasattr(receiver, DECODER_QUEUE) and hasattr(receiver, JITTER_BUFFER)
    # What RTCPeerConnection.setRemoteDescription gives a receiving transceiver.
    receiver._track = RemoteStreamTrack(kind="audio")
    tap_receiver(
        receiver,
        "audio",
        EncodedFrameTap(lambda c, f: frames.append((c.mimeType, f)), lambda: ended.append(True)),
    )

    await receiver.receive(
        RTCRtpReceiveParameters(
            codecs=[OPUS], encodings=[RTCRtpDecodingParameters(ssrc=1234, payloadType=96)]
        )
    )
    thread = vars(receiver)[DECODER_THREAD]
    thread.join(timeout=5)
    assert not thread.is_alive()  # it read the tap's "stop" at once

    for sequence in (1, 2, 3):
        await receiver._handle_rtp_packet(opus_packet(sequence), arrival_time_ms=0)
    # Without playout prefetch, each frame is handed over as soon as the next packet confirms it.
    assert [(mime, frame.data) for mime, frame in frames] == [("audio/opus", b"\xfc" * 40)] * 2
    await receiver.stop()
    await pc.close()
    assert ended == [True]


def test_a_failing_frame_handler_costs_that_frame_only() -> None:
    calls: list[int] = []

    def handler(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        calls.append(frame.timestamp)
        raise ValueError("bad frame")

    tap = EncodedFrameTap(handler, lambda: None)
    tap.put((OPUS, JitterFrame(b"a", 1)))
    tap.put((OPUS, JitterFrame(b"b", 2)))
    assert calls == [1, 2]


def test_the_end_is_reported_once() -> None:
    ended: list[bool] = []
    tap = EncodedFrameTap(lambda c, f: None, lambda: ended.append(True))
    tap.put(None)
    tap.put(None)
    tap.put((OPUS, JitterFrame(b"after", 1)))
    assert ended == [True]


async def test_tapping_a_video_receiver_gives_it_the_marker_jitter_buffer() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    stock = getattr(receiver, JITTER_BUFFER)
    tap_receiver(receiver, "video", EncodedFrameTap(lambda c, f: None, lambda: None))
    replacement = getattr(receiver, JITTER_BUFFER)
    assert isinstance(replacement, MarkerJitterBuffer) and replacement.capacity == stock.capacity
    await asyncio.sleep(0)
    await pc.close()


VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


def vp8_packet(sequence: int, timestamp: int, *, start: bool, marker: bool, body: bytes) -> RtpPacket:
    # VP8 payload descriptor (RFC 7741 4.2): S bit on a frame's first packet, partition 0.
    descriptor = b"\x10" if start else b"\x00"
    return RtpPacket(
        payload_type=97,
        sequence_number=sequence,
        timestamp=timestamp,
        ssrc=4321,
        marker=int(marker),
        payload=descriptor + body,
    )


async def test_a_tapped_video_receiver_hands_a_frame_over_on_its_marker_packet() -> None:
    frames: list[JitterFrame] = []
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    receiver._track = RemoteStreamTrack(kind="video")
    tap_receiver(receiver, "video", EncodedFrameTap(lambda c, f: frames.append(f), lambda: None))
    await receiver.receive(
        RTCRtpReceiveParameters(codecs=[VP8], encodings=[RTCRtpDecodingParameters(ssrc=4321, payloadType=97)])
    )
    await receiver._handle_rtp_packet(
        vp8_packet(10, 3000, start=True, marker=False, body=b"a" * 20), arrival_time_ms=0
    )
    assert frames == []
    await receiver._handle_rtp_packet(
        vp8_packet(11, 3000, start=False, marker=True, body=b"b" * 20), arrival_time_ms=0
    )
    # Out on the marker packet, with no packet of the next frame in sight.
    assert [frame.data for frame in frames] == [b"a" * 20 + b"b" * 20]
    await receiver.stop()
    await pc.close()
