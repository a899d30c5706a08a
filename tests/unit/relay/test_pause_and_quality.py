"""Stream control inside the relay: a paused feed or subscription forwards and meters nothing and resumes
video at a key frame; the weak-network judge decides from running totals and reports at most once per
interval."""

from __future__ import annotations

import asyncio

from aiortc.jitterbuffer import JitterFrame
from encoded_video import encode
from fake_source import FakeSource, meter, packet
from parley.relay.v1 import media_pb2
from test_feed_track import VP8, FakeReceiver, feed_track

from services.relay.forwarded_track import ForwardedTrack
from services.relay.quality import MIN_PACKETS, StreamJudge, WeakRules
from services.relay.stats import StreamCounters

RULES = WeakRules(window_s=5, loss_fraction=0.1, round_trip_time_s=1.0, report_interval_s=10)


def counters(expected: int, lost: int, bytes_: int = 0, rtt: float = 0.0) -> StreamCounters:
    return StreamCounters(expected=expected, lost=lost, bytes=bytes_, round_trip_time_s=rtt)


def test_a_paused_subscription_forwards_nothing_and_resumes_video_at_a_key_frame() -> None:
    source = FakeSource()
    track = ForwardedTrack("video", source, meter())
    track.push(packet(b"key", keyframe=True))
    track.set_paused(True)
    assert track.frames_dropped == 1  # what was queued goes
    track.push(packet(b"key2", keyframe=True))
    track.push(packet(b"delta"))
    assert track.frames_forwarded == 0 and track.meter.tick() is None

    track.set_paused(False)
    assert source.keyframe_requests == 1
    track.push(packet(b"delta2"))
    track.push(packet(b"key3", keyframe=True))
    assert track._queue.qsize() == 1  # the delta after the gap is dropped, the key frame queued


def test_resumed_audio_forwards_its_next_frame() -> None:
    source = FakeSource()
    track = ForwardedTrack("audio", source, meter(media_pb2.MEDIA_KIND_AUDIO))
    track.set_paused(True)
    track.push(packet(b"a1", keyframe=True, clock_rate=48000))
    track.set_paused(False)
    track.push(packet(b"a2", keyframe=True, clock_rate=48000))
    assert track._queue.qsize() == 1


async def test_a_paused_feed_forwards_and_meters_nothing_and_resumes_at_a_key_frame() -> None:
    receiver = FakeReceiver()
    track = feed_track(VP8, receiver)
    subscriber = ForwardedTrack("video", track, meter())
    track.attach(subscriber)
    key, delta, *_ = encode("libvpx", 320, 240)
    track.on_frame(VP8, JitterFrame(key, 0))
    await asyncio.sleep(0)
    requests = len(receiver.plis)
    assert bytes(await subscriber.recv()) == key
    metered = track.meter.tick()
    assert metered is not None and metered.bytes == len(key)

    track.set_paused(True)
    track.on_frame(VP8, JitterFrame(delta, 3000))
    track.on_frame(VP8, JitterFrame(key, 6000))
    paused_tick = track.meter.tick()
    assert paused_tick is not None and paused_tick.bytes == 0
    assert subscriber._queue.empty() and track.frames == 1

    track.set_paused(False)
    await asyncio.sleep(0.6)  # past the key frame request interval
    assert len(receiver.plis) > requests
    track.on_frame(VP8, JitterFrame(delta, 9000))
    track.on_frame(VP8, JitterFrame(key, 12000))
    assert bytes(await subscriber.recv()) == key
    track.on_end()


def test_the_judge_reports_loss_over_a_window_once_per_interval() -> None:
    judge = StreamJudge(RULES)
    assert judge.judge(0, counters(0, 0)) is None  # the first sample only starts the window
    assert judge.judge(5, counters(1000, 50, 500_000)) is None  # 5 % lost
    verdict = judge.judge(10, counters(2000, 250, 1_000_000))  # 20 % of the window lost
    assert verdict is not None
    assert (round(verdict.loss, 2), verdict.bps) == (0.2, 800_000)
    # Still weak, but told 5 s ago: not again before the interval.
    assert judge.judge(15, counters(3000, 450)) is None
    assert judge.judge(20, counters(4000, 650)) is not None


def test_the_judge_reports_a_long_round_trip_and_ignores_windows_with_too_few_packets() -> None:
    judge = StreamJudge(RULES)
    judge.judge(0, counters(0, 0))
    assert judge.judge(5, counters(MIN_PACKETS - 1, MIN_PACKETS - 1)) is None
    slow = judge.judge(10, counters(MIN_PACKETS + 500, MIN_PACKETS - 1, rtt=1.5))
    assert slow is not None and slow.loss == 0 and slow.round_trip_time_s == 1.5
