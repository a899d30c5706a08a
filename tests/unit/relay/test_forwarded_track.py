"""A subscriber's track: video starts at a key frame, a subscriber that falls behind loses its backlog,
never the relay's memory."""

from __future__ import annotations

import pytest
from aiortc.mediastreams import MediaStreamError
from fake_source import FakeSource, meter, packet
from parley.relay.v1 import media_pb2

from services.relay.forwarded_track import QUEUE_FRAMES, ForwardedTrack


async def test_video_waits_for_a_key_frame_and_asks_for_nothing_while_it_keeps_up() -> None:
    source = FakeSource()
    track = ForwardedTrack("video", source, meter())
    track.push(packet(b"delta", pts=1))
    track.push(packet(b"key", pts=2, keyframe=True))
    track.push(packet(b"delta2", pts=3))
    assert [bytes(await track.recv()) for _ in range(2)] == [b"key", b"delta2"]
    assert (track.frames_dropped, track.frames_forwarded, track.bytes_forwarded) == (1, 2, 9)
    assert source.keyframe_requests == 0


async def test_video_that_falls_a_queue_behind_drops_it_and_restarts_at_the_next_key_frame() -> None:
    source = FakeSource()
    track = ForwardedTrack("video", source, meter())
    track.push(packet(b"key", keyframe=True))
    for index in range(QUEUE_FRAMES["video"]):
        track.push(packet(b"delta", pts=index + 1))
    assert source.keyframe_requests == 1
    assert track.frames_dropped == QUEUE_FRAMES["video"] + 1  # the backlog, and the delta that found it full
    track.push(packet(b"key2", keyframe=True))
    assert bytes(await track.recv()) == b"key2"


async def test_audio_that_falls_behind_drops_its_oldest_frame() -> None:
    track = ForwardedTrack("audio", FakeSource(), meter(media_pb2.MEDIA_KIND_AUDIO))
    for index in range(QUEUE_FRAMES["audio"] + 1):
        track.push(packet(bytes([index]), pts=index, keyframe=True, clock_rate=48000))
    assert bytes(await track.recv()) == bytes([1])
    assert track.frames_dropped == 1


async def test_finish_ends_the_track_after_what_is_queued() -> None:
    track = ForwardedTrack("video", FakeSource(), meter())
    track.push(packet(b"key", keyframe=True))
    track.finish()
    track.push(packet(b"late", keyframe=True))
    assert bytes(await track.recv()) == b"key"
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert track.readyState == "ended"


async def test_forwarded_frames_are_metered_with_the_sources_tier() -> None:
    track = ForwardedTrack("video", FakeSource(), meter())
    track.push(packet(b"x" * 1000, keyframe=True))
    await track.recv()
    tick = track.meter.tick()
    assert tick is not None and (tick.bytes, tick.tier) == (1000, media_pb2.RESOLUTION_TIER_360P)
