"""Lost video packets are retransmitted on both legs of the relay, between real aiortc peers on loopback.

Each test drops every 10th video packet on one leg, before the receiving side sees it: at the subscriber
(its receiver never gets the packet, so it NACKs the relay, which answers from its sender's RTP history
as RTX) or at the publisher (the packet never leaves, so the relay's receiver NACKs the publisher, which
retransmits). Retransmissions themselves are never dropped. An aiortc receiver passes a frame to its
decoder only when all its packets are there, so without retransmission every frame that lost a packet
would be missing from what the subscriber decodes; the tests count the decoded frames by RTP timestamp.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.rtp import RtpPacket, is_rtcp
from relay_clients import Publisher, Subscriber, publish, subscribe, wait_until

pytestmark = pytest.mark.integration

DROP_EVERY = 10
# Frames compared: ~4 s at 30 frames/s, after the subscriber's first decoded frame.
FRAMES_CHECKED = 120
# Frames that may still be missing: none is expected, one spares the test a frame at the edge of the
# window. Without retransmission a tenth of the packets, in about as many frames, stays lost.
MISSING_ALLOWED = 1


def video_payload_types(sdp: str) -> tuple[set[int], set[int]]:
    """The negotiated video payload types of a session description: media codecs, and RTX."""
    video = sdp[sdp.index("m=video") :]
    codecs = {int(pt): name.lower() for pt, name in re.findall(r"a=rtpmap:(\d+) ([^/\s]+)/", video)}
    return {pt for pt, name in codecs.items() if name != "rtx"}, {
        pt for pt, name in codecs.items() if name == "rtx"
    }


class Loss:
    """Drops every `every`-th first transmission of a media packet; counts the frames (by RTP timestamp),
    the packets dropped and the retransmissions (RTX) that went by."""

    def __init__(self, media_types: set[int], rtx_types: set[int], every: int = DROP_EVERY) -> None:
        self._media, self.rtx_types, self._every = media_types, rtx_types, every
        self._seen: set[int] = set()
        self._packets = 0
        self.frame_timestamps: list[int] = []
        self.dropped = 0
        self.retransmissions = 0

    def drops(self, payload_type: int, sequence_number: int, timestamp: int) -> bool:
        if payload_type in self.rtx_types:
            self.retransmissions += 1
            return False
        if payload_type not in self._media or sequence_number in self._seen:
            return False
        self._seen.add(sequence_number)
        if not self.frame_timestamps or self.frame_timestamps[-1] != timestamp:
            self.frame_timestamps.append(timestamp)
        self._packets += 1
        if self._packets % self._every:
            return False
        self.dropped += 1
        return True


class TimestampSubscriber(Subscriber):
    """A video-only subscriber that also records the RTP timestamp of every frame it decodes."""

    def __init__(self) -> None:
        super().__init__(audio=False)
        self.decoded_timestamps: list[int] = []

    def _on_track(self, track: MediaStreamTrack) -> None:
        recv = track.recv

        async def recv_and_record() -> Any:
            frame = await recv()
            self.decoded_timestamps.append(frame.pts)
            return frame

        track.recv = recv_and_record  # type: ignore[method-assign]
        super()._on_track(track)


def lose_on_arrival(subscriber: Subscriber, loss: Loss) -> None:
    """Drop packets as they reach the subscriber's video receiver, before its NACK generator and jitter
    buffer see them."""
    receiver = subscriber.pc.getTransceivers()[0].receiver
    handle: Callable[..., Awaitable[None]] = receiver._handle_rtp_packet

    async def handle_or_drop(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not loss.drops(packet.payload_type, packet.sequence_number, packet.timestamp):
            await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_or_drop  # type: ignore[method-assign]


def lose_on_departure(publisher: Publisher, loss: Loss) -> None:
    """Drop the publisher's video RTP before SRTP and the socket: the packet never leaves."""
    transport = publisher.pc.getTransceivers()[0].sender.transport
    send_rtp: Callable[[bytes], Awaitable[None]] = transport._send_rtp

    async def send_or_drop(data: bytes) -> None:
        if is_rtcp(data) or not loss.drops(
            data[1] & 0x7F, int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big")
        ):
            await send_rtp(data)

    transport._send_rtp = send_or_drop  # type: ignore[method-assign]


