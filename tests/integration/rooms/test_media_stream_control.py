"""Stream control over protocol v1 with real aiortc peers that connect to the real relay: streams the relay
closes on its own reach their clients as on_media_close with the relay's code (5004, 5007, 5011), a lossy
publisher gets on_network_weak, and mutes stop and resume forwarding.

The relay here has its default timings (docs/relay.md): 15 s to connect, streams judged every 5 s; waits
are bounded generously for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from test_media_ws import room_of_two

from services.core.media.bitstream import inspect_vp8
from services.core.media.gathering import gathering_on

# The relay's connect timeout (15 s) and two quality windows (5 s each), with room to spare.
SLOW_WAIT_S = 40
# Where aiortc's receiver queues assembled frames for its decoder (aiortc 1.16; see frame_tap.py).
DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
# A jump of the video's RTP timestamp (90 kHz) longer than this is a pause: half a second.
PAUSE_GAP_TICKS = 45_000


class MediaPeer:
    """An aiortc client that connects: it publishes a test picture and tone, or receives and counts frames."""

    def __init__(self, *, send: bool) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = {"audio": 0, "video": 0}
        # Each video frame handed to this peer's decoder: its RTP timestamp and whether it is a key frame.
        self.video_frames: list[tuple[int, bool]] = []
        self._readers: list[asyncio.Task[None]] = []
        if send:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
            self.pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
            video = self.pc.addTransceiver("video", direction="recvonly")
            self.pc.on("track", self._track)
            decoder_queue = getattr(video.receiver, DECODER_QUEUE)
            put = decoder_queue.put

            def observe(item: Any, *args: Any, **kwargs: Any) -> None:
                if item is not None:
                    frame = item[1]
                    self.video_frames.append((frame.timestamp, inspect_vp8(frame.data).keyframe))
                put(item, *args, **kwargs)

            decoder_queue.put = observe

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        with gathering_on(["127.0.0.1"]):
            await self.pc.setLocalDescription(offer)
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def drop_outgoing(self, every: int, of: int) -> None:
        """Lose `every` of each `of` packets this peer sends (RTP, retransmissions and RTCP alike)."""
        transport = self.pc.getTransceivers()[0].sender.transport
        send = transport._send_rtp
        sent = 0

        async def lossy(data: bytes) -> None:
            nonlocal sent
            sent += 1
            if sent % of >= every:
                await send(data)

        transport._send_rtp = lossy

    def drop_incoming(self, every: int, of: int) -> None:
        """Lose `every` of each `of` RTP packets this peer receives (retransmissions too; RTCP passes)."""
        transport = self.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtp_data
        received = 0

        async def lossy(data: bytes, arrival_time_ms: int) -> None:
            nonlocal received
            received += 1
            if received % of >= every:
                await handle(data, arrival_time_ms)

        transport._handle_rtp_data = lossy

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.create_task(self._count(track)))

    async def _count(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1


@pytest.fixture
async def media_peers() -> AsyncIterator[Callable[..., MediaPeer]]:
    made: list[MediaPeer] = []

    def make(*, send: bool) -> MediaPeer:
        made.append(MediaPeer(send=send))
        return made[-1]

    yield make
    for peer in made:
        await peer.close()


async def until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def until_still(count: Callable[[], int], quiet_s: float = 1.0, timeout_s: float = 20) -> None:
    """Until `count` has not changed for `quiet_s` (frames already on their way have arrived)."""
    async with asyncio.timeout(timeout_s):
        while True:
            before = count()
            await asyncio.sleep(quiet_s)
            if count() == before:
                return


async def connected_feed(
    alice: Any, bob: Any, media_peers: Callable[..., MediaPeer], *, subscribe: bool = True
) -> tuple[str, str, MediaPeer, MediaPeer | None]:
    """Alice publishes (audio + video) over a link that connects; bob, if asked, subscribes and receives."""
    publisher = media_peers(send=True)
    published = await alice.ok("publish", media_type=1, sdp=await publisher.offer())
    await publisher.answer(published["sdp"])
    await bob.event("on_new_publish")
    if not subscribe:
        return published["feed_id"], "", publisher, None
    subscriber = media_peers(send=False)
    subscribed = await bob.ok("subscribe", feed_id=published["feed_id"], sdp=await subscriber.offer())
    await subscriber.answer(subscribed["sdp"])
    await alice.event("on_new_subscribe")
    await until(lambda: subscriber.frames["audio"] > 0 and subscriber.frames["video"] > 0)
    return published["feed_id"], subscribed["subscription_id"], publisher, subscriber


async def test_links_a_client_closes_reach_it_and_the_room_with_5007(
    platform: Any, clients: Any, media_peers: Any
) -> None:
    alice, bob, room = await room_of_two(clients)
    room_id = room["room_id"]
    feed_id, subscription_id, publisher, subscriber = await connected_feed(alice, bob, media_peers)
    feed = {"uid": alice.uid, "feed_id": feed_id, "tag": "", "media_type": 1}
    assert subscriber is not None

    # Bob's link goes away without an unsubscribe.
    closed_at = time.monotonic()
    await subscriber.close()
    assert await bob.event("on_media_close") == {
        "room_id": room_id,
        "code": 5007,
        "feed_id": feed_id,
        "subscription_id": subscription_id,
    }
    told_after_s = time.monotonic() - closed_at
    assert await alice.event("on_unsubscribe") == {"room_id": room_id, "subscriber": bob.uid, "feed": feed}
    print(f"\non_media_close 5007 {told_after_s * 1000:.0f} ms after the subscriber closed its connection")
    # Bob's subscription is over: he may subscribe again.
    assert (await bob.call("unsubscribe", feed_id=feed_id))["code"] == -91013

    # Alice's link goes away without an unpublish.
    await publisher.close()
    assert await alice.event("on_media_close") == {
        "room_id": room_id,
        "code": 5007,
        "feed_id": feed_id,
        "subscription_id": "",
    }
    assert await bob.event("on_unpublish") == {"room_id": room_id, "feed": feed}
    assert (await alice.call("unpublish", feed_id=feed_id))["code"] == -91012

    ended = await platform.facts.wait_for(room_id, "FeedUnpublished")
    assert (ended.feed_id, ended.code) == (feed_id, 5007)
    subscription_ended = await platform.facts.wait_for(room_id, "SubscriptionEnded")
    assert (subscription_ended.subscription_id, subscription_ended.code) == (subscription_id, 5007)


async def test_a_link_that_never_connects_closes_with_5004(
    platform: Any, clients: Any, media_peers: Any
) -> None:
    alice, bob, room = await room_of_two(clients)
    # The client never applies the relay's answer: ICE never starts on its side.
    published = await alice.ok("publish", media_type=1, sdp=await media_peers(send=True).offer())
    feed_id = published["feed_id"]
    await bob.event("on_new_publish")

    closed = await alice.event("on_media_close", timeout_s=SLOW_WAIT_S)
    assert closed == {"room_id": room["room_id"], "code": 5004, "feed_id": feed_id, "subscription_id": ""}
    assert (await bob.event("on_unpublish"))["feed"]["feed_id"] == feed_id
    ended = await platform.facts.wait_for(room["room_id"], "FeedUnpublished")
    assert (ended.feed_id, ended.code) == (feed_id, 5004)


async def test_a_link_whose_dtls_fails_before_connecting_closes_with_5011(
    platform: Any, clients: Any, media_peers: Any
) -> None:
    alice, bob, _ = await room_of_two(clients)
    publisher = media_peers(send=True)
    offer = await publisher.offer()
    # The relay checks the client's certificate against the offer's fingerprint: make it another one's.
    forged = re.sub(
        r"(a=fingerprint:sha-256 )([0-9A-F]{2})", lambda m: m[1] + ("00" if m[2] != "00" else "11"), offer
    )
    assert forged != offer
    published = await alice.ok("publish", media_type=1, sdp=forged)
    await publisher.answer(published["sdp"])

    closed = await alice.event("on_media_close", timeout_s=SLOW_WAIT_S)
    assert (closed["code"], closed["feed_id"]) == (5011, published["feed_id"])
    assert (await bob.event("on_unpublish"))["feed"]["feed_id"] == published["feed_id"]


async def test_a_lossy_publisher_hears_its_network_is_weak(clients: Any, media_peers: Any) -> None:
    alice, bob, room = await room_of_two(clients)
    feed_id, _, publisher, _ = await connected_feed(alice, bob, media_peers, subscribe=False)
    # Two packets of every five are lost on the way to the relay (the relay's NACKs recover some).
    publisher.drop_outgoing(2, 5)
    lossy_since = time.monotonic()

    weak = await alice.event("on_network_weak", timeout_s=SLOW_WAIT_S)
    print(f"\non_network_weak {time.monotonic() - lossy_since:.1f} s after the loss began: {weak}")
    assert (weak["room_id"], weak["sid"], weak["feed_id"]) == (room["room_id"], feed_id, feed_id)
    # Seed 002's types: bits per second as strings; a publisher sends, and receives nothing on this stream.
    assert isinstance(weak["bpsSend"], str) and int(weak["bpsSend"]) > 0
    assert weak["bpsRecv"] == "0"
    # Nobody else is told.
    assert not [event for event in await bob.quiet(0.5) if event["event"] == "on_network_weak"]


async def test_a_lossy_subscriber_hears_its_network_is_weak(clients: Any, media_peers: Any) -> None:
    alice, bob, room = await room_of_two(clients)
    feed_id, subscription_id, _, subscriber = await connected_feed(alice, bob, media_peers)
    assert subscriber is not None
    # Two packets of every five the relay forwards are lost on the way; the subscriber's receiver
    # reports say so.
    subscriber.drop_incoming(2, 5)

    weak = await bob.event("on_network_weak", timeout_s=SLOW_WAIT_S)
    assert (weak["room_id"], weak["sid"], weak["feed_id"]) == (room["room_id"], subscription_id, feed_id)
    assert weak["bpsSend"] == "0" and int(weak["bpsRecv"]) > 0
    assert not [event for event in await alice.quiet(0.5) if event["event"] == "on_network_weak"]


async def test_mutes_stop_and_resume_forwarding(clients: Any, media_peers: Any) -> None:
    alice, bob, room = await room_of_two(clients)
    room_id = room["room_id"]
    feed_id, _, _, subscriber = await connected_feed(alice, bob, media_peers)
    assert subscriber is not None
    frames = subscriber.frames

    async def stops(kind: str, mute: Callable[[], Awaitable[Any]]) -> None:
        other = "audio" if kind == "video" else "video"
        await mute()
        await until_still(lambda: frames[kind])
        stopped_at, other_at = frames[kind], frames[other]
        await asyncio.sleep(1.0)
        assert frames[kind] == stopped_at, f"{kind} still forwarded after the mute"
        assert frames[other] > other_at, f"{other} stopped too"

    async def resumes(kind: str, unmute: Callable[[], Awaitable[Any]]) -> None:
        before, decoded_before = frames[kind], len(subscriber.video_frames)
        await unmute()
        await until(lambda: frames[kind] > before + 10)
        if kind == "video":
            # Video starts again at a key frame: the frames before it would not decode after the gap. (The
            # client's jitter buffer hands over the last frame before the gap only now, when the next
            # frame's first packet shows it complete: the first frame after the gap is the one whose
            # timestamp jumps.)
            decoded = subscriber.video_frames[max(decoded_before - 1, 0) :]
            first_after_gap = next(
                keyframe
                for (previous, _), (timestamp, keyframe) in itertools.pairwise(decoded)
                if timestamp - previous > PAUSE_GAP_TICKS
            )
            assert first_after_gap is True

    # The publisher pauses its video: the relay forwards none to anyone, and the room hears of it.
    await stops("video", lambda: alice.ok("mute_local_video", feed_id=feed_id, muted=True))
    assert await bob.event("on_remote_mute") == {
        "room_id": room_id,
        "feed_id": feed_id,
        "uid": alice.uid,
        "audio_muted": False,
        "video_muted": True,
    }
    await resumes("video", lambda: alice.ok("mute_local_video", feed_id=feed_id, muted=False))
    assert (await bob.event("on_remote_mute"))["video_muted"] is False

    # The publisher pauses its audio.
    await stops("audio", lambda: alice.ok("mute_local_audio", feed_id=feed_id, muted=True))
    await resumes("audio", lambda: alice.ok("mute_local_audio", feed_id=feed_id, muted=False))

    # The subscriber pauses what it receives, for itself alone: nobody is told.
    await stops("video", lambda: bob.ok("mute_remote_video", feed_id=feed_id, muted=True))
    await resumes("video", lambda: bob.ok("mute_remote_video", feed_id=feed_id, muted=False))
    await stops("audio", lambda: bob.ok("mute_remote_audio", feed_id=feed_id, muted=True))
    await resumes("audio", lambda: bob.ok("mute_remote_audio", feed_id=feed_id, muted=False))
    assert not [event for event in await alice.quiet(0.3) if event["event"] == "on_remote_mute"]

    # Refusals, with their codes.
    refusals = [
        (bob, "mute_local_video", {"feed_id": feed_id, "muted": True}, -91012, "FEED_NOT_PUBLISHED"),
        (alice, "mute_remote_audio", {"feed_id": feed_id, "muted": True}, -91013, "NOT_SUBSCRIBED"),
        (alice, "mute_local_audio", {"feed_id": "f_none", "muted": True}, -91014, "MUTE_FEED_UNKNOWN"),
        (bob, "mute_remote_video", {"feed_id": "f_none", "muted": True}, -91014, "MUTE_FEED_UNKNOWN"),
        (alice, "mute_local_video", {"feed_id": feed_id, "muted": "yes"}, -91003, "INVALID_PARAMS"),
    ]
    for client, cmd, params, code, reason in refusals:
        answer = await client.call(cmd, **params)
        assert (answer["code"], answer["reason"]) == (code, reason), (cmd, params, answer)
