"""Metering: counters on the media path, ticks with stable ids off it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from parley.relay.v1 import media_pb2, metering_pb2

from services.core.events import StagedEvent
from services.core.topics import Topic
from services.relay.metering import TICK_NAMESPACE, MeteringTicker, StreamLabels, StreamMeter, resolution_tier

TIER = media_pb2.ResolutionTier


@pytest.mark.parametrize(
    ("width", "height", "tier"),
    [
        (160, 90, TIER.RESOLUTION_TIER_360P),
        (640, 360, TIER.RESOLUTION_TIER_360P),
        (360, 640, TIER.RESOLUTION_TIER_360P),
        (640, 480, TIER.RESOLUTION_TIER_540P),
        (960, 540, TIER.RESOLUTION_TIER_540P),
        (1280, 720, TIER.RESOLUTION_TIER_720P),
        (1080, 1920, TIER.RESOLUTION_TIER_1080P),
        (2560, 1440, TIER.RESOLUTION_TIER_ABOVE_1080P),
    ],
)
def test_tiers_follow_the_pixel_count_of_the_seeds_16_9_sizes(width: int, height: int, tier: int) -> None:
    assert resolution_tier(width, height) == tier


def labels(kind: media_pb2.MediaKind.ValueType = media_pb2.MEDIA_KIND_VIDEO) -> StreamLabels:
    return StreamLabels(
        biz_name="demo",
        room_id="room-1",
        uid="bob",
        feed_id="cam",
        role=metering_pb2.STREAM_ROLE_SUBSCRIPTION,
        stream_id="sub-1",
        kind=kind,
    )


def test_a_meter_ticks_its_interval_from_the_first_frame_and_ends_with_a_final_tick() -> None:
    meter = StreamMeter(labels())
    assert meter.tick() is None  # nothing forwarded yet: nothing to bill
    meter.add(1000, TIER.RESOLUTION_TIER_360P)
    meter.add(3000, TIER.RESOLUTION_TIER_720P)
    meter.add(500, TIER.RESOLUTION_TIER_540P)
    first = meter.tick()
    assert first is not None
    assert (first.tick_id, first.sequence, first.bytes, first.tier, first.final) == (
        "sub-1:video:1",
        1,
        4500,
        TIER.RESOLUTION_TIER_720P,
        False,
    )
    # The next interval starts at the size forwarded last, not the highest of the one before.
    last = meter.tick(final=True)
    assert last is not None
    assert (last.sequence, last.bytes, last.tier, last.final) == (2, 0, TIER.RESOLUTION_TIER_540P, True)
    assert last.start_time == first.end_time
    assert meter.tick() is None


def test_audio_is_always_the_audio_tier() -> None:
    meter = StreamMeter(labels(media_pb2.MEDIA_KIND_AUDIO))
    meter.add(160, TIER.RESOLUTION_TIER_AUDIO)
    tick = meter.tick()
    assert tick is not None and (tick.tier, tick.tick_id) == (TIER.RESOLUTION_TIER_AUDIO, "sub-1:audio:1")


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[StagedEvent] = []
        self.failures = 0

    async def publish_serialized(self, event: StagedEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.published.append(event)


async def test_final_ticks_go_out_at_once_with_ids_derived_from_the_tick_id() -> None:
    events = FakeEvents()
    ticker = MeteringTicker(events, interval_s=60)  # type: ignore[arg-type]
    ticker.start()
    meter = StreamMeter(labels())
    ticker.register(meter)
    meter.add(1200, TIER.RESOLUTION_TIER_360P)
    ticker.finish(meter)
    async with asyncio.timeout(2):
        while not events.published:
            await asyncio.sleep(0.01)
    await ticker.stop()
    [event] = events.published
    tick = metering_pb2.MeteringTick.FromString(event.payload)
    assert (event.topic, event.key, event.event_type) == (
        Topic.METERING,
        "room-1",
        "parley.relay.v1.MeteringTick",
    )
    assert event.event_id == str(uuid.uuid5(TICK_NAMESPACE, "sub-1:video:1")) and tick.final


async def test_periodic_ticks_survive_an_unreachable_broker_and_keep_their_ids() -> None:
    events = FakeEvents()
    events.failures = 2
    ticker = MeteringTicker(events, interval_s=0.05)  # type: ignore[arg-type]
    meter = StreamMeter(labels())
    ticker.register(meter)
    meter.add(100, TIER.RESOLUTION_TIER_360P)
    ticker.start()
    async with asyncio.timeout(2):
        while len(events.published) < 3:
            await asyncio.sleep(0.01)
    await ticker.stop()
    ticks = [metering_pb2.MeteringTick.FromString(e.payload) for e in events.published]
    # In order, none lost, none twice, whatever the failures.
    assert [t.sequence for t in ticks] == list(range(1, len(ticks) + 1))
    assert ticks[0].bytes == 100


async def test_stop_returns_when_a_final_tick_wakes_the_ticker_at_the_same_moment() -> None:
    # The relay's shutdown finishes every meter and stops the ticker in one go; a cancellation that
    # arrives as the ticker wakes must not be lost (asyncio.wait_for loses it on Python 3.11).
    events = FakeEvents()
    ticker = MeteringTicker(events, interval_s=60)  # type: ignore[arg-type]
    ticker.start()
    await asyncio.sleep(0.01)
    meter = StreamMeter(labels())
    ticker.register(meter)
    meter.add(10, TIER.RESOLUTION_TIER_360P)
    ticker.finish(meter)
    async with asyncio.timeout(2):
        await ticker.stop()
    assert len(events.published) == 1
