"""A call with media as clients make it over protocol v1: one user publishes an aiortc camera and
microphone through the relay, another subscribes (ICE on 127.0.0.1 only, no ICE servers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from services.core.media.gathering import gathering_on
from tests.integration.licence_helpers import App
from tests.integration.protocol_client import Client, Connections


@dataclass
class MediaCall:
    publisher: RTCPeerConnection
    subscriber: RTCPeerConnection
    feed_id: str
    # Set by `call_in_a_room`, which makes the room.
    room_id: str = ""
    received: asyncio.Queue[MediaStreamTrack] = field(default_factory=asyncio.Queue)
    video: MediaStreamTrack | None = None

    async def video_frame(self, timeout_s: float = 30.0) -> object:
        """The next decoded frame of the publisher's video, as the subscriber receives it from the relay."""
        async with asyncio.timeout(timeout_s):
            while self.video is None:
                track = await self.received.get()
                if track.kind == "video":
                    self.video = track
            return await self.video.recv()

    async def close(self) -> None:
        await self.publisher.close()
        await self.subscriber.close()


async def packets_received(pc: RTCPeerConnection) -> int:
    """RTP packets `pc` has received on all its tracks: media flows while this grows."""
    stats = await pc.getStats()
    return sum(int(report.packetsReceived) for report in stats.values() if report.type == "inbound-rtp")


async def offering_peer(*, send: bool) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if send:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    else:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
    offer = await pc.createOffer()
    with gathering_on(["127.0.0.1"]):
        await pc.setLocalDescription(offer)
    return pc, str(pc.localDescription.sdp)


async def publish_and_subscribe(publisher: Client, subscriber: Client) -> MediaCall:
    """`publisher` publishes camera and microphone in its room, `subscriber` (in the same room) takes them."""
    publishing, offer = await offering_peer(send=True)
    published = await publisher.ok("publish", media_type=1, tag="camera", sdp=offer)
    await publishing.setRemoteDescription(RTCSessionDescription(published["sdp"], "answer"))
    subscribing, offer = await offering_peer(send=False)
    call = MediaCall(publishing, subscribing, published["feed_id"])
    subscribing.on("track", call.received.put_nowait)
    subscribed = await subscriber.ok("subscribe", feed_id=published["feed_id"], sdp=offer)
    await subscribing.setRemoteDescription(RTCSessionDescription(subscribed["sdp"], "answer"))
    return call


@asynccontextmanager
async def call_in_a_room(app: App, ws_url: str) -> AsyncIterator[tuple[Client, Client, MediaCall]]:
    """Two users of `app` on the gateway at `ws_url`, in one room: the first publishes, the second has
    received a decoded video frame of it through the relay. Peers and sockets are closed afterwards."""
    connections = Connections(app)
    call = None
    try:
        alice = await connections.open(ws_url)
        bob = await connections.open(ws_url)
        room = await alice.ok("create_room")
        await bob.ok("join_room", room_id=room["room_id"], rtoken=room["rtoken"])
        call = await publish_and_subscribe(alice, bob)
        call.room_id = room["room_id"]
        await call.video_frame()
        yield alice, bob, call
    finally:
        if call is not None:
            await call.close()
        await connections.close()
