"""Unpublishing a feed ends its subscribers' tracks, and every publication and subscription leaves
metering ticks on parley.metering.v1 that add up to what the relay forwarded."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict

import grpc
import pytest
from parley.relay.v1 import media_pb2, metering_pb2, relay_pb2
from relay_clients import BIZ_NAME, Publisher, Subscriber, publish, subscribe, wait_until

from services.core.errors import from_rpc_error
from services.relay.metering import TICK_NAMESPACE

pytestmark = pytest.mark.integration


async def test_unpublish_ends_subscribers_tracks_and_each_stream_is_metered_to_its_end(
    relay_service, metering
) -> None:
    stub, relay, room_id = relay_service.stub, relay_service.relay, f"room-{uuid.uuid4()}"
    publisher, watcher, listener = Publisher(), Subscriber(), Subscriber(video=False)
    try:
        published = await publish(stub, publisher, room_id=room_id, feed_id="cam", uid="alice")
        watching = await subscribe(stub, watcher, room_id=room_id, feed_id="cam", uid="bob")
        listening = await subscribe(stub, listener, room_id=room_id, feed_id="cam", uid="carol", video=False)
        assert [t.kind for t in listening.tracks] == [media_pb2.MEDIA_KIND_AUDIO]
        # Long enough for two periodic ticks per stream (the tests' interval is 1 s).
        await wait_until(
            lambda: len(watcher.received.video_frames) >= 75 and len(listener.received.audio_frames) >= 125
        )

        feed = relay.feed(room_id, "cam")
        forwarded = {
            (s.subscription_id, m.source.kind): m.track
            for s in relay.subscriptions.values()
            if s.feed is feed
            for m in s.media
        }
        stats = (
            await stub.GetStats(
                relay_pb2.GetStatsRequest(room_id=room_id, subscription_id=watching.subscription_id)
            )
        ).subscription
        packets_forwarded = sum(t.packets_sent for t in stats.tracks)
        assert packets_forwarded > 100 and all(t.frames_forwarded > 0 for t in stats.tracks)

        unpublished = await stub.Unpublish(relay_pb2.UnpublishRequest(room_id=room_id, feed_id="cam"))
        assert sorted(unpublished.closed_subscription_ids) == sorted(
            [watching.subscription_id, listening.subscription_id]
        )
        await wait_until(
            lambda: watcher.received.ended == {"audio", "video"} and listener.received.ended == {"audio"}
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, feed_id="cam"))
        assert (from_rpc_error(refused.value).kind.reason, from_rpc_error(refused.value).code) == (
            "FEED_NOT_FOUND",
            5003,
        )
        # Stopping what is gone is not an error.
        again = await stub.Unpublish(relay_pb2.UnpublishRequest(room_id=room_id, feed_id="cam"))
        assert list(again.closed_subscription_ids) == []
    finally:
        for peer in (watcher, listener, publisher):
            await peer.close()

    streams = {
        (published.publication_id, "audio"): feed.tracks["audio"].bytes,
        (published.publication_id, "video"): feed.tracks["video"].bytes,
        **{key: track.bytes_forwarded for key, track in forwarded.items()},
    }

    def finals() -> set[tuple[str, str]]:
        return {
            (tick.stream_id, "audio" if tick.kind == media_pb2.MEDIA_KIND_AUDIO else "video")
            for tick, _ in metering.of(room_id)
            if tick.final
        }

    await wait_until(lambda: finals() == set(streams), timeout_s=30)
    ticks: dict[tuple[str, str], list[metering_pb2.MeteringTick]] = defaultdict(list)
    for tick, envelope in metering.of(room_id):
        kind = "audio" if tick.kind == media_pb2.MEDIA_KIND_AUDIO else "video"
        ticks[(tick.stream_id, kind)].append(tick)
        assert tick.tick_id == f"{tick.stream_id}:{kind}:{tick.sequence}"
        assert envelope.id == str(uuid.uuid5(TICK_NAMESPACE, tick.tick_id))
        assert envelope.key == room_id and tick.biz_name == BIZ_NAME and tick.feed_id == "cam"
        expected_tier = media_pb2.RESOLUTION_TIER_AUDIO if kind == "audio" else media_pb2.RESOLUTION_TIER_360P
        assert tick.tier == expected_tier
        assert 0 < tick.duration_ms < 10_000
        assert tick.end_time.ToNanoseconds() >= tick.start_time.ToNanoseconds()
    for key, stream_ticks in ticks.items():
        stream_ticks.sort(key=lambda t: t.sequence)
        assert [t.sequence for t in stream_ticks] == list(range(1, len(stream_ticks) + 1)), key
        assert (
            len(stream_ticks) >= 3 and stream_ticks[-1].final and not any(t.final for t in stream_ticks[:-1])
        )
        # Intervals follow each other without gaps or overlaps.
        for before, after in itertools.pairwise(stream_ticks):
            assert before.end_time == after.start_time
        assert sum(t.bytes for t in stream_ticks) == streams[key] > 0, key
    roles = {key: ticks[key][0].role for key in streams}
    assert roles[(published.publication_id, "video")] == metering_pb2.STREAM_ROLE_PUBLICATION
    assert roles[(watching.subscription_id, "video")] == metering_pb2.STREAM_ROLE_SUBSCRIPTION
    assert {ticks[key][0].uid for key in streams} == {"alice", "bob", "carol"}
    print(
        f"\nwatcher: {packets_forwarded} RTP packets forwarded; ticks per stream: "
        f"{ {f'{k[0][:8]}:{k[1]}': len(v) for k, v in ticks.items()} }"
    )
