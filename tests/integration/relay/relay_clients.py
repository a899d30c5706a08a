"""Real aiortc clients of the relay, as a device or an app would be: a publisher that encodes a known
picture and tone, and subscribers that decode what they receive and check it is that picture and tone.

All of them gather ICE candidates on 127.0.0.1 only and use no STUN server, so no packet of these tests
leaves loopback.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError, VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from av import AudioFrame, VideoFrame
from parley.relay.v1 import relay_pb2, relay_pb2_grpc

from services.core.media.gathering import gathering_on

BIZ_NAME = "relay-test"
WIDTH, HEIGHT = 320, 240
TONE_HZ = 440
AUDIO_RATE = 48000


def gradient_luma(x: int) -> int:
    """The test picture: luma rises from left to right, the same on every row."""
    return 16 + (x * 219) // (WIDTH - 1)


class GradientTrack(VideoStreamTrack):
    """30 frames/s of the test picture; the publisher's aiortc encoder encodes them."""

    def __init__(self) -> None:
        super().__init__()
        self._row = bytes(gradient_luma(x) for x in range(WIDTH))

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        for index, plane in enumerate(frame.planes):
            row = self._row if index == 0 else bytes([128]) * plane.width
            padding = bytes(plane.line_size - plane.width)
            plane.update((row + padding) * plane.height)
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz sine, 20 ms frames of 16-bit mono at 48 kHz."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._samples = int(AUDIO_PTIME * AUDIO_RATE)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += self._samples
            await asyncio.sleep(self._start + self._pts / AUDIO_RATE - time.time())
        samples = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * TONE_HZ * (self._pts + i) / AUDIO_RATE))
                for i in range(self._samples)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(samples.tobytes())
        frame.pts = self._pts
        frame.sample_rate = AUDIO_RATE
        frame.time_base = Fraction(1, AUDIO_RATE)
        return frame


class ClientPeer:
    def __init__(self) -> None:
        # An explicit empty list: aiortc's default names a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        with gathering_on(["127.0.0.1"]):
            await self.pc.setLocalDescription(offer)
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


def prefer(capabilities: list[RTCRtpCodecCapability], mime: str) -> list[RTCRtpCodecCapability]:
    return [codec for codec in capabilities if codec.mimeType.lower() == mime.lower()]


class Publisher(ClientPeer):
    def __init__(self, *, video: str | None = "video/VP8", audio: str | None = "audio/opus") -> None:
        super().__init__()
        for kind, mime, track in (("video", video, GradientTrack), ("audio", audio, ToneTrack)):
            if mime is None:
                continue
            transceiver = self.pc.addTransceiver(track(), direction="sendonly")
            transceiver.setCodecPreferences(prefer(RTCRtpSender.getCapabilities(kind).codecs, mime))


@dataclass
class Received:
    """What a subscriber decoded, with the time each decoded frame arrived."""

    video_frames: list[tuple[float, int, int, float]] = field(default_factory=list)
    audio_frames: list[tuple[float, float]] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)


def luma_error(frame: VideoFrame) -> float:
    """Mean absolute difference between the decoded luma and the test picture, over the middle row."""
    plane = frame.planes[0]
    row = frame.height // 2
    data = bytes(plane)[row * plane.line_size : row * plane.line_size + frame.width]
    return sum(abs(value - gradient_luma(x)) for x, value in enumerate(data)) / frame.width


def tone_hz(frame: AudioFrame) -> float:
    """The frequency of a decoded tone from its zero crossings (first channel)."""
    channels = 1 if frame.format.is_planar else len(frame.layout.channels)
    # The plane's buffer is padded beyond the frame's samples.
    samples = array.array("h", bytes(frame.planes[0]))[: frame.samples * channels]
    first = samples[::channels]
    crossings = sum(1 for a, b in itertools.pairwise(first) if (a < 0) != (b < 0))
    return crossings * frame.sample_rate / (2 * len(first))


class Subscriber(ClientPeer):
    def __init__(self, *, audio: bool = True, video: bool = True, video_codec: str | None = None) -> None:
        super().__init__()
        self.received = Received()
        self._consumers: list[asyncio.Task[None]] = []
        if video:
            transceiver = self.pc.addTransceiver("video", direction="recvonly")
            if video_codec is not None:
                transceiver.setCodecPreferences(
                    prefer(RTCRtpSender.getCapabilities("video").codecs, video_codec)
                )
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._consumers.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if isinstance(frame, VideoFrame):
                    self.received.video_frames.append((now, frame.width, frame.height, luma_error(frame)))
                elif isinstance(frame, AudioFrame):
                    self.received.audio_frames.append((now, tone_hz(frame)))
        except MediaStreamError:
            self.received.ended.add(track.kind)

    async def close(self) -> None:
        await super().close()
        for consumer in self._consumers:
            consumer.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)


async def wait_until(condition: Callable[[], bool], *, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def publish(
    stub: relay_pb2_grpc.RelayServiceStub,
    publisher: Publisher,
    *,
    room_id: str,
    feed_id: str,
    uid: str = "alice",
) -> relay_pb2.PublishResponse:
    response: relay_pb2.PublishResponse = await stub.Publish(
        relay_pb2.PublishRequest(
            biz_name=BIZ_NAME, room_id=room_id, uid=uid, feed_id=feed_id, sdp_offer=await publisher.offer()
        )
    )
    await publisher.accept(response.sdp_answer)
    return response


async def subscribe(
    stub: relay_pb2_grpc.RelayServiceStub,
    subscriber: Subscriber,
    *,
    room_id: str,
    feed_id: str,
    uid: str,
    audio: bool = True,
    video: bool = True,
) -> relay_pb2.SubscribeResponse:
    response: relay_pb2.SubscribeResponse = await stub.Subscribe(
        relay_pb2.SubscribeRequest(
            biz_name=BIZ_NAME,
            room_id=room_id,
            uid=uid,
            feed_id=feed_id,
            sdp_offer=await subscriber.offer(),
            audio=audio,
            video=video,
        )
    )
    await subscriber.accept(response.sdp_answer)
    return response


def udp_sockets_of_this_process() -> set[tuple[str, int]]:
    """(address, port) of every UDP socket this process holds, from the kernel's socket table."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    bound = set()
    with open("/proc/net/udp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[9] in inodes:
                address, port = fields[1].split(":")
                # Little-endian hex IPv4 address.
                octets = [str(int(address[i : i + 2], 16)) for i in range(6, -1, -2)]
                bound.add((".".join(octets), int(port, 16)))
    return bound


def ice_connection(pc: RTCPeerConnection) -> Any:
    """aioice's connection under a peer connection's (one, bundled) transport."""
    return pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection


def assert_all_media_on_one_port(
    relay: Any, client_peers: list[RTCPeerConnection], *, expected_peers: int
) -> None:
    """The relay (in this process, with `udp_port` set) has `expected_peers` peer connections, each
    connected through its one port, and in the kernel's table this process holds no other UDP socket than
    that port and the test's own aiortc clients' (`client_peers`)."""
    one_port = relay.udp_address
    relay_peers = [feed.peer.pc for feed in relay.feeds.values()] + [
        subscription.peer.pc for subscription in relay.subscriptions.values()
    ]
    assert len(relay_peers) == expected_peers
    for pc in relay_peers:
        [pair] = ice_connection(pc)._nominated.values()
        assert (pair.local_candidate.host, pair.local_candidate.port) == one_port
    clients = {
        protocol.transport.get_extra_info("sockname")[:2]
        for pc in client_peers
        for protocol in ice_connection(pc)._protocols
    }
    assert udp_sockets_of_this_process() - clients == {one_port}
