"""The forwarding sender packetizes frames instead of encoding them, and passes the subscriber's key
frame requests to the publisher; it replaces the sender aiortc made for a transceiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import aiortc.rtcrtpsender
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.codecs import CODECS
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import RTCP_RTPFB_NACK, HeaderExtensionsMap, RtcpRtpfbPacket, RtpPacket, is_rtcp
from encoded_video import encode
from fake_source import FakeSource, meter, packet

from services.relay.fast_send import Outbox
from services.relay.forwarded_track import ForwardedTrack
from services.relay.forwarding_sender import (
    DTLS_TX_BYTES,
    DTLS_TX_PACKETS,
    ICE_COMPONENT,
    NTP_TIMESTAMP,
    RTP_TIMESTAMP,
    SENDER_STATE,
    TRANSCEIVER_SENDER,
    ForwardingSender,
    attach_sender,
)

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
    track = ForwardedTrack("video", FakeSource(), meter())
    sender = ForwardingSender(track, transceiver.sender.transport, Outbox(None))
    attach_sender(transceiver, sender)
    assert transceiver.sender is sender and pc.getSenders() == [sender]
    offer = await pc.createOffer()
    assert f"a=ssrc:{sender._ssrc} " in offer.sdp
    assert vars(transceiver.receiver)[RECEIVER_RTCP_SSRC] == sender._ssrc


async def test_a_vp8_frame_is_packetized_with_its_timestamp_and_never_encoded(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("video", direction="sendonly")
    track = ForwardedTrack("video", FakeSource(), meter())
    sender = ForwardingSender(track, transceiver.sender.transport, Outbox(None))
    key, *_ = encode("libvpx", 640, 360)
    track.push(packet(key, pts=3000, keyframe=True))
    frame = await sender._next_encoded_frame(VP8)
    assert frame is not None and frame.timestamp == 3000
    assert all(len(payload) <= 1300 for payload in frame.payloads)
    assert b"".join(vp8_depayload(payload) for payload in frame.payloads) == key


async def test_an_opus_frame_is_one_payload(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("audio", direction="sendonly")
    track = ForwardedTrack("audio", FakeSource(), meter())
    sender = ForwardingSender(track, transceiver.sender.transport, Outbox(None))
    track.push(packet(b"\xfc" * 60, pts=960, keyframe=True, clock_rate=48000))
    frame = await sender._next_encoded_frame(OPUS)
    assert frame is not None and (frame.payloads, frame.timestamp) == ([b"\xfc" * 60], 960)


async def test_pli_and_fir_from_a_subscriber_become_requests_to_the_publisher(
    pc: RTCPeerConnection,
) -> None:
    source = FakeSource()
    transceiver = pc.addTransceiver("video", direction="sendonly")
    sender = ForwardingSender(
        ForwardedTrack("video", source, meter()), transceiver.sender.transport, Outbox(None)
    )
    sender._send_keyframe()
    sender._send_keyframe()
    assert (source.keyframe_requests, sender.keyframe_requests) == (2, 2)


class RecordingTransport:
    """What a sender needs of its DTLS transport; keeps the RTP and RTCP it is given, unprotected: RTCP and
    retransmissions through `_send_rtp`, forwarded frames through its SRTP session and the nominated ICE
    pair's socket (`ForwardingSender._send_packets`)."""

    state = "connected"
    _state = State.CONNECTED
    _stats_id = "transport"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        vars(self)[DTLS_TX_BYTES] = vars(self)[DTLS_TX_PACKETS] = 0
        self._tx_srtp = SimpleNamespace(protect=lambda data: data)
        socket = SimpleNamespace(sendto=lambda data, address: self.sent.append(data))
        pair = SimpleNamespace(protocol=SimpleNamespace(transport=socket), remote_addr=("127.0.0.1", 9))
        self.transport = SimpleNamespace(_connection=SimpleNamespace(_nominated={ICE_COMPONENT: pair}))

    def _register_rtp_sender(self, sender: object, parameters: object) -> None: ...

    def _unregister_rtp_sender(self, sender: object) -> None: ...

    def _get_stats(self) -> dict[str, object]:
        return {}

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)

    def rtp(self, extensions: HeaderExtensionsMap) -> list[RtpPacket]:
        return [RtpPacket.parse(data, extensions) for data in self.sent if not is_rtcp(data)]


