"""Media through the relay between real aiortc peers on loopback, negotiated over the relay's gRPC API:
subscribers decode exactly what the publisher encoded, the relay neither decodes nor encodes, late
joiners start at a fresh key frame, and unpublishing ends every subscriber's tracks."""

from __future__ import annotations

import statistics
import time
import uuid

import pytest
from parley.relay.v1 import media_pb2, relay_pb2
from relay_clients import (
    HEIGHT,
    TONE_HZ,
    WIDTH,
    Publisher,
    Subscriber,
    publish,
    subscribe,
    wait_until,
)

pytestmark = pytest.mark.integration


def room() -> str:
    return f"room-{uuid.uuid4()}"


def assert_picture_and_tone(subscriber: Subscriber) -> None:
    video, audio = subscriber.received.video_frames, subscriber.received.audio_frames
    assert {(width, height) for _, width, height, _ in video} == {(WIDTH, HEIGHT)}
    # Luma of the decoded picture against the published gradient (0..255 scale): VP8/H.264 at this size
    # stay within a few levels; a broken or mixed-up stream is off by tens.
    assert statistics.median(error for *_, error in video) < 6
    assert abs(statistics.median(hz for _, hz in audio[10:]) - TONE_HZ) < 40


async def test_two_subscribers_decode_what_the_publisher_encoded_and_the_relay_codes_nothing(
    relay_service,
) -> None:
    stub, room_id = relay_service.stub, room()
    publisher, first, second = Publisher(), Subscriber(), Subscriber()
    try:
        published = await publish(stub, publisher, room_id=room_id, feed_id="cam")
        assert [(t.kind, t.codec) for t in published.tracks] == [
            (media_pb2.MEDIA_KIND_VIDEO, "video/VP8"),
            (media_pb2.MEDIA_KIND_AUDIO, "audio/opus"),
        ]
        for uid, subscriber in (("bob", first), ("carol", second)):
            await subscribe(stub, subscriber, room_id=room_id, feed_id="cam", uid=uid)
        await wait_until(
            lambda: all(
                len(s.received.video_frames) >= 45 and len(s.received.audio_frames) >= 75
                for s in (first, second)
            )
        )
        for subscriber in (first, second):
            assert_picture_and_tone(subscriber)
    finally:
        for peer in (first, second, publisher):
            await peer.close()

    guard = relay_service.guard
    assert guard.relay == [], f"the relay created {guard.relay}"
    # The guard does see codecs: the test clients' own.
    assert {"encoder video/VP8", "encoder audio/opus", "decoder video/VP8", "decoder audio/opus"} <= set(
        guard.clients
    )


async def test_the_publishers_media_skips_aioices_queue_once_connected(relay_service) -> None:
    """SRTP is handled where the datagram arrives (services/relay/inbound.py), not queued for the DTLS
    transport's read task: after the link is up, no media datagram reaches aioice's receive queue."""
    stub, room_id = relay_service.stub, room()
    publisher, subscriber = Publisher(), Subscriber()
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="cam")
        await subscribe(stub, subscriber, room_id=room_id, feed_id="cam", uid="bob")
        await wait_until(lambda: len(subscriber.received.video_frames) >= 5)
        pc = relay_service.relay.feed(room_id, "cam").peer.pc
        dtls = pc.getTransceivers()[0].receiver.transport
        connection = dtls.transport._connection
        queued_media = []
        queue_datagram = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            if 128 <= data[0] <= 191:
                queued_media.append(data)
            queue_datagram(data, component)

        connection.data_received = data_received
        received_before = dtls._get_stats()[dtls._stats_id].packetsReceived
        frames_before = len(subscriber.received.video_frames)
        await wait_until(lambda: len(subscriber.received.video_frames) >= frames_before + 30)
        assert queued_media == []
        # The transport still counts what it received (the flood guard reads those counters).
        assert dtls._get_stats()[dtls._stats_id].packetsReceived > received_before + 30
    finally:
        for peer in (subscriber, publisher):
            await peer.close()


async def test_a_late_subscriber_starts_at_a_key_frame_the_relay_asks_the_publisher_for(
    relay_service,
) -> None:
    stub, room_id = relay_service.stub, room()
    publisher, early, late = Publisher(), Subscriber(), Subscriber()
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="cam")
        await subscribe(stub, early, room_id=room_id, feed_id="cam", uid="early")
        # aiortc's VP8 encoder makes a key frame every 3000 frames unless asked: after 2 s, only a key
        # frame requested for the late subscriber lets it decode within seconds.
        await wait_until(lambda: len(early.received.video_frames) >= 60)

        started = time.monotonic()
        response = await subscribe(stub, late, room_id=room_id, feed_id="cam", uid="late", audio=False)
        await wait_until(lambda: bool(late.received.video_frames), timeout_s=10)
        first_frame_s = late.received.video_frames[0][0] - started
        print(f"\nlate subscriber: first decoded video frame {first_frame_s * 1000:.0f} ms after Subscribe")
        assert first_frame_s < 5.0

        # It started at the key frame: its very first decoded picture is already intact.
        _, width, height, error = late.received.video_frames[0]
        assert (width, height, error < 6) == (WIDTH, HEIGHT, True)
        feed = (await stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, feed_id="cam"))).feed
        video = next(t for t in feed.tracks if t.kind == media_pb2.MEDIA_KIND_VIDEO)
        assert video.key_frame_requests >= 2 and video.key_frames >= 2
        assert (video.width, video.height, video.tier) == (WIDTH, HEIGHT, media_pb2.RESOLUTION_TIER_360P)
        subscription = (
            await stub.GetStats(
                relay_pb2.GetStatsRequest(room_id=room_id, subscription_id=response.subscription_id)
            )
        ).subscription
        assert [t.kind for t in subscription.tracks] == [media_pb2.MEDIA_KIND_VIDEO]
        assert subscription.state == relay_pb2.STREAM_STATE_CONNECTED
        assert subscription.tracks[0].packets_sent > 0
    finally:
        for peer in (early, late, publisher):
            await peer.close()


async def test_h264_and_pcmu_are_forwarded_as_they_were_published(relay_service) -> None:
    stub, room_id = relay_service.stub, room()
    publisher = Publisher(video="video/H264", audio="audio/PCMU")
    subscriber = Subscriber()
    try:
        published = await publish(stub, publisher, room_id=room_id, feed_id="doorbell")
        assert {t.codec for t in published.tracks} == {"video/H264", "audio/PCMU"}
        response = await subscribe(stub, subscriber, room_id=room_id, feed_id="doorbell", uid="bob")
        assert {t.codec for t in response.tracks} == {"video/H264", "audio/PCMU"}
        await wait_until(
            lambda: (
                len(subscriber.received.video_frames) >= 30 and len(subscriber.received.audio_frames) >= 50
            )
        )
        assert_picture_and_tone(subscriber)
        feed = (await stub.GetStats(relay_pb2.GetStatsRequest(room_id=room_id, feed_id="doorbell"))).feed
        video = next(t for t in feed.tracks if t.kind == media_pb2.MEDIA_KIND_VIDEO)
        # The size comes from the H.264 sequence parameter set; nothing was decoded for it.
        assert (video.width, video.height) == (WIDTH, HEIGHT)
    finally:
        for peer in (subscriber, publisher):
            await peer.close()
    assert relay_service.guard.relay == []