def missing_of_first(published: list[int], decoded: list[int], count: int) -> list[int]:
    """Of `count` frames sent on the lossy leg from the subscriber's first decoded one, those it did not
    decode.

    Decoded frames carry RTP timestamps less a constant (the subscriber's receiver counts from its first
    frame, and the relay adds its own offset per subscriber): the constant is the one that maps most
    decoded frames onto published ones."""
    published_set = set(published)

    def matches(offset: int) -> int:
        return sum(1 for t in decoded if (t - offset) % (1 << 32) in published_set)

    offset = max(((decoded[0] - p) % (1 << 32) for p in published), key=matches)
    first = published.index((decoded[0] - offset) % (1 << 32))
    window = published[first : first + count]
    assert len(window) == count, "the publisher sent too few frames to compare"
    decoded_set = {(t - offset) % (1 << 32) for t in decoded}
    return [t for t in window if t not in decoded_set]


async def test_packets_a_subscriber_loses_are_retransmitted_by_the_relay(relay_service) -> None:
    stub, room_id = relay_service.stub, f"room-{uuid.uuid4()}"
    publisher, subscriber = Publisher(audio=None), TimestampSubscriber()
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="cam")
        await subscribe(stub, subscriber, room_id=room_id, feed_id="cam", uid="bob", audio=False)
        loss = Loss(*video_payload_types(subscriber.pc.remoteDescription.sdp))
        assert loss.rtx_types, "the relay offered no RTX for video"
        lose_on_arrival(subscriber, loss)
        await wait_until(lambda: len(subscriber.decoded_timestamps) > FRAMES_CHECKED + 30, timeout_s=30)
        missing = missing_of_first(loss.frame_timestamps, subscriber.decoded_timestamps, FRAMES_CHECKED)
    finally:
        await subscriber.close()
        await publisher.close()

    assert loss.dropped >= FRAMES_CHECKED // DROP_EVERY
    assert len(missing) <= MISSING_ALLOWED, f"{len(missing)} of {FRAMES_CHECKED} frames never decoded"
    assert loss.retransmissions >= loss.dropped // 2, "the relay retransmitted few of the lost packets"


async def test_packets_the_publisher_loses_are_retransmitted_to_the_relay(relay_service) -> None:
    stub, room_id = relay_service.stub, f"room-{uuid.uuid4()}"
    publisher, subscriber = Publisher(audio=None), TimestampSubscriber()
    # VP8 with RTX, as browsers offer it (the test publisher offers VP8 alone).
    publisher.pc.getTransceivers()[0].setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/vp8", "video/rtx")
        ]
    )
    try:
        await publish(stub, publisher, room_id=room_id, feed_id="cam")
        loss = Loss(*video_payload_types(publisher.pc.remoteDescription.sdp))
        assert loss.rtx_types, "the relay negotiated no RTX for the published video"
        lose_on_departure(publisher, loss)
        await subscribe(stub, subscriber, room_id=room_id, feed_id="cam", uid="bob", audio=False)
        await wait_until(lambda: len(subscriber.decoded_timestamps) > FRAMES_CHECKED + 30, timeout_s=30)
        missing = missing_of_first(loss.frame_timestamps, subscriber.decoded_timestamps, FRAMES_CHECKED)
    finally:
        await subscriber.close()
        await publisher.close()

    assert loss.dropped >= FRAMES_CHECKED // DROP_EVERY
    assert len(missing) <= MISSING_ALLOWED, f"{len(missing)} of {FRAMES_CHECKED} frames never decoded"
    assert loss.retransmissions >= loss.dropped // 2, "the publisher retransmitted few of the lost packets"