VP8_PT, RTX_PT = 97, 98
SEND_PARAMETERS = RTCRtpSendParameters(
    codecs=[
        RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=VP8_PT),
        RTCRtpCodecParameters(
            mimeType="video/rtx", clockRate=90000, payloadType=RTX_PT, parameters={"apt": VP8_PT}
        ),
    ],
    headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(
            id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
        ),
    ],
    muxId="0",
    rtcp=RTCRtcpParameters(cname="relay"),
)


def test_the_stock_sender_state_the_forwarding_sender_keeps_up_to_date_exists() -> None:
    assert set(SENDER_STATE) <= set(vars(RTCRtpSender("video", RecordingTransport())))  # type: ignore[arg-type]


async def test_the_dtls_and_ice_state_the_forwarding_sender_sends_with_exists(pc: RTCPeerConnection) -> None:
    dtls = pc.addTransceiver("video", direction="sendonly").sender.transport
    assert {DTLS_TX_BYTES, DTLS_TX_PACKETS, "_state", "_tx_srtp"} <= set(vars(dtls))
    assert isinstance(dtls.transport._connection._nominated, dict)


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_forwarded_frames_leave_as_the_stock_sender_sends_them_and_nacks_are_answered_with_rtx() -> (
    None
):
    transport = RecordingTransport()
    track = ForwardedTrack("video", FakeSource(), meter())
    sender = ForwardingSender(track, transport, Outbox(None))  # type: ignore[arg-type]
    extensions = HeaderExtensionsMap()
    extensions.configure(SEND_PARAMETERS)
    key, delta, *_ = encode("libvpx", 640, 360)
    await sender.send(SEND_PARAMETERS)
    try:
        track.push(packet(key, pts=3000, keyframe=True))
        track.push(packet(delta, pts=6000))
        await wait_for(lambda: len({p.timestamp for p in transport.rtp(extensions)}) == 2)
        sent = transport.rtp(extensions)
        first_timestamp = sent[0].timestamp
        frames = [
            [p for p in sent if p.timestamp == t] for t in (first_timestamp, (first_timestamp + 3000) % 2**32)
        ]
        assert [b"".join(vp8_depayload(p.payload) for p in frame) for frame in frames] == [key, delta]
        assert all(
            p.payload_type == VP8_PT and p.ssrc == sender._ssrc and p.extensions.mid == "0" for p in sent
        )
        assert [p.sequence_number for p in sent] == [
            (sent[0].sequence_number + i) % 2**16 for i in range(len(sent))
        ]
        assert [p.marker for frame in frames for p in frame] == [
            int(i == len(frame) - 1) for frame in frames for i in range(len(frame))
        ]
        assert all(p.extensions.abs_send_time is not None for p in sent)
        # One send time per frame.
        assert len({p.extensions.abs_send_time for p in frames[0]}) == 1

        stats = next(s for s in (await sender.getStats()).values() if s.type == "outbound-rtp")
        assert (stats.packetsSent, stats.bytesSent) == (len(sent), sum(len(p.payload) for p in sent))
        state = vars(sender)
        assert state[RTP_TIMESTAMP] == frames[1][0].timestamp and state[NTP_TIMESTAMP] > 0
        # Once the sender runs, a pushed frame leaves inside `push`: no task wake-up per frame.
        before = len(transport.sent)
        track.push(packet(delta, pts=9000))
        assert len(transport.sent) > before
        assert vars(transport)[DTLS_TX_PACKETS] == len(transport.sent)

        lost = frames[1][0]
        transport.sent.clear()
        nack = RtcpRtpfbPacket(
            fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc, lost=[lost.sequence_number]
        )
        await sender._handle_rtcp_packet(nack)
        (rtx,) = transport.rtp(extensions)
        assert (rtx.payload_type, rtx.ssrc, rtx.timestamp) == (RTX_PT, sender._rtx_ssrc, lost.timestamp)
        assert rtx.payload == lost.sequence_number.to_bytes(2, "big") + lost.payload
        assert sender.retransmitted_packets == 1

        # A packet that was never sent is not answered.
        transport.sent.clear()
        never_sent = (sent[0].sequence_number - 1) % 2**16
        await sender._handle_rtcp_packet(
            RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc, lost=[never_sent])
        )
        assert transport.rtp(extensions) == [] and sender.retransmitted_packets == 1
    finally:
        async with asyncio.timeout(5):
            await sender.stop()
    assert track.readyState == "ended"
