"""The relay bench's load generator (bench/relay/loadgen.py) against itself, no SFU between: a clip
publisher's offer answered by a subscriber. The header recorder must measure what aiortc's receive path
measures (no loss, every frame matched by timestamp) and still send the RTCP an SFU gets from a
subscriber: receiver reports that carry its statistics, and REMBs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket

from bench.relay.loadgen import (
    FPS,
    MAX_CATCH_UP_S,
    TICKS_PER_FRAME,
    ClipTrack,
    Publisher,
    Subscriber,
    analyse,
    encode_clip,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip() -> Any:
    return encode_clip(seconds=1.0, width=320, height=240, bitrate=600_000)


@pytest.mark.parametrize("recorder", ["headers", "aiortc"])
async def test_subscriber_measures_and_reports(clip: Any, recorder: str) -> None:
    publisher = Publisher(clip)
    subscriber = Subscriber(recorder)
    rtcp: list[tuple[float, Any]] = []
    sender = publisher.pc.getSenders()[0]
    handle = sender._handle_rtcp_packet

    async def seen(packet: Any) -> None:
        rtcp.append((time.perf_counter(), packet))
        await handle(packet)

    sender._handle_rtcp_packet = seen  # type: ignore[method-assign]
    try:
        await publisher.accept(await subscriber.answer(await publisher.offer()))
        # The first key frame comes with the clip's first frame; a window of 45 frames after 10 arrived.
        assert await wait_until(lambda: len(subscriber.arrivals.packets) > 10, 20)
        t0 = time.perf_counter()
        sent = publisher.track.sent
        assert await wait_until(lambda: sum(1 for at, _n in sent.values() if at >= t0) >= 45, 10)
        t1 = time.perf_counter()
        # Frames sent before t1 - 0.2 s are judged: wait for packets that arrived after t1.
        assert await wait_until(lambda: subscriber.arrivals.packets[-1][0] > t1, 5)
        result = analyse([(publisher, [subscriber])], t0, t1)
        assert result["loss_percent"] == 0
        assert result["frames_complete_percent"] == 100
        assert result["subscribers_unaligned"] == 0
        if recorder == "headers":
            assert subscriber.header_recorder is not None
            assert subscriber.header_recorder.packets > 0.9 * len(subscriber.arrivals.packets)

        last_sequence = subscriber.arrivals.packets[-1][3]

        def reported() -> bool:
            """A REMB sent after t1 and a receiver report that counts the packets received by t1: both
            from what the recorder fed (aiortc's path saw only the first packets, in headers mode)."""
            later = [p for at, p in rtcp if at > t1]
            reports = [r for p in later if isinstance(p, RtcpRrPacket) for r in p.reports]
            remb = [p for p in later if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP]
            return bool(remb) and any(
                r.ssrc == sender._ssrc and 0 <= (r.highest_sequence - last_sequence) % 2**16 < 2**15
                for r in reports
            )

        # Receiver reports every 0.5-1.5 s, REMB about once a second.
        assert await wait_until(reported, 10)
        stats = [s for s in (await sender.getStats()).values() if s.type == "remote-inbound-rtp"]
        assert stats and stats[0].packetsLost == 0
    finally:
        await subscriber.close()
        await publisher.close()


async def test_a_publisher_far_behind_its_schedule_skips_the_frames_it_missed(clip: Any) -> None:
    """A generator kept off its core for 40 s must not then send 40 s of clip at once: the relay's flood
    guard closes a publication at over 20 Mbit/s (5009), which ended every subscription of the feed in
    the 4x16 bench window that forwarded nothing."""
    track = ClipTrack(clip)
    await track.recv()
    assert track._start is not None
    track._start -= 40  # as if the loop had not run for 40 s
    frames = [await track.recv() for _ in range(5)]
    # The first frame sent is the one due now; the ones after it follow the schedule again.
    assert frames[0].pts >= 39 * FPS * TICKS_PER_FRAME
    assert [f.pts - frames[0].pts for f in frames] == [n * TICKS_PER_FRAME for n in range(5)]
    [(_at, skipped)] = track.skipped
    assert skipped >= 39 * FPS
    assert len(track.sent) == 6


async def test_a_publisher_slightly_behind_sends_every_frame(clip: Any) -> None:
    track = ClipTrack(clip)
    await track.recv()
    assert track._start is not None
    track._start -= MAX_CATCH_UP_S / 2
    frames = [await track.recv() for _ in range(5)]
    assert [f.pts for f in frames] == [n * TICKS_PER_FRAME for n in range(1, 6)]
    assert track.skipped == []
