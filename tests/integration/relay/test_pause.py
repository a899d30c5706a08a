"""Pausing over the relay's gRPC API: a paused feed or subscription forwards nothing, its metering ticks
count no bytes while it is paused, GetStats says so, and what cannot be paused is refused with a code."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import grpc
import pytest
from parley.relay.v1 import media_pb2, relay_pb2, relay_pb2_grpc
from relay_clients import Publisher, Subscriber, publish, subscribe, wait_until

from services.core.errors import from_rpc_error

pytestmark = pytest.mark.integration

VIDEO, AUDIO = media_pb2.MEDIA_KIND_VIDEO, media_pb2.MEDIA_KIND_AUDIO
# Frames already on their way when a pause begins: a tick starting this long after it holds none of them.
IN_FLIGHT_S = 0.3


@dataclass(frozen=True)
class Span:
    """When a pause began and ended, on the wall clock (ticks) and the monotonic one (frame arrivals)."""

    wall: tuple[float, float]
    monotonic: tuple[float, float]


async def refusal(call: object) -> tuple[str, int]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    error = from_rpc_error(refused.value)
    return error.kind.reason, error.code


async def set_paused(
    stub: relay_pb2_grpc.RelayServiceStub,
    room_id: str,
    kind: int,
    paused: bool,
    *,
    feed_id: str = "",
    subscription_id: str = "",
) -> None:
    """Pause or resume `kind` of the feed `feed_id`, or else of the subscription `subscription_id`."""
    if feed_id:
        request = relay_pb2.SetFeedPausedRequest(room_id=room_id, feed_id=feed_id, kind=kind, paused=paused)
        await stub.SetFeedPaused(request)
    else:
        await stub.SetSubscriptionPaused(
            relay_pb2.SetSubscriptionPausedRequest(
                room_id=room_id, subscription_id=subscription_id, kind=kind, paused=paused
            )
        )


async def test_paused_streams_forward_and_meter_nothing_until_resumed(relay_service, metering) -> None:
    stub, room_id = relay_service.stub, f"room-{uuid.uuid4()}"
    publisher, watcher = Publisher(), Subscriber()
    try:
        published = await publish(stub, publisher, room_id=room_id, feed_id="cam")
        watching = await subscribe(stub, watcher, room_id=room_id, feed_id="cam", uid="bob")
        frames = watcher.received.video_frames
        await wait_until(lambda: len(frames) > 10)

        async def paused_for(seconds: float, kind: int, *, feed: bool) -> Span:
            """Pause `kind` (of the feed, or of the subscription) for `seconds`."""
            target = {"feed_id": "cam"} if feed else {"subscription_id": watching.subscription_id}
            await set_paused(stub, room_id, kind, True, **target)
            began, began_monotonic = time.time(), time.monotonic()
            await asyncio.sleep(seconds)
            stats = await stub.GetStats(
                relay_pb2.GetStatsRequest(room_id=room_id, subscription_id=watching.subscription_id)
            )
            feed_stats = await stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, feed_id="cam"))
            paused = {
                t.kind: t.paused for t in (feed_stats.feed.tracks if feed else stats.subscription.tracks)
            }
            assert paused == {kind: True, (AUDIO if kind == VIDEO else VIDEO): False}
            ended, ended_monotonic = time.time(), time.monotonic()
            await set_paused(stub, room_id, kind, False, **target)
            return Span((began, ended), (began_monotonic, ended_monotonic))

        feed_pause = await paused_for(3.0, VIDEO, feed=True)
        resumed_at = len(frames)
        await wait_until(lambda: len(frames) > resumed_at + 10)
        subscription_pause = await paused_for(3.0, VIDEO, feed=False)
        resumed_at = len(frames)
        await wait_until(lambda: len(frames) > resumed_at + 10)

        # Decoded video frames arrived before and after each pause, none inside it.
        for span in (feed_pause, subscription_pause):
            began, ended = span.monotonic
            assert [arrival for arrival, *_ in frames if began + IN_FLIGHT_S < arrival < ended] == []

        # Ticks (1 s here) wholly inside a pause count no bytes: the publication's and the subscription's
        # for a paused feed, the subscription's alone for a paused subscription.
        await stub.Unpublish(relay_pb2.UnpublishRequest(room_id=room_id, feed_id="cam"))
        await wait_until(lambda: sum(t.final for t, _ in metering.of(room_id)) == 4, timeout_s=30)
        video = [t for t, _ in metering.of(room_id) if t.kind == VIDEO]

        def inside(stream_id: str, span: Span) -> list[int]:
            began, ended = span.wall
            return [
                t.bytes
                for t in video
                if t.stream_id == stream_id
                and t.start_time.ToNanoseconds() / 1e9 > began + IN_FLIGHT_S
                and t.end_time.ToNanoseconds() / 1e9 < ended
            ]

        for stream_id, span in (
            (published.publication_id, feed_pause),
            (watching.subscription_id, feed_pause),
            (watching.subscription_id, subscription_pause),
        ):
            during = inside(stream_id, span)
            assert during and not any(during), (stream_id, during)
        # The feed itself went on while only the subscription was paused.
        publishing = inside(published.publication_id, subscription_pause)
        assert publishing and all(publishing)
    finally:
        await watcher.close()
        await publisher.close()


async def test_what_cannot_be_paused_is_refused_with_a_code(relay_service) -> None:
    stub, room_id = relay_service.stub, f"room-{uuid.uuid4()}"
    publisher, listener = Publisher(video=None), Subscriber(video=False)
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="mic")
        listening = await subscribe(stub, listener, room_id=room_id, feed_id="mic", uid="bob", video=False)
        feed = relay_pb2.SetFeedPausedRequest(room_id=room_id, feed_id="mic", kind=VIDEO, paused=True)
        assert await refusal(stub.SetFeedPaused(feed)) == ("TRACK_NOT_FOUND", 9805004)
        missing = relay_pb2.SetFeedPausedRequest(room_id=room_id, feed_id="none", kind=AUDIO, paused=True)
        assert await refusal(stub.SetFeedPaused(missing)) == ("FEED_NOT_FOUND", 5003)
        no_kind = relay_pb2.SetFeedPausedRequest(room_id=room_id, feed_id="mic", paused=True)
        assert await refusal(stub.SetFeedPaused(no_kind)) == ("INVALID_ARGUMENT", -90001)
        subscription = relay_pb2.SetSubscriptionPausedRequest(
            room_id=room_id, subscription_id=listening.subscription_id, kind=VIDEO, paused=True
        )
        assert await refusal(stub.SetSubscriptionPaused(subscription)) == ("TRACK_NOT_FOUND", 9805004)
        subscription.subscription_id = "none"
        assert await refusal(stub.SetSubscriptionPaused(subscription)) == ("SUBSCRIPTION_NOT_FOUND", 9805003)
    finally:
        await listener.close()
        await publisher.close()
