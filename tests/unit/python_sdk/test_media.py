"""parley_sdk's audio queue (FeedAudio / ClearAudio / AudioQueueSize) and frame formats."""

from __future__ import annotations

import pytest
from parley_sdk import AudioFormat, VideoData
from parley_sdk.media import PcmQueueTrack
from parley_sdk.sources import tone

MONO_16K = AudioFormat()
STEREO_48K = AudioFormat(48000, 2)


def test_only_the_seeds_pcm_formats_are_accepted() -> None:
    assert MONO_16K.bytes_per_period == 320  # 160 samples of 2 bytes: 10 ms
    assert STEREO_48K.bytes_per_period == 1920
    with pytest.raises(ValueError):
        AudioFormat(44100, 2)


async def test_clear_audio_empties_the_queue_at_once() -> None:
    track = PcmQueueTrack(MONO_16K)
    track.feed(tone(MONO_16K, 440, 2.0))
    assert track.queued_bytes == 64000
    first = await track.recv()
    assert first.samples == 160 and first.sample_rate == 16000
    assert track.queued_bytes == 64000 - 320
    track.clear()
    assert track.queued_bytes == 0
    # What follows the clear is silence, not the rest of the sentence.
    after = await track.recv()
    assert not any(bytes(after.planes[0])[: after.samples * 2])


async def test_a_short_feed_is_padded_with_silence_and_sent_in_10_ms_periods() -> None:
    track = PcmQueueTrack(STEREO_48K)
    track.feed(tone(STEREO_48K, 440, 0.015))  # one and a half periods
    first, second, third = [await track.recv() for _ in range(3)]
    assert [frame.samples for frame in (first, second, third)] == [480, 480, 480]
    assert [frame.pts for frame in (first, second, third)] == [0, 480, 960]
    assert any(bytes(second.planes[0])[:960]) and not any(bytes(second.planes[0])[960:1920])
    assert not any(bytes(third.planes[0])[:1920])
    assert track.queued_bytes == 0


def test_pcm_with_half_a_sample_is_refused() -> None:
    with pytest.raises(ValueError):
        PcmQueueTrack(STEREO_48K).feed(b"\x00\x01\x02")


def test_i420_planes_round_trip_without_stride_padding() -> None:
    frame = bytes(range(192))  # 16x8 luma and two 8x4 chroma planes
    video = VideoData.from_i420(frame, 16, 8, timestamp=40)
    assert (len(video.data_y), len(video.data_u), len(video.data_v)) == (128, 32, 32)
    assert video.i420() == frame
    luma_with_padding = b"".join(frame[row * 16 : row * 16 + 16] + b"\xff" * 4 for row in range(8))
    padded = VideoData(
        16, 8, data_y=luma_with_padding, stride_y=20,
        data_u=video.data_u, stride_u=8, data_v=video.data_v, stride_v=8,
    )  # fmt: skip
    assert padded.i420() == frame
    with pytest.raises(ValueError):
        VideoData.from_i420(frame[:-1], 16, 8)
