"""The relay bench's load generator (bench/relay/loadgen.py) against itself, no SFU between: a clip
publisher's offer answered by a subscriber. The header recorder must measure what aiortc's receive path
measures (no loss, every frame matched by timestamp) and still send the RTCP an SFU gets from a
subscriber: receiver reports that carry its statistics, and REMBs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket

from bench.relay.loadgen import Publisher, Subscriber, analyse, encode_clip, wait_until

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
