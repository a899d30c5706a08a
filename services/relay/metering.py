"""Usage of forwarded streams, counted on the media path and published as ticks off it.

The media path only adds to two integers of a `StreamMeter` per frame. A `MeteringTicker` task turns
every meter into a `MeteringTick` each interval, and a stream that ends leaves its final tick in an
outbox the task publishes at once. A broker that is slow or down delays ticks, never media: failed
ticks stay in the outbox (bounded) and go out with the next round, with the same ids.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from parley.relay.v1 import media_pb2, metering_pb2

from services.core.events import EventPublisher, StagedEvent
from services.core.timestamps import timestamp
from services.core.topics import Topic

log = structlog.get_logger(__name__)

# ce_id = uuid5(namespace, tick_id): stable across retries, unique across ticks.
TICK_NAMESPACE = uuid.UUID("1d4e5b0c-7f0a-5d43-9c53-7a1c2b5e8f60")
# Final ticks kept while the broker is unreachable: hours of ends at any plausible churn.
OUTBOX_LIMIT = 100_000

_TIERS = (
    (640 * 360, media_pb2.RESOLUTION_TIER_360P),
    (960 * 540, media_pb2.RESOLUTION_TIER_540P),
    (1280 * 720, media_pb2.RESOLUTION_TIER_720P),
    (1920 * 1080, media_pb2.RESOLUTION_TIER_1080P),
)


def resolution_tier(width: int, height: int) -> media_pb2.ResolutionTier.ValueType:
    pixels = width * height
    for limit, tier in _TIERS:
        if pixels <= limit:
            return tier
    return media_pb2.RESOLUTION_TIER_ABOVE_1080P


@dataclass(frozen=True)
class StreamLabels:
    biz_name: str
    room_id: str
    uid: str
    feed_id: str
    role: metering_pb2.StreamRole.ValueType
    stream_id: str
    kind: media_pb2.MediaKind.ValueType

    @property
    def kind_name(self) -> str:
        return "audio" if self.kind == media_pb2.MEDIA_KIND_AUDIO else "video"


class StreamMeter:
    """Bytes and tier of one track of one publication or subscription since its last tick."""

    def __init__(self, labels: StreamLabels) -> None:
        self.labels = labels
        self._bytes = 0
        self._tier: media_pb2.ResolutionTier.ValueType = (
            media_pb2.RESOLUTION_TIER_AUDIO
            if labels.kind == media_pb2.MEDIA_KIND_AUDIO
            else media_pb2.RESOLUTION_TIER_UNSPECIFIED
        )
        self._last_tier = self._tier
        # Monotonic and wall-clock start of the current interval; None until the first frame.
        self._since: float | None = None
        self._since_wall: datetime | None = None
        self._sequence = 0
        self._ended = False

    def add(self, size: int, tier: media_pb2.ResolutionTier.ValueType) -> None:
        """One forwarded frame; called on the media path."""
        if self._since is None:
            self._since = time.monotonic()
            self._since_wall = datetime.now(UTC)
        self._bytes += size
        self._last_tier = tier
        # Enum values grow with the picture, so the interval keeps its highest tier.
        if tier > self._tier:
            self._tier = tier

    def tick(self, *, final: bool = False) -> metering_pb2.MeteringTick | None:
        """The usage since the last tick, and start a new interval; None before the first frame."""
        if self._since is None or self._since_wall is None or self._ended:
            return None
        now, now_wall = time.monotonic(), datetime.now(UTC)
        self._sequence += 1
        labels = self.labels
        start, end = timestamp(self._since_wall), timestamp(now_wall)
        tick = metering_pb2.MeteringTick(
            tick_id=f"{labels.stream_id}:{labels.kind_name}:{self._sequence}",
            biz_name=labels.biz_name,
            room_id=labels.room_id,
            uid=labels.uid,
            feed_id=labels.feed_id,
            role=labels.role,
            stream_id=labels.stream_id,
            kind=labels.kind,
            tier=self._tier,
            duration_ms=round((now - self._since) * 1000),
            bytes=self._bytes,
            sequence=self._sequence,
            final=final,
            start_time=start,
            end_time=end,
        )
        self._since, self._since_wall, self._bytes = now, now_wall, 0
        # The next interval starts at the size now forwarded, not at the highest of this one.
        self._tier = self._last_tier
        self._ended = final
        return tick


class MeteringTicker:
    """Publishes the ticks of every registered meter each interval and final ticks as streams end."""

    def __init__(
        self,
        events: EventPublisher,
        *,
        interval_s: float,
        on_tick: Callable[[metering_pb2.MeteringTick], None] | None = None,
    ) -> None:
        self._events = events
        self._interval_s = interval_s
        # Sees every tick once, as it is made (the relay's byte counters, services/relay/relay_metrics.py).
        self._on_tick = on_tick
        self._meters: set[StreamMeter] = set()
        self._outbox: deque[metering_pb2.MeteringTick] = deque(maxlen=OUTBOX_LIMIT)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def register(self, meter: StreamMeter) -> None:
        self._meters.add(meter)

    def finish(self, meter: StreamMeter) -> None:
        """The stream ended: its last tick goes out now, off the caller's path."""
        self._meters.discard(meter)
        tick = meter.tick(final=True)
        if tick is not None:
            self._enqueue(tick)
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metering-ticker")

    async def stop(self) -> None:
        """Stop the task, then publish what is left (callers finish their meters first)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._publish_outbox()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time() + self._interval_s
        while True:
            # Not asyncio.wait_for: on Python 3.11 it can lose a cancellation that arrives as its timeout
            # expires, and stop() would wait for this task forever.
            try:
                async with asyncio.timeout_at(next_round):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if loop.time() >= next_round:
                next_round += self._interval_s
                for meter in list(self._meters):
                    tick = meter.tick()
                    if tick is not None:
                        self._enqueue(tick)
            await self._publish_outbox()

    def _enqueue(self, tick: metering_pb2.MeteringTick) -> None:
        if self._on_tick is not None:
            self._on_tick(tick)
        if len(self._outbox) == self._outbox.maxlen:
            log.error("metering_outbox_full", dropped=self._outbox[0].tick_id)
        self._outbox.append(tick)

    async def _publish_outbox(self) -> None:
        while self._outbox:
            tick = self._outbox[0]
            try:
                await self._events.publish_serialized(
                    StagedEvent(
                        event_id=str(uuid.uuid5(TICK_NAMESPACE, tick.tick_id)),
                        topic=Topic.METERING,
                        key=tick.room_id,
                        event_type=tick.DESCRIPTOR.full_name,
                        payload=tick.SerializeToString(),
                        time=tick.end_time.ToDatetime(tzinfo=UTC),
                    )
                )
            except Exception as error:
                # Kept for the next round; the media path never sees it.
                log.warning("metering_publish_failed", error=repr(error), pending=len(self._outbox))
                return
            self._outbox.popleft()
