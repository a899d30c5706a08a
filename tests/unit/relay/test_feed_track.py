"""A published track: frames in from the publisher's receiver, read without decoding, out to every
subscriber; key frames asked of the publisher for whoever joins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiortc import RTCRtpReceiver
from aiortc.codecs import CODECS
from aiortc.codecs.vpx import vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpSynchronizationSource
from encoded_video import encode
from fake_source import meter
from parley.relay.v1 import media_pb2

from services.core.media.bitstream import NAL_IDR, NAL_PPS, NAL_SPS, nal_type, split_annexb
from services.core.media.jitter_buffer import PacketizedFrame
from services.relay.fast_send import Outbox
from services.relay.feed import FeedTrack
from services.relay.forwarded_track import ForwardedTrack

VP8 = next(codec for codec in CODECS["video"] if codec.mimeType == "video/VP8")
H264 = next(codec for codec in CODECS["video"] if codec.mimeType == "video/H264")


class FakeReceiver:
    def __init__(self) -> None:
        self.plis: list[int] = []
        self.sources: list[RTCRtpSynchronizationSource] = []

    def getSynchronizationSources(self) -> list[RTCRtpSynchronizationSource]:
        return self.sources

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


def feed_track(codec: Any, receiver: FakeReceiver, *, media_ssrc: int | None = 1234) -> FeedTrack:
    return FeedTrack(
        kind="video",
        codec=codec,
        receiver=cast(RTCRtpReceiver, receiver),
        media_ssrc=media_ssrc,
        meter=meter(),
        keyframe_interval_s=0.5,
        outbox=Outbox(None),
    )


async def test_frames_reach_every_subscriber_with_key_frames_counted_and_the_size_tiered() -> None:
    receiver = FakeReceiver()
    track = feed_track(VP8, receiver)
    first, second = (ForwardedTrack("video", track, meter()) for _ in range(2))
    track.attach(first)
    track.attach(second)
    await asyncio.sleep(0)
    assert receiver.plis == [1234]  # asked once for both: the requests coalesce

    key, delta, *_ = encode("libvpx", 1280, 720)
    track.on_frame(VP8, JitterFrame(key, 0))
    track.on_frame(VP8, JitterFrame(delta, 3000))
    for subscriber in (first, second):
        assert [bytes(await subscriber.recv()) for _ in range(2)] == [key, delta]
    assert (track.frames, track.key_frames, track.bytes) == (2, 1, len(key) + len(delta))
    assert (track.size, track.tier) == ((1280, 720), media_pb2.RESOLUTION_TIER_720P)

    # The frames were cut into RTP payloads once, for both subscribers.
    track.on_frame(VP8, JitterFrame(delta, 6000))
    (_, first_payloads, *_), (_, second_payloads, *_) = [await s.next_frame() for s in (first, second)]
    assert first_payloads is second_payloads
    assert b"".join(vp8_depayload(payload) for payload in cast(list[bytes], first_payloads)) == delta

    # A frame that comes with the payloads the publisher sent is forwarded in them, not cut up again.
    published = [b"\x90\x80\x05" + delta[:100], b"\x80\x80\x05" + delta[100:]]
    track.on_frame(VP8, PacketizedFrame(delta, 7500, published))
    for subscriber in (first, second):
        assert (await subscriber.next_frame())[1] is published

    # The publisher's stream ends: so do the subscribers' tracks, after what they had queued.
    track.on_end()
    track.on_frame(VP8, JitterFrame(delta, 9000))
    with pytest.raises(MediaStreamError):
        await first.recv()


async def test_a_late_h264_subscriber_gets_the_parameter_sets_a_device_sent_only_once() -> None:
    track = feed_track(H264, FakeReceiver())
    key, *_ = encode("libx264", 320, 240)
    track.on_frame(H264, JitterFrame(key, 0))
    slices = [unit for unit in split_annexb(key) if nal_type(unit) == NAL_IDR]
    idr_only = b"".join(b"\x00\x00\x00\x01" + unit for unit in slices)

    late = ForwardedTrack("video", track, meter())
    track.attach(late)
    track.on_frame(H264, JitterFrame(idr_only, 3000))
    received = await late.recv()
    assert [nal_type(u) for u in split_annexb(bytes(received))] == [NAL_SPS, NAL_PPS] + [NAL_IDR] * len(
        slices
    )
    assert (received.pts, received.is_keyframe) == (3000, True)


async def test_without_an_announced_ssrc_the_pli_goes_to_the_source_that_sent_last() -> None:
    receiver = FakeReceiver()
    track = feed_track(VP8, receiver, media_ssrc=None)
    track.request_keyframe()
    await asyncio.sleep(0)
    assert receiver.plis == []  # nothing received yet: nobody to ask

    now = datetime.now(UTC)
    receiver.sources = [
        RTCRtpSynchronizationSource(timestamp=now, source=222),
        RTCRtpSynchronizationSource(timestamp=now - timedelta(seconds=1), source=111),
    ]
    track.keyframes.close()
    track = feed_track(VP8, receiver, media_ssrc=None)
    track.request_keyframe()
    await asyncio.sleep(0)
    assert receiver.plis == [222]
