"""Real calls for the billing tests: aiortc peers that publish and subscribe through the platform's relay
over protocol v1, with their media flowing (so the relay meters it)."""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from services.core.config import ServiceName
from services.core.media.gathering import gathering_on

# What a call through the platform needs.
CALL_SERVICES = (
    ServiceName.LICENCE,
    ServiceName.ROOMS,
    ServiceName.RELAY,
    ServiceName.BILLING,
    ServiceName.GATEWAY,
)


class Peers:
    """Every peer connection a test made, closed together."""

    def __init__(self) -> None:
        self._made: list[RTCPeerConnection] = []

    def _new(self) -> RTCPeerConnection:
        self._made.append(RTCPeerConnection(RTCConfiguration(iceServers=[])))
        return self._made[-1]

    async def _negotiate(self, pc: RTCPeerConnection, client: Any, cmd: str, **params: Any) -> dict[str, Any]:
        offer = await pc.createOffer()
        with gathering_on(["127.0.0.1"]):
            await pc.setLocalDescription(offer)
        answer = await client.ok(cmd, sdp=pc.localDescription.sdp, **params)
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        return answer

    async def publish(self, client: Any, *, video: bool) -> tuple[str, RTCPeerConnection]:
        """Publish audio (and video): the feed id and the peer connection sending it."""
        pc = self._new()
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        if video:
            pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        answer = await self._negotiate(pc, client, "publish", media_type=1 if video else 2, tag="camera")
        return str(answer["feed_id"]), pc

    async def subscribe(self, client: Any, feed_id: str, *, video: bool) -> RTCPeerConnection:
        pc = self._new()
        pc.addTransceiver("audio", direction="recvonly")
        if video:
            pc.addTransceiver("video", direction="recvonly")
        await self._negotiate(pc, client, "subscribe", feed_id=feed_id)
        return pc

    async def close(self) -> None:
        for pc in self._made:
            await pc.close()
